/*
 * rec_check.h - what the integration tests' recorders (mqtt_rec,
 * amqp_rec) share: the "seq" of a payload and the check of a recording.
 *
 * A recording has one line per message, tab-separated; the third field
 * is the message id ("-" for none), the fifth the payload, which carries
 * {"seq":N}.
 */
#ifndef CAIRN_IT_REC_CHECK_H
#define CAIRN_IT_REC_CHECK_H

#include <stddef.h>

/* Seqs at or above this are ignored. */
#define REC_MAX_SEQ (1L << 24)

/* The N of "seq":N in len bytes at p; -1 if there is none. */
long rec_seq(const char *p, size_t len);

/* `prog check FILE KEYS [PRODUCER_LOG]` (argv[1] is "check"): passes (0)
 * when every seq the producer log marks accepted ("A i") is in FILE
 * (without a log: every seq up to the largest seen), a seq seen more than
 * once always carries the same id, and within each key (seq % KEYS)
 * first arrivals come in increasing seq order.  Prints what it found;
 * 1 when the check fails, 2 for bad arguments. */
int rec_check(const char *prog, int argc, char **argv);

#endif /* CAIRN_IT_REC_CHECK_H */
