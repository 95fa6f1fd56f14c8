/*
 * cairn/topic.h - topic names and MQTT-style topic filters.
 *
 * A topic name is 1..CAIRN_TOPIC_MAX bytes of UTF-8 without NUL, '+' or '#'.
 * Levels are separated by '/'; empty levels are allowed ("a//b", "/a").
 * A filter may use '+' for exactly one whole level and '#' as the whole
 * last level for that level's parent and everything below it ("a/#"
 * matches "a", "a/b" and "a/b/c").  As in MQTT, a filter that starts with
 * a wildcard does not match topics starting with '$'.
 */
#ifndef CAIRN_TOPIC_H
#define CAIRN_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include <cairn/err.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_TOPIC_MAX 1024

/* CAIRN_OK or CAIRN_EINVAL. */
CAIRN_EXPORT cairn_err cairn_topic_valid(const char *topic, size_t len);
CAIRN_EXPORT cairn_err cairn_filter_valid(const char *filter);

/* True when topic (len bytes, valid) matches filter (valid, NUL-terminated). */
CAIRN_EXPORT bool cairn_topic_match(const char *filter, const char *topic,
                                    size_t len);

#ifdef __cplusplus
}
#endif
#endif /* CAIRN_TOPIC_H */
