/*
 * cairn/err.h - the one error type of cairn.
 *
 * Every fallible function returns a cairn_err and hands its results back
 * through out-parameters.  CAIRN_OK is zero.  Errors that come from the
 * operating system keep their errno: CAIRN_ESYSERR | errno.
 * cairn_strerror() only ever returns constant strings.
 */
#ifndef CAIRN_ERR_H
#define CAIRN_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CAIRN_NODISCARD __attribute__((warn_unused_result))
#define CAIRN_EXPORT __attribute__((visibility("default")))
#define CAIRN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CAIRN_NODISCARD
#define CAIRN_EXPORT
#define CAIRN_PRINTF(f, a)
#endif

typedef enum cairn_err {
    CAIRN_OK        = 0,
    CAIRN_ENOMEM    = 1,  /* out of memory */
    CAIRN_EINVAL    = 2,  /* invalid argument */
    CAIRN_ETIMEDOUT = 3,  /* deadline expired */
    CAIRN_ENOENT    = 4,  /* no such service, queue, plugin or record */
    CAIRN_EEXIST    = 5,  /* already exists */
    CAIRN_EFULL     = 6,  /* queue or store full: the caller keeps the message */
    CAIRN_ECLOSED   = 7,  /* object closed or runtime stopping */
    CAIRN_EPROTO    = 8,  /* malformed input (envelope, frame, request) */
    CAIRN_ETOOBIG   = 9,  /* input larger than the configured limit */
    CAIRN_ELIMIT    = 10, /* nesting or count limit exceeded */
    CAIRN_EABI      = 11, /* plugin built for an incompatible ABI */
    CAIRN_ENOTSUP   = 12, /* not supported */
    CAIRN_EBUSY     = 13, /* resource busy */
    CAIRN_ECONFIG   = 14, /* configuration error */
    CAIRN_ELOAD     = 15, /* shared object could not be loaded */
    CAIRN_EPERM     = 16, /* failed permanently: do not retry */
    CAIRN_EAGAIN    = 17, /* not yet: try again later */
    CAIRN_EIO       = 18, /* I/O error */
    CAIRN_ECONNREFUSED = 19, /* peer refused or is not there */
    CAIRN_EINTERNAL = 20, /* internal error: a bug */
    CAIRN_EUNAVAIL  = 21, /* service unavailable: its circuit breaker is open */
    CAIRN_ESYSERR   = 0x10000000 /* OR-ed with errno */
} cairn_err;

/* Constant, human-readable text for an error code; never NULL. */
CAIRN_EXPORT const char *cairn_strerror(cairn_err err);

/* Wraps an errno value; returns CAIRN_OK for 0. */
CAIRN_EXPORT cairn_err cairn_errno(int errnum);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_ERR_H */
