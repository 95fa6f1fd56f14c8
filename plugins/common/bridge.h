/*
 * bridge.h - what the broker bridges (mqtt-bridge, amqp-bridge) share:
 * name templates, reconnect backoff, the link state the runtime sees,
 * durable uplink routes, and helpers of the downlink's duplicate check.
 *
 * Built as a small static library (PIC, hidden symbols) that each bridge
 * links into its plugin.  Nothing here keeps state: every function may run
 * on any thread.
 */
#ifndef CAIRN_BRIDGE_H
#define CAIRN_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cairn/plugin.h>

/* ---- templates ---------------------------------------------------------- */

/* What a template may refer to: {runtime}, {name}, {topic} and {1}..{9},
 * the parts of topic split at the separator given to bridge_tctx_init. */
typedef struct bridge_tctx {
    const char *runtime;
    const char *name;
    const char *topic; /* may be NULL: {topic} and {1}.. are then errors */
    size_t      topic_len;
    const char *lv[9];
    size_t      lv_len[9];
    int         nlv;
} bridge_tctx;

/* Sets t up for topic (topic_len bytes, split at sep; NULL for none). */
void bridge_tctx_init(bridge_tctx *t, const char *runtime, const char *name,
                      const char *topic, size_t topic_len, char sep);

/* Renders tpl into out (cap bytes, NUL-terminated).  CAIRN_EINVAL with
 * *why set for an unknown placeholder or a missing level; CAIRN_ETOOBIG
 * with *why = too_long when the result does not fit. */
cairn_err bridge_tpl_render(const char *tpl, const bridge_tctx *t, char *out,
                            size_t cap, const char *too_long, const char **why);

/* ---- config checks ------------------------------------------------------ */

/* CAIRN_ECONFIG (logged as "key 'path': why") unless path is empty or
 * readable. */
cairn_err bridge_check_file(const cairn_host *host, cairn_plugin *self,
                            const char *key, const char *path);

/* The first line of the file at path (without its line end) in *out, to
 * free; the stack copy is wiped.  CAIRN_ECONFIG (logged) when the file
 * cannot be opened, CAIRN_ENOMEM. */
cairn_err bridge_read_password(const cairn_host *host, cairn_plugin *self,
                               const char *path, char **out);

/* ---- the connection ----------------------------------------------------- */

/* The delay before the next attempt, in ms: cap = initial *
 * multiplier^(attempt-1), at most max; the delay is uniform in
 * [cap/2, cap] (xorshift state *rnd, not zero). */
uint64_t bridge_backoff(uint64_t initial, uint64_t max, double multiplier,
                        uint32_t attempt, uint64_t *rnd);

/* The link as the runtime's readiness (/readyz) sees it; a host before
 * ABI 1.2 has no link_state. */
void bridge_link_state(const cairn_host *host, cairn_plugin *self, bool up);

/* ---- uplink ------------------------------------------------------------- */

/* Routes filter (uplink[i]) to this instance's outbox at prio; logs and
 * returns the host's error. */
cairn_err bridge_route_durable(const cairn_host *host, cairn_plugin *self,
                               size_t i, const char *filter, int prio);

/* ---- downlink ----------------------------------------------------------- */

/* True if id is all zero bytes (no id to check duplicates by). */
bool bridge_id_zero(const uint8_t id[CAIRN_ID_LEN]);

/* Appends a header to env if there is room (else drops it). */
void bridge_env_header(cairn_envelope *env, const char *name,
                       const char *value);

/* Logs a warning that the duplicate check is unavailable (the host's
 * error rv); callers log it once per instance. */
void bridge_dup_check_warn(const cairn_host *host, cairn_plugin *self,
                           cairn_err rv);

#endif /* CAIRN_BRIDGE_H */
