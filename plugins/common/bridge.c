/*
 * bridge.c - templates, backoff, link state, durable routes and downlink
 * helpers the broker bridges share (see bridge.h).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"

/* ---- templates ---------------------------------------------------------- */

void
bridge_tctx_init(bridge_tctx *t, const char *runtime, const char *name,
                 const char *topic, size_t topic_len, char sep)
{
    memset(t, 0, sizeof(*t));
    t->runtime = runtime;
    t->name = name;
    t->topic = topic;
    t->topic_len = topic_len;
    if (topic == NULL) {
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i <= topic_len && t->nlv < 9; i++) {
        if (i == topic_len || topic[i] == sep) {
            t->lv[t->nlv] = topic + start;
            t->lv_len[t->nlv] = i - start;
            t->nlv++;
            start = i + 1;
        }
    }
}

/* The text a placeholder stands for; false if unknown or missing. */
static bool
bridge_tpl_value(const bridge_tctx *t, const char *ph, size_t n, const char **v,
                 size_t *vlen, const char **why)
{
    if (n == 7 && memcmp(ph, "runtime", 7) == 0) {
        *v = t->runtime, *vlen = strlen(t->runtime);
    } else if (n == 4 && memcmp(ph, "name", 4) == 0) {
        *v = t->name, *vlen = strlen(t->name);
    } else if (n == 5 && memcmp(ph, "topic", 5) == 0 && t->topic != NULL) {
        *v = t->topic, *vlen = t->topic_len;
    } else if (n == 1 && ph[0] >= '1' && ph[0] <= '9' && t->topic != NULL) {
        int i = ph[0] - '1';
        if (i >= t->nlv) {
            *why = "the topic has fewer levels than the template uses";
            return false;
        }
        *v = t->lv[i], *vlen = t->lv_len[i];
    } else {
        *why = "unknown placeholder";
        return false;
    }
    return true;
}

cairn_err
bridge_tpl_render(const char *tpl, const bridge_tctx *t, char *out, size_t cap,
                  const char *too_long, const char **why)
{
    size_t o = 0;
    for (const char *p = tpl; *p != '\0';) {
        const char *v = p;
        size_t      vlen = 1;
        const char *end = *p == '{' ? strchr(p, '}') : NULL;
        if (end != NULL) {
            if (!bridge_tpl_value(t, p + 1, (size_t)(end - p - 1), &v, &vlen,
                                  why)) {
                return CAIRN_EINVAL;
            }
            p = end + 1;
        } else {
            p++;
        }
        if (o + vlen >= cap) {
            *why = too_long;
            return CAIRN_ETOOBIG;
        }
        memcpy(out + o, v, vlen);
        o += vlen;
    }
    out[o] = '\0';
    return CAIRN_OK;
}

/* ---- config checks ------------------------------------------------------ */

cairn_err
bridge_check_file(const cairn_host *host, cairn_plugin *self, const char *key,
                  const char *path)
{
    if (path[0] != '\0' && access(path, R_OK) != 0) {
        host->log(self, CAIRN_LOG_ERROR, "%s '%s': %s", key, path,
                  strerror(errno));
        return CAIRN_ECONFIG;
    }
    return CAIRN_OK;
}

cairn_err
bridge_read_password(const cairn_host *host, cairn_plugin *self,
                     const char *path, char **out)
{
    char  line[1024];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        host->log(self, CAIRN_LOG_ERROR, "password_file '%s': %s", path,
                  strerror(errno));
        return CAIRN_ECONFIG;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    *out = strdup(line);
    explicit_bzero(line, sizeof(line));
    return *out != NULL ? CAIRN_OK : CAIRN_ENOMEM;
}

/* ---- the connection ----------------------------------------------------- */

uint64_t
bridge_backoff(uint64_t initial, uint64_t max, double multiplier,
               uint32_t attempt, uint64_t *rnd)
{
    double cap = (double)initial;
    for (uint32_t i = 1; i < attempt && cap < (double)max; i++) {
        cap *= multiplier;
    }
    if (cap > (double)max) {
        cap = (double)max;
    }
    *rnd ^= *rnd << 13;
    *rnd ^= *rnd >> 7;
    *rnd ^= *rnd << 17;
    uint64_t c = (uint64_t)cap;
    return c / 2 + *rnd % (c - c / 2 + 1);
}

void
bridge_link_state(const cairn_host *host, cairn_plugin *self, bool up)
{
    if (CAIRN_HOST_HAS(host, link_state)) {
        host->link_state(self, up);
    }
}

/* ---- uplink ------------------------------------------------------------- */

cairn_err
bridge_route_durable(const cairn_host *host, cairn_plugin *self, size_t i,
                     const char *filter, int prio)
{
    cairn_err rv = host->route_durable(self, filter, prio);
    if (rv != CAIRN_OK) {
        host->log(self, CAIRN_LOG_ERROR, "uplink[%zu]: durable route '%s': %s",
                  i, filter, cairn_strerror(rv));
    }
    return rv;
}

/* ---- downlink ----------------------------------------------------------- */

bool
bridge_id_zero(const uint8_t id[CAIRN_ID_LEN])
{
    for (size_t i = 0; i < CAIRN_ID_LEN; i++) {
        if (id[i] != 0) {
            return false;
        }
    }
    return true;
}

void
bridge_env_header(cairn_envelope *env, const char *name, const char *value)
{
    if (env->nheaders < CAIRN_ENV_MAX_HEADERS) {
        env->headers[env->nheaders].name = cairn_str_c(name);
        env->headers[env->nheaders].value = cairn_str_c(value);
        env->nheaders++;
    }
}

void
bridge_dup_check_warn(const cairn_host *host, cairn_plugin *self, cairn_err rv)
{
    host->log(self, CAIRN_LOG_WARN,
              "duplicate check unavailable (%s): redeliveries reach the bus",
              cairn_strerror(rv));
}
