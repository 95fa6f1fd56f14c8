/*
 * cairnd.h - the daemon's own modules:
 *
 *   loader.c   checks a shared object (ELF header, architecture), dlopens
 *              it, finds the entry, checks the descriptor's ABI and size
 *   host.c     the cairn_host function table plugins call
 *   runtime.c  plugin instances: config, init/start/run/stop/fini, state
 *   admin.c    the admin endpoint (NNG rep0 over ipc://) for the CLI
 *   main.c     argument parsing, signals
 *
 * Plugin instance states (cd_state), in the only order they happen:
 *   LOADED -> INITED -> STARTED -> STOPPED -> (fini) FINISHED
 * and FAILED from any of the first three when that step failed.  Only the
 * daemon's main thread changes states; the admin thread reads them under
 * the runtime lock.
 */
#ifndef CAIRND_H
#define CAIRND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cairni.h"
#include "store.h"

/* Exit codes of cairnd, documented in --help and the README. */
enum {
    CD_EXIT_OK     = 0,
    CD_EXIT_FAIL   = 1, /* runtime failure (a required plugin failed, ...) */
    CD_EXIT_USAGE  = 2, /* bad command line */
    CD_EXIT_CONFIG = 3, /* configuration invalid */
};

/* ---- loader.c ---------------------------------------------------------- */

/* A loaded shared object with a checked descriptor. */
typedef struct cd_so {
    void                    *dl;
    const cairn_plugin_desc *desc;
    char                     path[4096];
} cd_so;

/*
 * Resolves name (a path, or a file name looked up in plugin_dir), checks
 * it and loads it.  On error err names the file and the reason and
 * nothing stays loaded.  On success cd_so_close() releases it.
 */
cairn_err cd_so_open(const char *name, const char *plugin_dir, cd_so *so,
                     char *err, size_t errlen);
void      cd_so_close(cd_so *so);

/* ---- runtime.c --------------------------------------------------------- */

typedef enum cd_state {
    CD_LOADED = 0,
    CD_INITED,
    CD_STARTED,
    CD_STOPPED,
    CD_FINISHED,
    CD_FAILED,
} cd_state;

const char *cd_state_name(cd_state st);

typedef struct cd_runtime cd_runtime;

/* A subscription, queue consumer or service a plugin holds. */
typedef struct cd_handle {
    struct cd_handle *next;
    cairn_plugin     *owner;
    cairn_sub        *sub; /* one of sub, svc */
    cairn_svc        *svc;
    cairn_msg_fn      fn;
    void             *arg;
} cd_handle;

/* One plugin instance: the struct behind the ABI's cairn_plugin. */
struct cairn_plugin {
    cd_runtime              *rt;
    const cairni_plugin_cfg *cfg;
    cd_so                    so;
    void                    *config; /* filled by the desc's table */
    cairni_arena             arena;  /* config strings and lists */
    void                    *state;  /* the plugin's own */
    cd_state                 st;
    bool                     inited;  /* init succeeded: fini is owed */
    bool                     started; /* start was called: stop is owed */
    char                     error[512];

    pthread_mutex_t lock; /* guards handles and the sleep condition */
    pthread_cond_t  cv;
    cd_handle      *handles;
    atomic_bool     stopping;
    pthread_t       run_thread;
    bool            has_run_thread;

    cairni_drain  *drain;      /* this instance's outbox, opened lazily */
    cairn_inbox_fn inbox_fn;   /* set by inbox_consume */
    void          *inbox_arg;
    pthread_t      inbox_thread;
    bool           has_inbox_thread;

    char status[256]; /* host->status; guarded by rt->lock */
    struct cd_metric *metrics; /* CD_MAX_METRICS, allocated on first use */

    _Atomic uint64_t published;
    _Atomic uint64_t delivered;
    _Atomic uint64_t errors;
    _Atomic uint64_t calls;
    _Atomic int      link; /* host->link_state: 0 never, 1 up, 2 down */
};

/* A plugin's own metric (host->gauge_set, host->counter_add). */
#define CD_MAX_METRICS 32
typedef struct cd_metric {
    char             name[49]; /* "" = free slot; set once under p->lock */
    bool             gauge;
    _Atomic uint64_t value;    /* counter value, or the gauge's double bits */
} cd_metric;

/* A durable route: from the config, or registered by a plugin. */
typedef struct cd_route {
    char       *filter;
    const char *to;
    int         priority;
} cd_route;

struct cd_runtime {
    cairni_config  *cfg;
    const char     *plugin_dir; /* resolved */
    char            admin_url[4200];
    cairni_metrics *metrics;
    cairni_bus     *bus;
    cairn_plugin   *plugins; /* cfg->plugins.count */
    size_t          nplugins;
    pthread_mutex_t lock;
    uint64_t        started_ms;
    struct cd_admin *admin;
    cairni_store   *store;
    pthread_rwlock_t routes_lock; /* guards routes, nroutes */
    cd_route        *routes;
    size_t           nroutes;
};

/* ---- durable.c --------------------------------------------------------- */

/* Opens the store (data_dir/cairn.db) with the config's limits. */
cairn_err cd_durable_open(cd_runtime *rt, char *err, size_t errlen);

/*
 * Publishes env (id and ts filled in when zero) on the bus; when its topic
 * matches durable routes, it is first committed to each destination's
 * outbox.  A failed commit (CAIRN_EFULL, ...) publishes nothing.
 * On success env_id (may be NULL) gets the message id.
 */
cairn_err cd_publish(cd_runtime *rt, const cairn_envelope *env,
                     uint8_t env_id[CAIRN_ID_LEN]);
/*
 * host->publish_once: unless consumer has accepted env->id (not zero)
 * before, records it and commits env to every matching durable route in
 * one transaction, then publishes on the bus.  CAIRN_EEXIST: nothing done.
 */
cairn_err cd_publish_once(cd_runtime *rt, const char *consumer,
                          const cairn_envelope *env);

/* Copies the config's routes; frees them all. */
cairn_err cd_routes_init(cd_runtime *rt);
void      cd_routes_fini(cd_runtime *rt);
cairn_err cd_route_add(cd_runtime *rt, const char *filter, const char *to,
                       int priority);

/* Host functions of ABI 1.1 (durable messaging). */
cairn_err cd_outbox_next(cairn_plugin *self, cairn_record *recs, size_t max,
                         uint32_t wait_ms, size_t *n);
cairn_err cd_outbox_ack(cairn_plugin *self, uint64_t seq);
cairn_err cd_outbox_nack(cairn_plugin *self, uint64_t seq, bool permanent,
                         const char *error);
void      cd_outbox_reset(cairn_plugin *self);
cairn_err cd_inbox_consume(cairn_plugin *self, cairn_inbox_fn fn, void *arg);
cairn_err cd_inbox_accept(cairn_plugin *self, const uint8_t id[CAIRN_ID_LEN]);
/* Waits for the inbox thread (stopping must be set): no handler runs after. */
void      cd_inbox_join(cairn_plugin *p);
/* Closes the plugin's drainer, once no thread of the plugin uses it. */
void      cd_durable_stop(cairn_plugin *p);

/*
 * Loads every plugin (relative paths resolved in plugin_dir) and
 * validates its config.  With check_only, stops
 * there (nothing is initialized).  err gets the first fatal error.
 */
cairn_err cd_runtime_open(cd_runtime **rtp, cairni_config *cfg,
                          const char *plugin_dir, bool check_only, char *err,
                          size_t errlen);
/* init and start every loaded plugin in config order, then the admin. */
cairn_err cd_runtime_start(cd_runtime *rt, char *err, size_t errlen);
/* stop in reverse order, fini, close; frees rt (not cfg). */
void      cd_runtime_close(cd_runtime *rt);

/* ---- host.c ------------------------------------------------------------ */

extern const cairn_host cd_host;

/* Releases every subscription and service the plugin still holds. */
void cd_host_release_all(cairn_plugin *p);
/* Wakes the plugin's sleepers after stopping was set. */
void cd_host_wake(cairn_plugin *p);
/* The runtime's metrics in Prometheus text (`cairn metrics`, /metrics). */
void cd_metrics_render(cd_runtime *rt, cairni_buf *out);
/* Every plugin started and every reported link up; else why says which. */
bool cd_ready(cd_runtime *rt, char *why, size_t len);

/* ---- admin.c ----------------------------------------------------------- */

typedef struct cd_admin cd_admin;

cairn_err cd_admin_open(cd_runtime *rt, const char *url, cd_admin **adp);
void      cd_admin_close(cd_admin *ad);

/* Admin wire format, shared with the CLI (cli/main.c):
 *   request: one or more arguments, each a 4-byte big-endian length and
 *            that many bytes; the first argument is the command name.
 *   reply:   4-byte big-endian cairn_err status, then the command's text
 *            (on error: a message).
 */

#endif /* CAIRND_H */
