/*
 * log.c - leveled log lines on stderr: "2026-11-23T18:00:00.123Z level tag: text".
 * One fprintf per line under the stdio lock, so lines from several threads
 * never interleave.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "cairni.h"

static _Atomic int log_level = CAIRN_LOG_INFO;

void
cairni_log_set_level(cairn_log_level level)
{
    atomic_store(&log_level, (int)level);
}

cairn_log_level
cairni_log_get_level(void)
{
    return (cairn_log_level)atomic_load(&log_level);
}

void
cairni_vlog(cairn_log_level level, const char *tag, const char *fmt,
            va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if ((int)level > atomic_load(&log_level)) {
        return;
    }
    struct timeval tv;
    struct tm      tm;
    char           stamp[32];
    char           text[1024];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    vsnprintf(text, sizeof(text), fmt, ap);
    fprintf(stderr, "%s.%03dZ %-5s %s: %s\n", stamp, (int)(tv.tv_usec / 1000),
            names[(unsigned)level < 4 ? level : 3], tag ? tag : "cairn",
            text);
}

void
cairni_log(cairn_log_level level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cairni_vlog(level, tag, fmt, ap);
    va_end(ap);
}
