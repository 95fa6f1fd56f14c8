/*
 * bench_rig.h - what the bridge benchmarks share: a host table backed by
 * a real store's outbox, a plugin loaded with dlopen and driven through
 * it, a backlog filler and bounded waits.
 *
 * A benchmark sets bench_prog (the prefix of its error messages), builds
 * a rig with rig_init, rig_store, rig_fill, rig_plugin and rig_start,
 * waits with bench_wait_u64 and ends with rig_close.
 */
#ifndef CAIRN_BENCH_RIG_H
#define CAIRN_BENCH_RIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairni.h"
#include "store.h"

#define BENCH_PAYLOAD 200

/* The prefix of bench_die's messages: the benchmark's name. */
extern const char *bench_prog;

/* Prints "bench_prog: what" and exits 1. */
void bench_die(const char *what);

/* The plugin as the host table sees it: the outbox drain it reads and
 * the acks it has seen so far. */
struct cairn_plugin {
    cairni_drain   *drain;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    uint64_t        acked, want, errors;
    bool            connected;       /* last value of connected_gauge */
    const char     *connected_gauge; /* NULL: not watched */
    atomic_bool     stopping;
};

/* Backed by the drain: next/ack/nack/reset, logs warnings and errors to
 * stderr, counts acks (waking waiters once want is reached) and nacks;
 * status, counters, link state and routes are ignored, subscribe is not
 * supported. */
extern const cairn_host bench_host;

typedef struct rig {
    char                     dir[256];
    cairni_store            *store;
    const cairn_plugin_desc *desc;
    void                    *dl;
    struct cairn_plugin      self;
    void                    *cfg;
    cairni_arena             arena;
    void                    *state;
    pthread_t                run;
} rig;

/* Zeroes g; the host counts toward want acks. */
void rig_init(rig *g, uint64_t want);

/* A fresh store (sync normal) in a temporary dir, its outbox window
 * window, and the drain "bench" on it. */
void rig_store(rig *g, uint32_t window);

/* n envelopes of BENCH_PAYLOAD bytes on bench/k<i % 8>, committed 1000
 * at a time. */
void rig_fill(rig *g, uint64_t n);

/* Loads the plugin at path, fills its config from yaml, inits it. */
void rig_plugin(rig *g, const char *path, const char *yaml);

/* start() and run() on a thread of its own. */
void rig_start(rig *g);

/* Stops, finishes and unloads the plugin; closes and removes the store. */
void rig_close(rig *g);

/* Waits until *v reaches want (mu held to read it, cv signalled on
 * change), at most wait_ms; false on timeout. */
bool bench_wait_u64(pthread_mutex_t *mu, pthread_cond_t *cv, const uint64_t *v,
                    uint64_t want, uint64_t wait_ms);

#endif /* CAIRN_BENCH_RIG_H */
