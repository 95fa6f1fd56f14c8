/*
 * gw_json.h - JSON <-> CBOR conversion for the HTTP gateway, with limits.
 *
 * Both directions take untrusted bytes (request bodies, service replies,
 * bus payloads) and never trust a declared length or count: every length
 * is checked against the bytes that remain, nesting against max_depth,
 * the number of values against max_items, and the output against
 * max_out.  Nothing here keeps state; any thread may call.
 *
 * JSON -> CBOR (RFC 8259 -> RFC 8949): objects become definite-length
 * maps with text keys, arrays definite arrays, strings text strings
 * (escapes decoded, UTF-8 checked), integers that fit 64 bits CBOR
 * integers, other numbers doubles, true/false/null the simple values.
 *
 * CBOR -> JSON: maps become objects (keys must be text, or integers,
 * which are written as decimal strings), byte strings base64 text
 * (RFC 4648, padded), tags are dropped (their content kept), undefined
 * becomes null, floats that are NaN or infinite become null.
 * Indefinite-length items are accepted.
 */
#ifndef GW_JSON_H
#define GW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/err.h>

typedef struct gw_limits {
    uint32_t max_depth; /* nesting of arrays and maps/objects */
    uint32_t max_items; /* values in one document */
    size_t   max_out;   /* bytes of output */
} gw_limits;

/* A growable output buffer; zero-initialize, free with gw_buf_fini.  An
 * append past max (when max != 0) or out of memory sets failed and
 * appends nothing more. */
typedef struct gw_buf {
    uint8_t *data;
    size_t   len;
    size_t   cap;
    size_t   max;
    bool     failed;
    bool     toobig; /* failed because of max */
} gw_buf;

void gw_buf_put(gw_buf *b, const void *p, size_t n);
void gw_buf_putc(gw_buf *b, uint8_t c);
void gw_buf_puts(gw_buf *b, const char *s);
void gw_buf_printf(gw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_buf_fini(gw_buf *b);

/* Writers of CBOR items, for the request map the gateway builds. */
void gw_cbor_head(gw_buf *b, unsigned major, uint64_t v);
void gw_cbor_text(gw_buf *b, const char *s, size_t n);

/* A JSON string literal of s (n bytes, quotes included), escaped. */
void gw_json_string(gw_buf *b, const char *s, size_t n);

/* Base64 (RFC 4648 with padding) of n bytes. */
void gw_base64(gw_buf *b, const uint8_t *p, size_t n);

/*
 * Converts one JSON text (surrounding white space allowed) to one CBOR
 * item appended to out.  Errors: CAIRN_EPROTO (not JSON; *why says what
 * and where), CAIRN_ELIMIT (too deep, too many values), CAIRN_ETOOBIG
 * (output over max_out), CAIRN_ENOMEM.
 */
CAIRN_NODISCARD cairn_err gw_json_to_cbor(const char *json, size_t len,
                                          const gw_limits *lim, gw_buf *out,
                                          char *why, size_t whylen);

/*
 * Converts exactly one CBOR item (no trailing bytes) to JSON text
 * appended to out.  Errors as above; CAIRN_EPROTO for malformed CBOR.
 */
CAIRN_NODISCARD cairn_err gw_cbor_to_json(const uint8_t *cbor, size_t len,
                                          const gw_limits *lim, gw_buf *out,
                                          char *why, size_t whylen);

/* True if s is valid UTF-8 (no overlongs, no surrogates). */
bool gw_utf8_valid(const uint8_t *s, size_t n);

/* True if text is one well-formed JSON value within lim. */
bool gw_json_valid(const char *json, size_t len, const gw_limits *lim);

#endif /* GW_JSON_H */
