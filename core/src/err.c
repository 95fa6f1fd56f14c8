/*
 * err.c - text for cairn_err codes.  Only constant strings are returned,
 * so callers may keep the pointer; for OS errors the text is strerror's
 * table entry, which glibc keeps constant as well.
 */
#include <string.h>

#include "cairni.h"

cairn_err
cairn_errno(int errnum)
{
    return errnum == 0 ? CAIRN_OK : (cairn_err)(CAIRN_ESYSERR | errnum);
}

const char *
cairn_strerror(cairn_err err)
{
    static const char *const text[] = {
        [CAIRN_OK]           = "success",
        [CAIRN_ENOMEM]       = "out of memory",
        [CAIRN_EINVAL]       = "invalid argument",
        [CAIRN_ETIMEDOUT]    = "timed out",
        [CAIRN_ENOENT]       = "not found",
        [CAIRN_EEXIST]       = "already exists",
        [CAIRN_EFULL]        = "full",
        [CAIRN_ECLOSED]      = "closed",
        [CAIRN_EPROTO]       = "malformed input",
        [CAIRN_ETOOBIG]      = "too big",
        [CAIRN_ELIMIT]       = "limit exceeded",
        [CAIRN_EABI]         = "incompatible plugin ABI",
        [CAIRN_ENOTSUP]      = "not supported",
        [CAIRN_EBUSY]        = "busy",
        [CAIRN_ECONFIG]      = "configuration error",
        [CAIRN_ELOAD]        = "cannot load shared object",
        [CAIRN_EPERM]        = "failed permanently",
        [CAIRN_EAGAIN]       = "not yet, try again",
        [CAIRN_EIO]          = "input/output error",
        [CAIRN_ECONNREFUSED] = "connection refused",
        [CAIRN_EINTERNAL]    = "internal error",
        [CAIRN_EUNAVAIL]     = "service unavailable (circuit open)",
    };
    if (err & CAIRN_ESYSERR) {
        return strerror((int)(err & ~CAIRN_ESYSERR));
    }
    if ((unsigned)err < CAIRNI_ARRAY_LEN(text) && text[err] != NULL) {
        return text[err];
    }
    return "unknown error";
}
