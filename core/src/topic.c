/*
 * topic.c - topic names and MQTT-style filters.
 *
 * A topic is a sequence of levels separated by '/'; levels may be empty.
 * Names and filters are well-formed UTF-8 of 1..CAIRN_TOPIC_MAX bytes
 * without NUL.  In a filter '+' stands for exactly one whole level and
 * '#' for the whole last level, meaning the parent level and everything
 * below it.  As in MQTT, a filter whose first character is a wildcard does
 * not match a topic that starts with '$' (system topics).
 *
 * cairn_topic_match() sits on the bus's publish path: it is one forward
 * pass over filter and topic together, with no allocation.  It trusts
 * both arguments to be valid (checked once, at subscribe and publish time).
 */
#include <string.h>

#include "cairni.h"

/*
 * Length of the UTF-8 sequence starting at s (at most n bytes available),
 * or 0 when it is malformed: truncated, overlong, a surrogate or above
 * U+10FFFF.  The first byte is >= 0x80.
 */
static size_t
topic_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t        need;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */

    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return need;
}

/*
 * Checks length, NUL and UTF-8.  With wildcards false, '+' and '#' are
 * rejected; otherwise their placement is checked as in a filter.
 */
static cairn_err
topic_check(const char *text, size_t len, bool wildcards)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t               level = 0; /* offset where the current level starts */

    if (text == NULL || len == 0 || len > CAIRN_TOPIC_MAX) {
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c == '\0') {
            return CAIRN_EINVAL;
        }
        if (c == '+' || c == '#') {
            bool alone = i == level && (i + 1 == len || s[i + 1] == '/');
            if (!wildcards || !alone || (c == '#' && i + 1 != len)) {
                return CAIRN_EINVAL;
            }
        }
        if (c < 0x80) {
            if (c == '/') {
                level = i + 1;
            }
            i++;
            continue;
        }
        size_t n = topic_utf8_seq(s + i, len - i);
        if (n == 0) {
            return CAIRN_EINVAL;
        }
        i += n;
    }
    return CAIRN_OK;
}

cairn_err
cairn_topic_valid(const char *topic, size_t len)
{
    return topic_check(topic, len, false);
}

cairn_err
cairn_filter_valid(const char *filter)
{
    if (filter == NULL) {
        return CAIRN_EINVAL;
    }
    /* One byte past the limit is enough to tell "too long". */
    size_t len = strnlen(filter, CAIRN_TOPIC_MAX + 1);
    return topic_check(filter, len, true);
}

bool
cairn_topic_match(const char *filter, const char *topic, size_t len)
{
    const char *f = filter;
    const char *t = topic;
    const char *end = topic + len;

    if ((*f == '+' || *f == '#') && len > 0 && *t == '$') {
        return false;
    }
    for (;;) {
        /* Here f and t are at the start of a level. */
        if (*f == '#') {
            return true;
        }
        if (*f == '+') {
            f++;
            while (t < end && *t != '/') {
                t++;
            }
        } else {
            while (*f != '\0' && *f != '/') {
                if (t == end || *t != *f) {
                    return false;
                }
                t++;
                f++;
            }
        }
        /* f is at '/' or the end; the topic level must end here too. */
        if (t == end) {
            /* "a/#" also matches "a". */
            return *f == '\0' || (f[1] == '#' && f[2] == '\0');
        }
        if (*t != '/' || *f != '/') {
            return false;
        }
        t++;
        f++;
    }
}
