/*
 * test_topic.c - topic name and filter validation, and the matching table
 * (MQTT semantics: '+' one whole level, '#' the parent and below, the
 * '$' rule for wildcard-first filters, empty levels).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cairni.h"

static cairn_err
tvalid(const char *s)
{
    return cairn_topic_valid(s, strlen(s));
}

static void
test_topic_valid(void **state)
{
    static const char *const good[] = {
        "a",           "a/b",          "/",      "//",  "/a",
        "a/",          "a//b",         "$SYS/x", "é/ü", "\xf0\x9f\x98\x80",
        "a b/c-d_e.f", "\xe2\x82\xac",
    };
    static const char *const bad[] = {
        "",
        "+",
        "#",
        "a/+",
        "a/#",
        "a+",
        "#a",
        "a/b#",
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xe2\x82",         /* truncated */
        "\x80",             /* stray continuation */
        "\xff",
    };
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(good); i++) {
        assert_int_equal(tvalid(good[i]), CAIRN_OK);
    }
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        assert_int_equal(tvalid(bad[i]), CAIRN_EINVAL);
    }
    /* NUL inside the length. */
    assert_int_equal(cairn_topic_valid("a\0b", 3), CAIRN_EINVAL);
    assert_int_equal(cairn_topic_valid(NULL, 0), CAIRN_EINVAL);
    /* Only len bytes count: "ab+" cut to "ab". */
    assert_int_equal(cairn_topic_valid("ab+", 2), CAIRN_OK);
}

static void
test_topic_length(void **state)
{
    char buf[CAIRN_TOPIC_MAX + 2];
    (void)state;
    memset(buf, 'x', sizeof(buf));
    buf[CAIRN_TOPIC_MAX + 1] = '\0';
    assert_int_equal(cairn_topic_valid(buf, CAIRN_TOPIC_MAX), CAIRN_OK);
    assert_int_equal(cairn_topic_valid(buf, CAIRN_TOPIC_MAX + 1), CAIRN_EINVAL);
    assert_int_equal(cairn_filter_valid(buf), CAIRN_EINVAL);
    buf[CAIRN_TOPIC_MAX] = '\0';
    assert_int_equal(cairn_filter_valid(buf), CAIRN_OK);
    buf[CAIRN_TOPIC_MAX - 1] = '#';
    buf[CAIRN_TOPIC_MAX - 2] = '/';
    assert_int_equal(cairn_filter_valid(buf), CAIRN_OK);
}

static void
test_filter_valid(void **state)
{
    static const char *const good[] = {
        "#",  "+",  "a",  "a/b",  "a/+",    "a/#",     "+/+", "+/#",
        "/#", "/+", "//", "a//#", "$SYS/#", "+/a/+/#", "/",   "a/+/b",
    };
    static const char *const bad[] = {
        "",   "a/#/b", "a+", "#a",  "a#",   "+a",     "a/b+",     "a/+b/c",
        "##", "++",    "#/", "#/#", "a/#/", "a/\xc3", "\xc3\x28",
    };
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(good); i++) {
        assert_int_equal(cairn_filter_valid(good[i]), CAIRN_OK);
    }
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        assert_int_equal(cairn_filter_valid(bad[i]), CAIRN_EINVAL);
    }
    assert_int_equal(cairn_filter_valid(NULL), CAIRN_EINVAL);
}

struct match_case {
    const char *filter;
    const char *topic;
    bool        match;
};

static const struct match_case match_table[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "ab", false},
    {"ab", "a", false},
    {"a", "a/b", false},
    {"a/b", "a", false},
    {"a/b", "a/b", true},
    {"a/b", "a/bc", false},
    {"a/b", "a/b/", false},
    /* '#' matches the parent level and everything below. */
    {"a/#", "a", true},
    {"a/#", "a/", true},
    {"a/#", "a/b", true},
    {"a/#", "a/b/c", true},
    {"a/#", "ab", false},
    {"a/#", "b/a", false},
    {"a/b/#", "a", false},
    {"a/b/#", "a/b", true},
    {"#", "a", true},
    {"#", "/", true},
    {"#", "a/b/c", true},
    {"/#", "/a", true},
    {"/#", "a", false},
    {"/#", "/", true},
    {"a//#", "a/", true},
    {"a//#", "a//x", true},
    {"a//#", "a/x", false},
    /* '+' is exactly one level, which may be empty. */
    {"+", "a", true},
    {"+", "a/b", false},
    {"+", "/", false},
    {"+/+", "/", true},
    {"+/+", "a/b", true},
    {"+/+", "a", false},
    {"/+", "/a", true},
    {"/+", "/", true},
    {"a/+", "a", false},
    {"a/+", "a/", true},
    {"a/+", "a/b", true},
    {"a/+", "a/b/c", false},
    {"a/+/c", "a//c", true},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a/b/d", false},
    {"a/+/c", "a/b/c/d", false},
    {"+/+/#", "a", false},
    {"+/+/#", "a/b", true},
    {"+/#", "a", true},
    {"a/+/#", "a/b", true},
    {"a/+/#", "a/x/y/z", true},
    /* Empty levels. */
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"/", "/", true},
    {"/", "a", false},
    {"a/", "a", false},
    {"a/", "a/", true},
    /* Wildcard-first filters do not match '$' topics. */
    {"#", "$SYS/x", false},
    {"+/x", "$SYS/x", false},
    {"+", "$", false},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/+", "$SYS/x", true},
    {"a/#", "a/$b", true},
    {"a/+", "a/$b", true},
    {"$SYS", "$SYS", true},
    /* Non-ASCII bytes compare as bytes. */
    {"\xc3\xa9/+", "\xc3\xa9/x", true},
    {"\xc3\xa9", "\xc3\xa8", false},
};

static void
test_topic_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(match_table); i++) {
        const struct match_case *c = &match_table[i];
        assert_int_equal(cairn_filter_valid(c->filter), CAIRN_OK);
        assert_int_equal(tvalid(c->topic), CAIRN_OK);
        bool got = cairn_topic_match(c->filter, c->topic, strlen(c->topic));
        if (got != c->match) {
            fail_msg("filter \"%s\" topic \"%s\": expected %d, got %d",
                     c->filter, c->topic, c->match, got);
        }
    }
}

static void
test_topic_match_len(void **state)
{
    (void)state;
    /* Only len bytes of the topic count; it need not be NUL-terminated. */
    const char buf[] = {'a', '/', 'b', 'X'};
    assert_true(cairn_topic_match("a/b", buf, 3));
    assert_false(cairn_topic_match("a/b", buf, 2));
    assert_true(cairn_topic_match("a/#", buf, 1));
    assert_true(cairn_topic_match("a/+", buf, 2));
    assert_false(cairn_topic_match("a/bX", buf, 3));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_valid),
        cmocka_unit_test(test_topic_length),
        cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_topic_match_table),
        cmocka_unit_test(test_topic_match_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
