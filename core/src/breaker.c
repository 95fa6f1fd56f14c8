/*
 * breaker.c - a circuit breaker: a service that keeps failing is not
 * called for a while, so its callers fail fast instead of each waiting out
 * its deadline, and the service gets room to recover.
 *
 * States and transitions (see cairni.h):
 *
 *   closed --[failures consecutive failures]--> open
 *   open --[open_us has passed, at the next call]--> half-open
 *   half-open --[a probe fails]--> open
 *   half-open --[probes probes succeed]--> closed
 *
 * A call that entered while closed and ends after the breaker opened says
 * nothing about the service now; its outcome is ignored.  Every counter of
 * the state machine is under mtx; the transition counters are atomic so
 * metrics read them without the lock.
 */
#include <string.h>

#include "cairni.h"

void
cairni_breaker_init(cairni_breaker *b, uint32_t failures, uint64_t open_us,
                    uint32_t probes)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mtx, NULL);
    b->failures = failures;
    b->open_us = open_us;
    b->probes = probes > 0 ? probes : 1;
    b->state = CAIRNI_BREAKER_CLOSED;
}

void
cairni_breaker_fini(cairni_breaker *b)
{
    pthread_mutex_destroy(&b->mtx);
}

/* mtx held. */
static void
breaker_open(cairni_breaker *b, uint64_t now)
{
    b->state = CAIRNI_BREAKER_OPEN;
    b->opened_at = now;
    b->fails = 0;
    b->probing = 0;
    b->probe_ok = 0;
    atomic_fetch_add(&b->n_open, 1);
}

cairn_err
cairni_breaker_enter(cairni_breaker *b, uint64_t now, bool *probe)
{
    cairn_err rv = CAIRN_OK;

    *probe = false;
    if (b->failures == 0) {
        return CAIRN_OK;
    }
    pthread_mutex_lock(&b->mtx);
    if (b->state == CAIRNI_BREAKER_OPEN && now - b->opened_at >= b->open_us) {
        b->state = CAIRNI_BREAKER_HALF_OPEN;
        b->probing = 0;
        b->probe_ok = 0;
        atomic_fetch_add(&b->n_half, 1);
    }
    switch (b->state) {
    case CAIRNI_BREAKER_CLOSED:
        break;
    case CAIRNI_BREAKER_HALF_OPEN:
        /* Probes in flight plus those that already succeeded never
         * exceed what it takes to close. */
        if (b->probing + b->probe_ok < b->probes) {
            b->probing++;
            *probe = true;
            break;
        }
        rv = CAIRN_EUNAVAIL;
        break;
    case CAIRNI_BREAKER_OPEN:
        rv = CAIRN_EUNAVAIL;
        break;
    }
    pthread_mutex_unlock(&b->mtx);
    if (rv != CAIRN_OK) {
        atomic_fetch_add(&b->n_rejected, 1);
    }
    return rv;
}

void
cairni_breaker_done(cairni_breaker *b, uint64_t now, bool probe, bool failed)
{
    if (b->failures == 0) {
        return;
    }
    pthread_mutex_lock(&b->mtx);
    if (probe) {
        /* Only half-open hands out probes, and only a probe's end or a
         * new opening (which resets probing) leaves half-open. */
        if (b->state == CAIRNI_BREAKER_HALF_OPEN) {
            b->probing--;
            if (failed) {
                breaker_open(b, now);
            } else if (++b->probe_ok >= b->probes) {
                b->state = CAIRNI_BREAKER_CLOSED;
                b->fails = 0;
                atomic_fetch_add(&b->n_closed, 1);
            }
        }
    } else if (b->state == CAIRNI_BREAKER_CLOSED) {
        if (!failed) {
            b->fails = 0;
        } else if (++b->fails >= b->failures) {
            breaker_open(b, now);
        }
    }
    pthread_mutex_unlock(&b->mtx);
}

void
cairni_breaker_cancel(cairni_breaker *b, bool probe)
{
    if (b->failures == 0 || !probe) {
        return;
    }
    pthread_mutex_lock(&b->mtx);
    if (b->state == CAIRNI_BREAKER_HALF_OPEN && b->probing > 0) {
        b->probing--;
    }
    pthread_mutex_unlock(&b->mtx);
}

cairni_breaker_state
cairni_breaker_get(cairni_breaker *b)
{
    pthread_mutex_lock(&b->mtx);
    cairni_breaker_state st = b->state;
    pthread_mutex_unlock(&b->mtx);
    return st;
}

const char *
cairni_breaker_name(cairni_breaker_state st)
{
    switch (st) {
    case CAIRNI_BREAKER_CLOSED:
        return "closed";
    case CAIRNI_BREAKER_OPEN:
        return "open";
    case CAIRNI_BREAKER_HALF_OPEN:
        return "half-open";
    }
    return "?";
}

bool
cairni_call_failed(cairn_err rv, cairn_err status)
{
    cairn_err e = rv != CAIRN_OK ? rv : status;

    if ((e & CAIRN_ESYSERR) != 0) {
        return true;
    }
    switch (e) {
    case CAIRN_ETIMEDOUT:    /* no reply in time, or the service's own */
    case CAIRN_ECONNREFUSED: /* provider went away mid-call */
    case CAIRN_ECLOSED:
    case CAIRN_EIO:
    case CAIRN_EBUSY:
    case CAIRN_EAGAIN:
    case CAIRN_ENOMEM:
    case CAIRN_EFULL:
    case CAIRN_EINTERNAL:
    case CAIRN_EUNAVAIL: /* a service it depends on is open */
        return true;
    default: /* OK, or the caller's fault: EINVAL, EPROTO, EPERM, ... */
        return false;
    }
}
