/*
 * admin.c - the admin endpoint: an NNG rep0 socket on ipc:// that the
 * `cairn` CLI talks to (wire format in cairnd.h).
 *
 * One thread serves requests in turn; every command is short.  `sub` is
 * the exception, since it streams: the CLI listens on an ipc:// address of
 * its own and names it in the request; the daemon subscribes on the bus
 * and pushes each message there (push0) from the subscription's delivery
 * thread.  When the CLI goes away its pipe closes, a pipe callback marks
 * the forwarder dead, and the admin thread, which wakes at least every
 * ADMIN_TICK_MS, unsubscribes and frees it.  A forwarder is only ever
 * freed by the admin thread (or at close, after that thread has ended).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>

#include "cairnd.h"

#define ADMIN_TICK_MS 200
#define ADMIN_MAX_ARGS 8
#define ADMIN_FWD_SEND_MS 2000
#define ADMIN_CALL_MAX_MS 60000

typedef struct admin_fwd {
    struct admin_fwd *next;
    nng_socket        sock;
    cairn_sub        *sub;
    atomic_bool       dead;
} admin_fwd;

struct cd_admin {
    cd_runtime *rt;
    nng_socket  sock;
    pthread_t   thread;
    atomic_bool stop;
    admin_fwd  *fwds; /* only the admin thread touches the list */
};

typedef struct admin_req {
    size_t      argc;
    const char *argv[ADMIN_MAX_ARGS]; /* NUL-terminated copies */
    size_t      argl[ADMIN_MAX_ARGS];
    char       *store;
} admin_req;

/* Splits the request into arguments; false if malformed. */
static bool
admin_parse(nng_msg *msg, admin_req *rq)
{
    const uint8_t *p   = nng_msg_body(msg);
    size_t         len = nng_msg_len(msg);
    memset(rq, 0, sizeof(*rq));
    rq->store = malloc(len + ADMIN_MAX_ARGS);
    if (rq->store == NULL) {
        return false;
    }
    char *out = rq->store;
    while (len > 0) {
        if (len < 4 || rq->argc == ADMIN_MAX_ARGS) {
            return false;
        }
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 |
                   (size_t)p[2] << 8 | p[3];
        if (n > len - 4) {
            return false;
        }
        memcpy(out, p + 4, n);
        out[n]               = '\0';
        rq->argv[rq->argc]   = out;
        rq->argl[rq->argc++] = n;
        out += n + 1;
        p += 4 + n;
        len -= 4 + n;
    }
    return rq->argc > 0;
}

/* "services:" and one line per service: "  NAME OWNER CALLS BREAKER". */
static void
admin_status_services(cd_runtime *rt, cairni_buf *out)
{
    cairni_buf list = {0};
    cairni_bus_list_services(rt->bus, &list);
    cairni_buf_printf(out, "services:\n");
    for (size_t at = 0; at < list.len;) {
        const char *line = list.data + at;
        const char *nl = memchr(line, '\n', list.len - at);
        size_t      n = nl != NULL ? (size_t)(nl - line) : list.len - at;
        cairni_buf_printf(out, "  %.*s\n", (int)n, line);
        at += n + 1;
    }
    cairni_buf_fini(&list);
}

static void
admin_cmd_status(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cd_runtime *rt      = ad->rt;
    size_t      running = 0, failed = 0;
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->nplugins; i++) {
        running += rt->plugins[i].st == CD_STARTED;
        failed += rt->plugins[i].st == CD_FAILED;
    }
    pthread_mutex_unlock(&rt->lock);
    cairni_buf_printf(out,
                      "name: %s\nversion: %s\nabi: %u.%u\npid: %ld\n"
                      "uptime_s: %llu\ndata_dir: %s\nadmin: %s\n"
                      "plugins: %zu (%zu running, %zu failed)\n",
                      rt->cfg->runtime.name, CAIRN_VERSION_STRING,
                      CAIRN_ABI_MAJOR, CAIRN_ABI_MINOR, (long)getpid(),
                      (unsigned long long)((cairni_mono_ms() - rt->started_ms) /
                                           1000),
                      rt->cfg->runtime.data_dir, rt->admin_url, rt->nplugins,
                      running, failed);
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->nplugins; i++) {
        const cairn_plugin *p = &rt->plugins[i];
        cairni_buf_printf(out, "  %s: %s%s%s\n", p->cfg->name,
                          cd_state_name(p->st), p->status[0] ? ", " : "",
                          p->status);
    }
    pthread_mutex_unlock(&rt->lock);
    admin_status_services(rt, out);
}

static void
admin_cmd_plugins(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cd_runtime *rt = ad->rt;
    cairni_buf_printf(out, "%-20s %-16s %-8s %-12s %10s %10s %8s  %s\n",
                      "NAME", "KIND", "VERSION", "STATE", "PUBLISHED",
                      "DELIVERED", "ERRORS", "DETAIL");
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < rt->nplugins; i++) {
        const cairn_plugin      *p = &rt->plugins[i];
        const cairn_plugin_desc *d = p->so.desc;
        cairni_buf_printf(
            out, "%-20s %-16s %-8s %-12s %10llu %10llu %8llu  %s\n",
            p->cfg->name, d ? d->name : "-",
            d && d->version ? d->version : "-", cd_state_name(p->st),
            (unsigned long long)atomic_load(&p->published),
            (unsigned long long)atomic_load(&p->delivered),
            (unsigned long long)atomic_load(&p->errors),
            p->st == CD_FAILED ? p->error
            : p->status[0]     ? p->status
                               : p->so.path);
    }
    pthread_mutex_unlock(&rt->lock);
}

static void
admin_cmd_metrics(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cd_metrics_render(ad->rt, out);
}

static void
admin_cmd_services(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cairni_bus_list_services(ad->rt->bus, out);
}

/* pub TOPIC PAYLOAD [KEY] */
static cairn_err
admin_cmd_pub(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cairn_envelope env;
    char           idtext[37];
    if (rq->argc < 3 || rq->argc > 4) {
        cairni_buf_printf(out, "usage: pub TOPIC PAYLOAD [KEY]");
        return CAIRN_EINVAL;
    }
    cairn_envelope_init(&env);
    env.topic.ptr   = rq->argv[1];
    env.topic.len   = rq->argl[1];
    env.payload.ptr = (const uint8_t *)rq->argv[2];
    env.payload.len = rq->argl[2];
    if (rq->argc == 4) {
        env.key.ptr = rq->argv[3];
        env.key.len = rq->argl[3];
        env.flags |= CAIRN_ENV_HAS_KEY;
    }
    if (cairn_topic_valid(env.topic.ptr, env.topic.len) != CAIRN_OK) {
        cairni_buf_printf(out, "invalid topic '%s' (wildcards are for filters)",
                          rq->argv[1]);
        return CAIRN_EINVAL;
    }
    cairn_err rv = cd_publish(ad->rt, &env, env.id);
    if (rv == CAIRN_OK) {
        cairni_buf_printf(out, "%s\n", cairn_id_format(env.id, idtext));
    } else {
        cairni_buf_printf(out, "publish failed: %s", cairn_strerror(rv));
    }
    return rv;
}

static void
admin_cmd_outbox(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cairni_store_render_outbox(ad->rt->store, out);
}

/* dlq list [LIMIT] | dlq replay ID | dlq replay --all | dlq purge */
static cairn_err
admin_cmd_dlq(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cairni_store *st = ad->rt->store;
    size_t        n  = 0;
    cairn_err     rv = CAIRN_EINVAL;
    const char   *op = rq->argc >= 2 ? rq->argv[1] : "";
    if (strcmp(op, "list") == 0 && rq->argc <= 3) {
        size_t limit = rq->argc == 3 ? strtoul(rq->argv[2], NULL, 10) : 100;
        return cairni_dlq_list(st, limit ? limit : 100, out);
    }
    if (strcmp(op, "replay") == 0 && rq->argc == 3) {
        bool all = strcmp(rq->argv[2], "--all") == 0;
        rv = cairni_dlq_replay(st, all ? NULL : rq->argv[2], all, &n);
        if (rv == CAIRN_OK) {
            cairni_buf_printf(out, "replayed %zu\n", n);
        } else {
            cairni_buf_printf(out, "replay %s: %s", rq->argv[2],
                              cairn_strerror(rv));
        }
        return rv;
    }
    if (strcmp(op, "purge") == 0 && rq->argc == 2) {
        if ((rv = cairni_dlq_purge(st, &n)) == CAIRN_OK) {
            cairni_buf_printf(out, "purged %zu\n", n);
        }
        return rv;
    }
    cairni_buf_printf(out, "usage: dlq list [LIMIT] | dlq replay ID|--all | "
                           "dlq purge");
    return rv;
}

/* call SERVICE PAYLOAD TIMEOUT_MS: the reply payload, or the error. */
static cairn_err
admin_cmd_call(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    cairn_envelope env;
    cairn_reply    reply;
    char          *end;
    unsigned long  ms = rq->argc == 4 ? strtoul(rq->argv[3], &end, 10) : 0;
    if (rq->argc != 4 || *end != '\0' || ms == 0 || ms > ADMIN_CALL_MAX_MS) {
        cairni_buf_printf(out, "usage: call SERVICE PAYLOAD TIMEOUT_MS "
                               "(1..%d)", ADMIN_CALL_MAX_MS);
        return CAIRN_EINVAL;
    }
    cairn_envelope_init(&env);
    env.topic       = cairn_str_c(rq->argv[1]);
    env.payload.ptr = (const uint8_t *)rq->argv[2];
    env.payload.len = rq->argl[2];
    cairn_err rv = cairni_bus_call(ad->rt->bus, rq->argv[1], &env,
                                   (uint32_t)ms, &reply);
    if (rv != CAIRN_OK) {
        cairni_buf_printf(out, "call %s: %s", rq->argv[1], cairn_strerror(rv));
        return rv;
    }
    cairni_buf_append(out, reply.data, reply.len);
    rv = reply.status;
    cairni_reply_fini(&reply);
    return rv;
}

static void
admin_fwd_deliver(void *arg, const cairn_envelope *env)
{
    admin_fwd *f = arg;
    nng_msg   *msg;
    size_t     n = cairn_envelope_encoded_size(env), len;
    if (atomic_load(&f->dead) || nng_msg_alloc(&msg, n) != 0) {
        return;
    }
    if (cairn_envelope_encode(env, nng_msg_body(msg), n, &len) != CAIRN_OK ||
        nng_sendmsg(f->sock, msg, 0) != 0) {
        nng_msg_free(msg);
        atomic_store(&f->dead, true);
    }
}

static void
admin_fwd_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    atomic_store(&((admin_fwd *)arg)->dead, true);
}

static void
admin_fwd_free(admin_fwd *f)
{
    if (f->sub != NULL) {
        cairni_bus_unsubscribe(f->sub);
    }
    nng_close(f->sock);
    free(f);
}

/* sub FILTER URL: stream matching messages to the CLI listening at URL. */
static cairn_err
admin_cmd_sub(cd_admin *ad, const admin_req *rq, cairni_buf *out)
{
    admin_fwd *f;
    int        e;
    cairn_err  rv = CAIRN_EINVAL;
    if (rq->argc != 3 || strncmp(rq->argv[2], "ipc://", 6) != 0) {
        cairni_buf_printf(out, "usage: sub FILTER ipc://ADDRESS");
        return rv;
    }
    if (cairn_filter_valid(rq->argv[1]) != CAIRN_OK) {
        cairni_buf_printf(out, "invalid filter '%s'", rq->argv[1]);
        return rv;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        return CAIRN_ENOMEM;
    }
    if ((e = nng_push0_open(&f->sock)) != 0 ||
        (e = nng_socket_set_ms(f->sock, NNG_OPT_SENDTIMEO,
                               ADMIN_FWD_SEND_MS)) != 0 ||
        (e = nng_pipe_notify(f->sock, NNG_PIPE_EV_REM_POST, admin_fwd_pipe,
                             f)) != 0 ||
        (e = nng_dial(f->sock, rq->argv[2], NULL, 0)) != 0) {
        cairni_buf_printf(out, "cannot reach %s: %s", rq->argv[2],
                          nng_strerror(e));
        rv = cairni_nng_err(e);
        goto fail;
    }
    rv = cairni_bus_subscribe(ad->rt->bus, rq->argv[1], "admin",
                              admin_fwd_deliver, f, &f->sub);
    if (rv != CAIRN_OK) {
        cairni_buf_printf(out, "subscribe failed: %s", cairn_strerror(rv));
        goto fail;
    }
    f->next  = ad->fwds;
    ad->fwds = f;
    return CAIRN_OK;
fail:
    admin_fwd_free(f);
    return rv;
}

static void
admin_reap(cd_admin *ad, bool all)
{
    admin_fwd **pp = &ad->fwds;
    while (*pp != NULL) {
        admin_fwd *f = *pp;
        if (all || atomic_load(&f->dead)) {
            *pp = f->next;
            admin_fwd_free(f);
        } else {
            pp = &f->next;
        }
    }
}

typedef struct admin_cmd {
    const char *name;
    cairn_err (*fn)(cd_admin *, const admin_req *, cairni_buf *);
    void (*show)(cd_admin *, const admin_req *, cairni_buf *);
} admin_cmd;

static const admin_cmd admin_cmds[] = {
    {"status", NULL, admin_cmd_status},
    {"plugins", NULL, admin_cmd_plugins},
    {"metrics", NULL, admin_cmd_metrics},
    {"services", NULL, admin_cmd_services},
    {"pub", admin_cmd_pub, NULL},
    {"sub", admin_cmd_sub, NULL},
    {"call", admin_cmd_call, NULL},
    {"outbox", NULL, admin_cmd_outbox},
    {"dlq", admin_cmd_dlq, NULL},
};

static cairn_err
admin_dispatch(cd_admin *ad, nng_msg *req, cairni_buf *out)
{
    admin_req rq;
    cairn_err rv = CAIRN_EPROTO;
    if (!admin_parse(req, &rq)) {
        cairni_buf_printf(out, "malformed admin request");
        goto done;
    }
    rv = CAIRN_ENOTSUP;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(admin_cmds); i++) {
        const admin_cmd *c = &admin_cmds[i];
        if (strcmp(rq.argv[0], c->name) == 0) {
            rv = CAIRN_OK;
            if (c->fn != NULL) {
                rv = c->fn(ad, &rq, out);
            } else {
                c->show(ad, &rq, out);
            }
            goto done;
        }
    }
    cairni_buf_printf(out, "unknown command '%.64s'", rq.argv[0]);
done:
    free(rq.store);
    if (out->failed) {
        return CAIRN_ENOMEM;
    }
    return rv;
}

static void
admin_serve_one(cd_admin *ad, nng_msg *msg)
{
    cairni_buf out = {0};
    cairn_err  rv  = admin_dispatch(ad, msg, &out);
    uint8_t    st[4] = {(uint8_t)(rv >> 24), (uint8_t)(rv >> 16),
                        (uint8_t)(rv >> 8), (uint8_t)rv};
    nng_msg_clear(msg);
    if (nng_msg_append(msg, st, 4) != 0 ||
        (out.len > 0 && nng_msg_append(msg, out.data, out.len) != 0) ||
        nng_sendmsg(ad->sock, msg, 0) != 0) {
        nng_msg_free(msg);
    }
    cairni_buf_fini(&out);
}

static void *
admin_main(void *arg)
{
    cd_admin *ad = arg;
    while (!atomic_load(&ad->stop)) {
        nng_msg *msg;
        int      e = nng_recvmsg(ad->sock, &msg, 0);
        if (e == 0) {
            admin_serve_one(ad, msg);
        } else if (e != NNG_ETIMEDOUT) {
            break;
        }
        admin_reap(ad, false);
    }
    return NULL;
}

cairn_err
cd_admin_open(cd_runtime *rt, const char *url, cd_admin **adp)
{
    int       e;
    cd_admin *ad = calloc(1, sizeof(*ad));
    if (ad == NULL) {
        return CAIRN_ENOMEM;
    }
    ad->rt = rt;
    /* NNG's ipc listener removes a stale socket file left by a killed
     * daemon, and refuses one that a live daemon still listens on. */
    if ((e = nng_rep0_open(&ad->sock)) != 0) {
        free(ad);
        return cairni_nng_err(e);
    }
    if ((e = nng_socket_set_ms(ad->sock, NNG_OPT_RECVTIMEO, ADMIN_TICK_MS)) ||
        (e = nng_listen(ad->sock, url, NULL, 0))) {
        cairni_log(CAIRN_LOG_ERROR, "admin", "cannot listen on %s: %s", url,
                   nng_strerror(e));
        goto fail;
    }
    if ((e = pthread_create(&ad->thread, NULL, admin_main, ad)) != 0) {
        e = NNG_ESYSERR | e;
        goto fail;
    }
    cairni_log(CAIRN_LOG_INFO, "admin", "listening on %s", url);
    *adp = ad;
    return CAIRN_OK;
fail:
    nng_close(ad->sock);
    free(ad);
    return cairni_nng_err(e);
}

void
cd_admin_close(cd_admin *ad)
{
    atomic_store(&ad->stop, true);
    pthread_join(ad->thread, NULL);
    nng_close(ad->sock);
    admin_reap(ad, true);
    free(ad);
}
