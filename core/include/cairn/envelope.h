/*
 * cairn/envelope.h - the CBOR envelope every message travels in.
 *
 * Wire form: a definite-length CBOR map with small unsigned integer keys
 *
 *   0 payload  bstr            required
 *   1 id       bstr(16)        required, time-ordered (UUIDv7 layout)
 *   2 topic    tstr            required
 *   3 ts       uint            required, ms since the Unix epoch
 *   4 corr     bstr(16)        optional correlation id
 *   5 ctype    tstr            optional content type
 *   6 headers  map tstr->tstr  optional
 *   7 attempt  uint            optional delivery attempt (0 = first)
 *   8 key      tstr            optional ordering key (default: topic)
 *
 * Unknown keys are skipped, whatever their value, within the limits.
 *
 * Ownership: a decoded envelope never owns memory.  Every cairn_str and
 * cairn_bytes in it points into the input buffer, which must outlive the
 * envelope.  Strings are NOT NUL-terminated; print them with "%.*s".
 * The decoder allocates nothing, so it cannot leak.
 */
#ifndef CAIRN_ENVELOPE_H
#define CAIRN_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <cairn/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_ID_LEN 16

/* Decoder limits. */
#define CAIRN_ENV_MAX_SIZE (4u << 20)  /* whole encoded envelope, bytes */
#define CAIRN_ENV_MAX_HEADERS 32       /* entries in the headers map */
#define CAIRN_ENV_MAX_KEYS 64          /* entries in the top-level map */
#define CAIRN_ENV_MAX_DEPTH 8          /* nesting inside unknown values */
#define CAIRN_ENV_MAX_ITEMS 1024       /* items inside unknown values */
#define CAIRN_ENV_MAX_TEXT 1024        /* topic, key, ctype, header bytes */

typedef struct cairn_str {
    const char *ptr; /* not NUL-terminated; may be NULL when len == 0 */
    size_t      len;
} cairn_str;

typedef struct cairn_bytes {
    const uint8_t *ptr;
    size_t         len;
} cairn_bytes;

typedef struct cairn_header {
    cairn_str name;
    cairn_str value;
} cairn_header;

/* Which optional fields are present. */
enum {
    CAIRN_ENV_HAS_CORR    = 1u << 0,
    CAIRN_ENV_HAS_CTYPE   = 1u << 1,
    CAIRN_ENV_HAS_ATTEMPT = 1u << 2,
    CAIRN_ENV_HAS_KEY     = 1u << 3,
};

typedef struct cairn_envelope {
    cairn_bytes  payload;
    uint8_t      id[CAIRN_ID_LEN];
    cairn_str    topic;
    uint64_t     ts;
    uint8_t      corr[CAIRN_ID_LEN];
    cairn_str    ctype;
    cairn_header headers[CAIRN_ENV_MAX_HEADERS];
    uint32_t     nheaders;
    uint32_t     attempt;
    cairn_str    key;
    uint32_t     flags; /* CAIRN_ENV_HAS_* */
} cairn_envelope;

/* Sets every field to empty (no memory is touched beyond *env). */
CAIRN_EXPORT void cairn_envelope_init(cairn_envelope *env);

/* Helpers to fill string fields from C strings (borrowed, not copied). */
CAIRN_EXPORT cairn_str cairn_str_c(const char *s);

/* Exact number of bytes cairn_envelope_encode() will write. */
CAIRN_EXPORT size_t cairn_envelope_encoded_size(const cairn_envelope *env);

/*
 * Encodes env into buf (capacity cap).  On success *len is the number of
 * bytes written.  CAIRN_ETOOBIG if cap is too small, CAIRN_EINVAL if env
 * breaks a limit (e.g. more than CAIRN_ENV_MAX_HEADERS headers).
 */
CAIRN_EXPORT CAIRN_NODISCARD cairn_err cairn_envelope_encode(
    const cairn_envelope *env, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decodes untrusted bytes.  The whole buffer must be exactly one envelope.
 * Errors: CAIRN_ETOOBIG (len > CAIRN_ENV_MAX_SIZE or a text field over
 * CAIRN_ENV_MAX_TEXT), CAIRN_ELIMIT (too many keys, headers, items or too
 * deep), CAIRN_EPROTO (anything else malformed: truncated, wrong types,
 * duplicate keys, missing required fields, trailing bytes).
 * On error *env is left in an unspecified but harmless state.
 */
CAIRN_EXPORT CAIRN_NODISCARD cairn_err cairn_envelope_decode(
    const uint8_t *buf, size_t len, cairn_envelope *env);

/*
 * Fills id with a new time-ordered identifier: UUIDv7 layout (48-bit
 * big-endian Unix ms, version 7, 12 bits of sub-ms sequence, variant,
 * 62 random bits).  Ids made in one process strictly increase as byte
 * strings, even within one millisecond.  Thread-safe.
 */
CAIRN_EXPORT void cairn_id_new(uint8_t id[CAIRN_ID_LEN]);

/* Milliseconds of the time stamp inside an id made by cairn_id_new. */
CAIRN_EXPORT uint64_t cairn_id_time_ms(const uint8_t id[CAIRN_ID_LEN]);

/* Canonical text form, 36 chars + NUL ("0190b2c4-...").  Returns out. */
CAIRN_EXPORT char *cairn_id_format(const uint8_t id[CAIRN_ID_LEN],
                                   char out[37]);

/* Parses the canonical text form; CAIRN_EINVAL if malformed. */
CAIRN_EXPORT CAIRN_NODISCARD cairn_err cairn_id_parse(
    const char *text, uint8_t id[CAIRN_ID_LEN]);

/* Milliseconds since the Unix epoch (wall clock). */
CAIRN_EXPORT uint64_t cairn_now_ms(void);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_ENVELOPE_H */
