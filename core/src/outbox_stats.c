/*
 * outbox_stats.c - what operators see of the store: stats per
 * destination, the `cairn outbox` table, Prometheus metrics, and the
 * dead-letter commands (list, replay, purge).
 *
 * Counters and depths come from the destinations' atomics, which change
 * only after commits, so a reader never sees a change that was rolled
 * back.  The age of the oldest record and the time to the next retry
 * are index lookups on the query connection (s->qdb, under s->qmu), never
 * on the writer's.  Replay and purge are requests to the writer like any
 * other change.
 *
 * The store's failures (I/O errors, full disk, damaged files, files moved
 * aside at open) are process-wide counters kept in store.c; the number of
 * moved-aside files still in the data dir is a gauge read at each scrape,
 * so the alarm stays up across restarts until an operator removes them.
 */
#include <string.h>

#include "store_impl.h"

static void
outbox_ages(cairni_store *s, store_dest *d, cairni_dest_stats *st)
{
    uint64_t now = cairni_store_now_ms();
    int64_t  oldest = INT64_MAX;
    pthread_mutex_lock(&s->qmu);
    for (int prio = 0; prio <= CAIRNI_PRIO_HIGH; prio++) {
        sqlite3_bind_text(s->q_oldest, 1, d->name, -1, SQLITE_STATIC);
        sqlite3_bind_int(s->q_oldest, 2, prio);
        if (sqlite3_step(s->q_oldest) == SQLITE_ROW) {
            int64_t c = sqlite3_column_int64(s->q_oldest, 0);
            oldest = c < oldest ? c : oldest;
        }
        sqlite3_reset(s->q_oldest);
    }
    sqlite3_bind_text(s->q_retry, 1, d->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->q_retry, 2, (int64_t)now);
    if (sqlite3_step(s->q_retry) == SQLITE_ROW &&
        sqlite3_column_type(s->q_retry, 0) != SQLITE_NULL) {
        st->next_retry_ms = (uint64_t)sqlite3_column_int64(s->q_retry, 0) - now;
    }
    sqlite3_reset(s->q_retry);
    pthread_mutex_unlock(&s->qmu);
    if (oldest != INT64_MAX && (int64_t)now > oldest) {
        st->oldest_ms = now - (uint64_t)oldest;
    }
}

static void
outbox_fill(cairni_store *s, store_dest *d, cairni_dest_stats *st)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", d->name);
    int64_t depth = atomic_load(&d->depth), bytes = atomic_load(&d->bytes);
    int64_t dd = atomic_load(&d->ddepth), db = atomic_load(&d->dbytes);
    st->depth = depth > 0 ? (uint64_t)depth : 0;
    st->bytes = bytes > 0 ? (uint64_t)bytes : 0;
    st->dead_depth = dd > 0 ? (uint64_t)dd : 0;
    st->dead_bytes = db > 0 ? (uint64_t)db : 0;
    st->inflight = atomic_load(&d->inflight);
    st->enqueued = atomic_load(&d->enqueued);
    st->acked = atomic_load(&d->acked);
    st->retried = atomic_load(&d->retried);
    st->expired = atomic_load(&d->expired);
    st->dropped = atomic_load(&d->dropped);
    st->dead = atomic_load(&d->dead);
    st->rejected = atomic_load(&d->rejected);
    st->duplicates = atomic_load(&d->duplicates);
    if (st->depth > 0) {
        outbox_ages(s, d, st);
    }
}

cairn_err
cairni_store_stats(cairni_store *s, const char *dest, cairni_dest_stats *st)
{
    if (s == NULL || dest == NULL || st == NULL) {
        return CAIRN_EINVAL;
    }
    store_dest *d = cairni_store_dest(s, dest, strlen(dest), false);
    if (d == NULL) {
        return CAIRN_ENOENT;
    }
    outbox_fill(s, d, st);
    return CAIRN_OK;
}

void
cairni_store_render_outbox(cairni_store *s, cairni_buf *out)
{
    store_dest       *dests[STORE_MAX_DESTS];
    cairni_dest_stats st;
    size_t            n = cairni_store_dest_list(s, dests, STORE_MAX_DESTS);
    cairni_buf_printf(out,
                      "%-20s %8s %10s %8s %8s %9s %9s %9s %7s %7s %7s %6s"
                      " %8s\n",
                      "DEST", "DEPTH", "BYTES", "INFLIGHT", "OLDEST",
                      "NEXTRETRY", "ENQUEUED", "ACKED", "RETRIED", "EXPIRED",
                      "DROPPED", "DEAD", "REJECTED");
    for (size_t i = 0; i < n; i++) {
        outbox_fill(s, dests[i], &st);
        cairni_buf_printf(
            out,
            "%-20s %8llu %10llu %8llu %7.1fs %7llums %9llu %9llu %7llu"
            " %7llu %7llu %6llu %8llu\n",
            st.name, (unsigned long long)st.depth, (unsigned long long)st.bytes,
            (unsigned long long)st.inflight, (double)st.oldest_ms / 1000.0,
            (unsigned long long)st.next_retry_ms,
            (unsigned long long)st.enqueued, (unsigned long long)st.acked,
            (unsigned long long)st.retried, (unsigned long long)st.expired,
            (unsigned long long)st.dropped, (unsigned long long)st.dead,
            (unsigned long long)st.rejected);
    }
}

/* The metrics of one destination, in the order of outbox_metric_names. */
static void
outbox_metric_values(const cairni_dest_stats *st, double v[12])
{
    v[0] = (double)st->depth;
    v[1] = (double)st->bytes;
    v[2] = (double)st->inflight;
    v[3] = (double)st->oldest_ms / 1000.0;
    v[4] = (double)st->enqueued;
    v[5] = (double)st->acked;
    v[6] = (double)st->retried;
    v[7] = (double)st->expired;
    v[8] = (double)st->dropped;
    v[9] = (double)st->dead;
    v[10] = (double)st->rejected;
    v[11] = (double)st->dead_depth;
}

static const char *const outbox_metric_names[12] = {
    "cairn_outbox_depth gauge",
    "cairn_outbox_bytes gauge",
    "cairn_outbox_inflight gauge",
    "cairn_outbox_oldest_age_seconds gauge",
    "cairn_outbox_enqueued_total counter",
    "cairn_outbox_acked_total counter",
    "cairn_outbox_retried_total counter",
    "cairn_outbox_expired_total counter",
    "cairn_outbox_dropped_total counter",
    "cairn_outbox_dead_lettered_total counter",
    "cairn_outbox_rejected_total counter",
    "cairn_outbox_dead_letters gauge",
};

static void
outbox_render_hist(cairni_store *s, cairni_buf *out)
{
    uint64_t cum = 0;
    cairni_buf_printf(out, "# TYPE cairn_store_commit_batch histogram\n");
    for (size_t i = 0; i <= STORE_HIST_BUCKETS; i++) {
        cum += atomic_load(&s->hist[i]);
        if (i < STORE_HIST_BUCKETS) {
            cairni_buf_printf(out,
                              "cairn_store_commit_batch_bucket{le=\"%zu\"}"
                              " %llu\n",
                              (size_t)1 << i, (unsigned long long)cum);
        } else {
            cairni_buf_printf(out,
                              "cairn_store_commit_batch_bucket{le=\"+Inf\"}"
                              " %llu\n",
                              (unsigned long long)cum);
        }
    }
    cairni_buf_printf(out,
                      "cairn_store_commit_batch_sum %llu\n"
                      "cairn_store_commit_batch_count %llu\n",
                      (unsigned long long)atomic_load(&s->hist_sum),
                      (unsigned long long)atomic_load(&s->hist_count));
}

static void
outbox_render_faults(cairni_store *s, cairni_buf *out)
{
    cairni_store_faults f;
    cairni_store_faults_get(&f);
    cairni_buf_printf(
        out,
        "# TYPE cairn_store_errors_total counter\n"
        "cairn_store_errors_total{cause=\"io\"} %llu\n"
        "cairn_store_errors_total{cause=\"full\"} %llu\n"
        "cairn_store_errors_total{cause=\"corrupt\"} %llu\n"
        "# TYPE cairn_store_corrupt_recovered_total counter\n"
        "cairn_store_corrupt_recovered_total{file=\"db\"} %llu\n"
        "cairn_store_corrupt_recovered_total{file=\"wal\"} %llu\n"
        "# TYPE cairn_store_corrupt_files gauge\n"
        "cairn_store_corrupt_files %zu\n",
        (unsigned long long)f.io, (unsigned long long)f.full,
        (unsigned long long)f.corrupt, (unsigned long long)f.reset_db,
        (unsigned long long)f.reset_wal, cairni_store_corrupt_files(s->path));
}

void
cairni_store_render_metrics(cairni_store *s, cairni_buf *out)
{
    store_dest *dests[STORE_MAX_DESTS];
    size_t      n = cairni_store_dest_list(s, dests, STORE_MAX_DESTS);
    double(*v)[12] = n > 0 ? cairni_store_calloc(n, sizeof(*v)) : NULL;
    for (size_t i = 0; i < n && v != NULL; i++) {
        cairni_dest_stats st;
        outbox_fill(s, dests[i], &st);
        outbox_metric_values(&st, v[i]);
    }
    for (size_t m = 0; m < 12 && (v != NULL || n == 0); m++) {
        const char *sp = strchr(outbox_metric_names[m], ' ');
        int         nl = (int)(sp - outbox_metric_names[m]);
        cairni_buf_printf(out, "# TYPE %s\n", outbox_metric_names[m]);
        for (size_t i = 0; i < n; i++) {
            cairni_buf_printf(out, "%.*s{dest=\"", nl, outbox_metric_names[m]);
            cairni_prom_escape(out, dests[i]->name, strlen(dests[i]->name));
            cairni_buf_printf(out, "\"} %.15g\n", v[i][m]);
        }
    }
    cairni_store_free(v);
    outbox_render_hist(s, out);
    outbox_render_faults(s, out);
}

/* ---- dead letters -------------------------------------------------------- */

/* One line of the dead-letter list: id dest attempts age error. */
static void
outbox_dlq_line(sqlite3_stmt *st, uint64_t now, cairni_buf *out)
{
    char        id[37];
    const void *msgid = sqlite3_column_blob(st, 0);
    int         idlen = sqlite3_column_bytes(st, 0);
    const char *dest = (const char *)sqlite3_column_text(st, 1);
    int64_t     died = sqlite3_column_int64(st, 3);
    const char *error = (const char *)sqlite3_column_text(st, 4);
    if (msgid == NULL || idlen != CAIRN_ID_LEN) {
        return;
    }
    cairn_id_format(msgid, id);
    cairni_buf_printf(
        out, "%s %s %lld %.1fs %s\n", id, dest != NULL ? dest : "-",
        (long long)sqlite3_column_int64(st, 2),
        now > (uint64_t)died ? (double)(now - (uint64_t)died) / 1000.0 : 0.0,
        error != NULL ? error : "-");
}

cairn_err
cairni_dlq_list(cairni_store *s, size_t limit, cairni_buf *out)
{
    sqlite3_stmt *st = s->q_dlq;
    uint64_t      now = cairni_store_now_ms();
    int           rc;
    pthread_mutex_lock(&s->qmu);
    sqlite3_bind_int64(st, 1, limit == 0 ? -1 : (int64_t)limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        outbox_dlq_line(st, now, out);
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&s->qmu);
    if (rc != SQLITE_DONE) {
        return cairni_store_sqlerr(rc);
    }
    return out->failed ? CAIRN_ENOMEM : CAIRN_OK;
}

cairn_err
cairni_dlq_replay(cairni_store *s, const char *id, bool all, size_t *n)
{
    uint8_t   msgid[CAIRN_ID_LEN];
    store_req req = {.kind = STORE_REQ_REPLAY};
    if (s == NULL || (!all && (id == NULL || cairn_id_parse(id, msgid)))) {
        return CAIRN_EINVAL;
    }
    req.u.replay.id = all ? NULL : msgid;
    cairn_err rv = cairni_store_submit(s, &req);
    if (n != NULL) {
        *n = rv == CAIRN_OK ? req.u.replay.n : 0;
    }
    return rv;
}

cairn_err
cairni_dlq_purge(cairni_store *s, size_t *n)
{
    store_req req = {.kind = STORE_REQ_PURGE};
    if (s == NULL) {
        return CAIRN_EINVAL;
    }
    cairn_err rv = cairni_store_submit(s, &req);
    if (n != NULL) {
        *n = rv == CAIRN_OK ? req.u.purge.n : 0;
    }
    return rv;
}
