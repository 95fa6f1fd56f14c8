/*
 * test_config.c - the YAML loader (config.c) and the typed tables
 * (cfgtable.c): every refusal of the parser and of the tables, checked
 * with its exact line and message; each field type's accepted and refused
 * spellings; the daemon's defaults, a realistic file, and the generated
 * reference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairni.h"

#define NAME "t.yaml"

/* ---- helpers ------------------------------------------------------------- */

static void
expect_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        print_error("message\n  got:  %s\n  want: %s\n", got, want);
        fail();
    }
}

static cairni_doc *
parse_ok(const char *yaml)
{
    cairni_doc *doc = NULL;
    char        err[256];
    cairn_err rv = cairni_doc_parse_string(NAME, yaml, strlen(yaml), &doc, err,
                                           sizeof(err));
    if (rv != CAIRN_OK) {
        print_error("unexpected parse error: %s\n", err);
    }
    assert_int_equal(rv, CAIRN_OK);
    return doc;
}

static void
parse_err_len(const char *yaml, size_t len, cairn_err code, const char *want)
{
    cairni_doc *doc = (cairni_doc *)1;
    char        err[256];
    cairn_err   rv =
        cairni_doc_parse_string(NAME, yaml, len, &doc, err, sizeof(err));
    assert_int_equal(rv, code);
    assert_null(doc);
    expect_text(err, want);
}

static void
parse_err(const char *yaml, cairn_err code, const char *want)
{
    parse_err_len(yaml, strlen(yaml), code, want);
}

static cairni_config *
load_ok(const char *yaml)
{
    cairni_config *cfg = NULL;
    char           err[256];
    cairn_err      rv =
        cairni_config_load_string(NAME, yaml, &cfg, err, sizeof(err));
    if (rv != CAIRN_OK) {
        print_error("unexpected load error: %s\n", err);
    }
    assert_int_equal(rv, CAIRN_OK);
    assert_non_null(cfg);
    return cfg;
}

static void
load_err(const char *yaml, const char *want)
{
    cairni_config *cfg = (cairni_config *)1;
    char           err[256];
    cairn_err      rv =
        cairni_config_load_string(NAME, yaml, &cfg, err, sizeof(err));
    assert_int_not_equal(rv, CAIRN_OK);
    assert_null(cfg);
    expect_text(err, want);
}

/* One field "v" of a type, filled from "v: text". */
typedef union one_val {
    int64_t     i;
    uint64_t    u;
    double      d;
    bool        b;
    int         e;
    const char *s;
} one_val;

static cairn_err
fill_one(cairn_cfg_type type, double min, double max, const char *text,
         one_val *out, char *err, size_t errlen)
{
    cairn_cfg_field fields[] = {
        {.name = "v",
         .type = type,
         .min = min,
         .max = max,
         .choices = "a|bb|c"},
        {.type = CAIRN_CFG_END},
    };
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "v: %s\n", text);
    cairni_doc  *doc = parse_ok(yaml);
    cairni_arena arena = {0};
    memset(out, 0, sizeof(*out));
    cairn_err rv =
        cairni_cfg_fill(doc, doc->root, fields, out, &arena, err, errlen);
    /* Strings are copied out to a static buffer: the arena goes away. */
    static char copy[128];
    if (rv == CAIRN_OK && type == CAIRN_CFG_STRING) {
        snprintf(copy, sizeof(copy), "%s", out->s);
        out->s = copy;
    }
    cairni_arena_fini(&arena);
    cairni_doc_free(doc);
    return rv;
}

static one_val
one_ok(cairn_cfg_type type, double min, double max, const char *text)
{
    one_val   v;
    char      err[256];
    cairn_err rv = fill_one(type, min, max, text, &v, err, sizeof(err));
    if (rv != CAIRN_OK) {
        print_error("'%s' refused: %s\n", text, err);
    }
    assert_int_equal(rv, CAIRN_OK);
    return v;
}

static void
one_err(cairn_cfg_type type, double min, double max, const char *text,
        const char *want)
{
    one_val   v;
    char      err[256];
    cairn_err rv = fill_one(type, min, max, text, &v, err, sizeof(err));
    if (rv == CAIRN_OK) {
        print_error("'%s' accepted, wanted: %s\n", text, want);
    }
    assert_int_equal(rv, CAIRN_ECONFIG);
    expect_text(err, want);
}

/* ---- the parser ---------------------------------------------------------- */

static void
test_parse_tree(void **state)
{
    cairni_doc        *doc = parse_ok("# comment\n"
                                             "a: 1\n"
                                             "b:\n"
                                             "  - x\n"
                                             "  - 'y'\n"
                                             "c: {d: e}\n");
    const cairni_node *r = doc->root;
    assert_int_equal(r->kind, CAIRNI_NODE_MAP);
    assert_int_equal(r->line, 2);
    assert_int_equal(r->count, 3);
    assert_string_equal(r->keys[1], "b");
    assert_int_equal(r->key_lines[0], 2);
    assert_int_equal(r->key_lines[1], 3);
    assert_int_equal(r->key_lines[2], 6);
    const cairni_node *b = cairni_node_get(r, "b");
    assert_int_equal(b->kind, CAIRNI_NODE_SEQ);
    assert_int_equal(b->count, 2);
    assert_int_equal(b->items[1]->line, 5);
    assert_string_equal(b->items[1]->value, "y");
    assert_true(b->items[1]->quoted);
    assert_false(b->items[0]->quoted);
    const cairni_node *c = cairni_node_get(r, "c");
    assert_string_equal(cairni_node_get(c, "d")->value, "e");
    assert_null(cairni_node_get(r, "zz"));
    assert_null(cairni_node_get(b, "x"));
    assert_null(cairni_node_get(NULL, "x"));
    cairni_doc_free(doc);
}

static void
test_parse_empty(void **state)
{
    cairni_doc *doc = parse_ok("");
    assert_null(doc->root);
    cairni_doc_free(doc);
    doc = parse_ok("# nothing here\n\n");
    assert_null(doc->root);
    cairni_doc_free(doc);
    doc = parse_ok("---\n");
    assert_int_equal(doc->root->kind, CAIRNI_NODE_SCALAR);
    assert_string_equal(doc->root->value, "");
    cairni_doc_free(doc);
    /* NULL text with length 0 is an empty document too. */
    char err[64];
    assert_int_equal(
        cairni_doc_parse_string(NAME, NULL, 0, &doc, err, sizeof(err)),
        CAIRN_OK);
    assert_null(doc->root);
    cairni_doc_free(doc);
}

static void
test_parse_refusals(void **state)
{
    parse_err("a: 1\nb: &x 2\n", CAIRN_ECONFIG,
              NAME ":2: anchors are not allowed (&x)");
    parse_err("a: 1\nb: &x [1]\n", CAIRN_ECONFIG,
              NAME ":2: anchors are not allowed (&x)");
    parse_err("a: 1\n\nb: *x\n", CAIRN_ECONFIG,
              NAME ":3: aliases are not allowed (*x)");
    parse_err("a: 1\nb: !!str 2\n", CAIRN_ECONFIG,
              NAME ":2: tags are not allowed (tag:yaml.org,2002:str)");
    parse_err("a: !local {}\n", CAIRN_ECONFIG,
              NAME ":1: tags are not allowed (!local)");
    parse_err("a: 1\n---\nb: 2\n", CAIRN_ECONFIG,
              NAME ":2: more than one document (only one is allowed)");
    parse_err("a: 1\n...\n---\n", CAIRN_ECONFIG,
              NAME ":3: more than one document (only one is allowed)");
    parse_err("a: 1\nb: 2\na: 3\n", CAIRN_ECONFIG,
              NAME ":3: duplicate key 'a' (first at line 1)");
    parse_err("x:\n  a: 1\n  b: 2\n  b: 3\n  a: 4\n", CAIRN_ECONFIG,
              NAME ":4: duplicate key 'b' (first at line 3)");
    parse_err("a: 1\n? [k]\n: 2\n", CAIRN_ECONFIG,
              NAME ":2: keys must be scalars, not maps or lists");
    parse_err("a: {{k: v}: 1}\n", CAIRN_ECONFIG,
              NAME ":1: keys must be scalars, not maps or lists");
    parse_err("a: \"x\\0y\"\n", CAIRN_ECONFIG,
              NAME ":1: NUL characters are not allowed in a value");
}

static void
test_parse_syntax_errors(void **state)
{
    parse_err("a: [1\nb: 2\n", CAIRN_ECONFIG,
              NAME ":2: while parsing a flow sequence (line 1): did not find "
                   "expected ',' or ']'");
    parse_err("a:\n  b: 1\n   c: 2\n", CAIRN_ECONFIG,
              NAME ":3: mapping values are not allowed in this context");
    parse_err("a: 1\nb: \"open\n", CAIRN_ECONFIG,
              NAME ":3: while scanning a quoted scalar (line 2): found "
                   "unexpected end of stream");
    parse_err("a: 1\n\tb: 2\n", CAIRN_ECONFIG,
              NAME ":2: while scanning a plain scalar (line 1): found a tab "
                   "character that violates indentation");
    parse_err("a: 1\n@b: 2\n", CAIRN_ECONFIG,
              NAME ":2: while scanning for the next token: found character "
                   "that cannot start any token");
    /* Encoding errors carry an offset, not a line: counted from the text. */
    parse_err("a: 1\nb: \xff\n", CAIRN_ECONFIG,
              NAME ":2: invalid leading UTF-8 octet (byte 0xff)");
    parse_err_len("a: 1\n\nb: x\0y\n", 12, CAIRN_ECONFIG,
                  NAME ":3: control characters are not allowed (byte 0x00)");
}

/* n maps, each nested in the one before, one per line. */
static char *
nested_maps(int n)
{
    char *s = calloc((size_t)n * (size_t)(n + 8) + 16, 1);
    char *p = s;
    for (int i = 0; i < n; i++) {
        p += sprintf(p, "%*sk:%s", i, "", i + 1 < n ? "\n" : " v\n");
    }
    return s;
}

static void
test_parse_limits_depth(void **state)
{
    char       *ok = nested_maps(32);
    cairni_doc *doc = parse_ok(ok);
    cairni_doc_free(doc);
    free(ok);
    char *deep = nested_maps(33);
    parse_err(deep, CAIRN_ELIMIT, NAME ":33: nesting deeper than 32 levels");
    free(deep);
    parse_err(
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "\n",
        CAIRN_ELIMIT, NAME ":1: nesting deeper than 32 levels");
}

/* A list of n scalars, one per line: n + 1 nodes. */
static char *
long_list(size_t n)
{
    char *s = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(s + i * 4, "- 1\n", 4);
    }
    s[n * 4] = '\0';
    return s;
}

static void
test_parse_limits_count_size(void **state)
{
    char       *ok = long_list(99999);
    cairni_doc *doc = parse_ok(ok);
    assert_int_equal(doc->root->count, 99999);
    cairni_doc_free(doc);
    free(ok);
    char *many = long_list(100000);
    parse_err(many, CAIRN_ELIMIT, NAME ":100000: more than 100000 nodes");
    free(many);

    /* Exactly 1 MiB of comments is fine; one byte more is not. */
    size_t mib = 1024 * 1024;
    char  *big = malloc(mib + 2);
    memset(big, '#', mib + 1);
    for (size_t i = 99; i < mib; i += 100) {
        big[i] = '\n';
    }
    big[mib + 1] = '\0';
    char err[128];
    assert_int_equal(
        cairni_doc_parse_string(NAME, big, mib, &doc, err, sizeof(err)),
        CAIRN_OK);
    assert_null(doc->root);
    cairni_doc_free(doc);
    parse_err(big, CAIRN_ETOOBIG, NAME ":1: larger than 1048576 bytes (1 MiB)");
    free(big);
}

static void
test_parse_file(void **state)
{
    char        err[256];
    cairni_doc *doc = (cairni_doc *)1;
    cairn_err   rv = cairni_doc_parse_file("/nonexistent/cairn.yaml", &doc, err,
                                           sizeof(err));
    assert_int_not_equal(rv, CAIRN_OK);
    assert_null(doc);
    expect_text(err, "/nonexistent/cairn.yaml: cannot open: No such file or "
                     "directory");

    char path[] = "/tmp/test_config_XXXXXX";
    int  fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "runtime:\n  name: filed\nstore: [1]\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(cairni_doc_parse_file(path, &doc, err, sizeof(err)),
                     CAIRN_OK);
    assert_string_equal(doc->file, path);
    cairni_doc_free(doc);

    cairni_config *cfg = NULL;
    assert_int_equal(cairni_config_load(path, &cfg, err, sizeof(err)),
                     CAIRN_ECONFIG);
    char want[128];
    snprintf(want, sizeof(want), "%s:3: 'store' must be a map, got a list",
             path);
    expect_text(err, want);
    unlink(path);
}

/* ---- each field type ----------------------------------------------------- */

static void
test_type_int(void **state)
{
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "42").i, 42);
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "-7").i, -7);
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "+5").i, 5);
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "0x1F").i, 31);
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "-0x10").i, -16);
    assert_int_equal(one_ok(CAIRN_CFG_INT, 0, 0, "'12'").i, 12);
    assert_true(one_ok(CAIRN_CFG_INT, 0, 0, "9223372036854775807").i ==
                INT64_MAX);
    assert_true(one_ok(CAIRN_CFG_INT, 0, 0, "-9223372036854775808").i ==
                INT64_MIN);
    const char *bad[] = {"abc",  "1.0", "12abc", "0x", "--1",
                         "' 1'", "1e3", "0x1G",  "''"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        char want[128], got[32];
        snprintf(got, sizeof(got), "%s", bad[i]);
        if (got[0] == '\'') { /* the message shows the text, unquoted */
            memmove(got, got + 1, strlen(got));
            got[strlen(got) - 1] = '\0';
        }
        snprintf(want, sizeof(want),
                 NAME ":1: 'v' must be an integer, got '%s'", got);
        one_err(CAIRN_CFG_INT, 0, 0, bad[i], want);
    }
    one_err(CAIRN_CFG_INT, 0, 0, "", NAME ":1: 'v' must be an integer, got ''");
    one_err(CAIRN_CFG_INT, 0, 0, "9223372036854775808",
            NAME ":1: 'v' overflows 64 bits, got '9223372036854775808'");
    one_err(CAIRN_CFG_INT, 0, 0, "-9223372036854775809",
            NAME ":1: 'v' overflows 64 bits, got '-9223372036854775809'");
    one_err(CAIRN_CFG_INT, 0, 0, "0x10000000000000000",
            NAME ":1: 'v' overflows 64 bits, got '0x10000000000000000'");
    one_err(CAIRN_CFG_INT, 0, 0, "99999999999999999999999999",
            NAME ":1: 'v' overflows 64 bits, got '99999999999999999999999999'");
    /* ranges */
    assert_int_equal(one_ok(CAIRN_CFG_INT, -5, 5, "-5").i, -5);
    assert_int_equal(one_ok(CAIRN_CFG_INT, -5, 5, "5").i, 5);
    one_err(CAIRN_CFG_INT, -5, 5, "6",
            NAME ":1: 'v' must be between -5 and 5, got '6'");
    one_err(CAIRN_CFG_INT, -5, 5, "-6",
            NAME ":1: 'v' must be between -5 and 5, got '-6'");
    one_err(CAIRN_CFG_INT, 1, 9223372036854775808.0, "0",
            NAME ":1: 'v' must be at least 1, got '0'");
    one_err(CAIRN_CFG_INT, -9223372036854775808.0, 3, "4",
            NAME ":1: 'v' must be at most 3, got '4'");
    /* a value that is not a scalar */
    one_err(CAIRN_CFG_INT, 0, 0, "[1]",
            NAME ":1: 'v' must be an integer, got a list");
    one_err(CAIRN_CFG_INT, 0, 0, "{a: 1}",
            NAME ":1: 'v' must be an integer, got a map");
}

static void
test_type_double(void **state)
{
    assert_true(one_ok(CAIRN_CFG_DOUBLE, 0, 0, "2.5").d == 2.5);
    assert_true(one_ok(CAIRN_CFG_DOUBLE, 0, 0, "-1e3").d == -1000.0);
    assert_true(one_ok(CAIRN_CFG_DOUBLE, 0, 0, "3").d == 3.0);
    assert_true(one_ok(CAIRN_CFG_DOUBLE, 0, 0, ".5").d == 0.5);
    const char *bad[] = {"nan",  "inf", "-inf",  "1e999",
                         "0x10", "abc", "1.2.3", "1,5"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        char want[128];
        snprintf(want, sizeof(want),
                 NAME ":1: 'v' must be a finite number, got '%s'", bad[i]);
        one_err(CAIRN_CFG_DOUBLE, 0, 0, bad[i], want);
    }
    one_err(CAIRN_CFG_DOUBLE, 1, 10, "0.5",
            NAME ":1: 'v' must be between 1 and 10, got '0.5'");
    one_err(CAIRN_CFG_DOUBLE, 1, 10, "10.01",
            NAME ":1: 'v' must be between 1 and 10, got '10.01'");
}

static void
test_type_bool(void **state)
{
    const char *yes[] = {"true", "yes", "on", "True", "YES", "On"};
    const char *no[] = {"false", "no", "off", "FALSE", "No"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(yes); i++) {
        assert_true(one_ok(CAIRN_CFG_BOOL, 0, 0, yes[i]).b);
    }
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(no); i++) {
        assert_false(one_ok(CAIRN_CFG_BOOL, 0, 0, no[i]).b);
    }
    one_err(CAIRN_CFG_BOOL, 0, 0, "1",
            NAME ":1: 'v' must be true or false, got '1'");
    one_err(CAIRN_CFG_BOOL, 0, 0, "y",
            NAME ":1: 'v' must be true or false, got 'y'");
    one_err(CAIRN_CFG_BOOL, 0, 0, "truee",
            NAME ":1: 'v' must be true or false, got 'truee'");
}

static void
test_type_duration(void **state)
{
    struct {
        const char *text;
        uint64_t    ms;
    } ok[] = {
        {"250ms", 250},
        {"5s", 5000},
        {"2m", 120000},
        {"1h", 3600000},
        {"1d", 86400000},
        {"42", 42},
        {"0", 0},
        {"'7s'", 7000},
        {"213503982334d", 18446744073657600000ull},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(ok); i++) {
        assert_true(one_ok(CAIRN_CFG_DURATION, 0, 0, ok[i].text).u == ok[i].ms);
    }
    const char *bad[] = {"5 s", "1.5s", "-1s", "5w", "s", "ms5", "5S", "5sec"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        char want[160];
        snprintf(want, sizeof(want),
                 NAME ":1: 'v' must be a duration (e.g. 250ms, 5s, 2m, 1h, "
                      "1d), got '%s'",
                 bad[i]);
        one_err(CAIRN_CFG_DURATION, 0, 0, bad[i], want);
    }
    one_err(CAIRN_CFG_DURATION, 0, 0, "213503982335d",
            NAME ":1: 'v' overflows 64 bits, got '213503982335d'");
    one_err(CAIRN_CFG_DURATION, 0, 0, "18446744073709551616",
            NAME ":1: 'v' overflows 64 bits, got '18446744073709551616'");
    one_err(CAIRN_CFG_DURATION, 0, 0, "99999999999999999999s",
            NAME ":1: 'v' overflows 64 bits, got '99999999999999999999s'");
    /* the range is in milliseconds, shown with units */
    assert_true(one_ok(CAIRN_CFG_DURATION, 1000, 60000, "1m").u == 60000);
    one_err(CAIRN_CFG_DURATION, 1000, 60000, "999ms",
            NAME ":1: 'v' must be between 1s and 1m, got '999ms'");
    one_err(CAIRN_CFG_DURATION, 1000, 60000, "61s",
            NAME ":1: 'v' must be between 1s and 1m, got '61s'");
    one_err(CAIRN_CFG_DURATION, 1, 18446744073709551616.0, "0",
            NAME ":1: 'v' must be at least 1ms, got '0'");
}

static void
test_type_size(void **state)
{
    struct {
        const char *text;
        uint64_t    bytes;
    } ok[] = {
        {"512", 512},
        {"512B", 512},
        {"64KiB", 65536},
        {"10MiB", 10485760},
        {"1GiB", 1073741824},
        {"2TiB", 2199023255552ull},
        {"1KB", 1000},
        {"10MB", 10000000},
        {"3GB", 3000000000ull},
        {"1TB", 1000000000000ull},
        {"16777215TiB", 16777215ull << 40},
    };
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(ok); i++) {
        assert_true(one_ok(CAIRN_CFG_SIZE, 0, 0, ok[i].text).u == ok[i].bytes);
    }
    const char *bad[] = {"1kb", "1 KiB", "1.5MiB", "-1",
                         "KiB", "1Ki",   "1kib",   "1K"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(bad); i++) {
        char want[160];
        snprintf(want, sizeof(want),
                 NAME ":1: 'v' must be a size (e.g. 512, 64KiB, 10MiB, 1GiB), "
                      "got '%s'",
                 bad[i]);
        one_err(CAIRN_CFG_SIZE, 0, 0, bad[i], want);
    }
    one_err(CAIRN_CFG_SIZE, 0, 0, "16777216TiB",
            NAME ":1: 'v' overflows 64 bits, got '16777216TiB'");
    one_err(CAIRN_CFG_SIZE, 0, 0, "18446744073709551616",
            NAME ":1: 'v' overflows 64 bits, got '18446744073709551616'");
    one_err(CAIRN_CFG_SIZE, 65536, 18446744073709551616.0, "65535",
            NAME ":1: 'v' must be at least 64KiB, got '65535'");
    one_err(CAIRN_CFG_SIZE, 0, 1048576, "2MiB",
            NAME ":1: 'v' must be at most 1MiB, got '2MiB'");
}

static void
test_type_enum_string(void **state)
{
    assert_int_equal(one_ok(CAIRN_CFG_ENUM, 0, 0, "a").e, 0);
    assert_int_equal(one_ok(CAIRN_CFG_ENUM, 0, 0, "bb").e, 1);
    assert_int_equal(one_ok(CAIRN_CFG_ENUM, 0, 0, "c").e, 2);
    one_err(CAIRN_CFG_ENUM, 0, 0, "b",
            NAME ":1: 'v' must be one of a|bb|c, got 'b'");
    one_err(CAIRN_CFG_ENUM, 0, 0, "A",
            NAME ":1: 'v' must be one of a|bb|c, got 'A'");
    one_err(CAIRN_CFG_ENUM, 0, 0, "[a]",
            NAME ":1: 'v' must be one of a|bb|c, got a list");

    assert_string_equal(one_ok(CAIRN_CFG_STRING, 0, 0, "123").s, "123");
    assert_string_equal(one_ok(CAIRN_CFG_STRING, 0, 0, "'a: b'").s, "a: b");
    assert_string_equal(one_ok(CAIRN_CFG_STRING, 0, 0, "").s, "");
    assert_string_equal(one_ok(CAIRN_CFG_STRING, 0, 0, "true").s, "true");
    one_err(CAIRN_CFG_STRING, 0, 0, "{a: 1}",
            NAME ":1: 'v' must be a string, got a map");
    /* Long values are cut short in messages; control bytes never pass. */
    one_err(CAIRN_CFG_INT, 0, 0,
            "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij",
            NAME ":1: 'v' must be an integer, got "
                 "'abcdefghijabcdefghijabcdefghijabcdefghij...'");
    one_err(CAIRN_CFG_INT, 0, 0, "\"a\\tb\\e\"",
            NAME ":1: 'v' must be an integer, got 'a?b?'");
}

/* ---- tables: lists, maps, defaults --------------------------------------- */

typedef struct t_item {
    const char *host;
    int64_t     port;
} t_item;

typedef struct t_cfg {
    const char        *s;
    cairn_cfg_list     tags;
    cairn_cfg_list     items;
    t_item             main;
    cairn_cfg_list     deftags;
    const cairni_node *raw;
    uint64_t           wait;
} t_cfg;

static const cairn_cfg_field t_item_fields[] = {
    {.name = "host",
     .type = CAIRN_CFG_STRING,
     .offset = offsetof(t_item, host),
     .description = "host"},
    {.name = "port",
     .type = CAIRN_CFG_INT,
     .def = "80",
     .offset = offsetof(t_item, port),
     .min = 1,
     .max = 65535,
     .description = "port"},
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field t_fields[] = {
    {.name = "s",
     .type = CAIRN_CFG_STRING,
     .def = "dflt",
     .offset = offsetof(t_cfg, s)},
    {.name = "tags",
     .type = CAIRN_CFG_STRLIST,
     .offset = offsetof(t_cfg, tags)},
    {.name = "items",
     .type = CAIRN_CFG_LIST,
     .offset = offsetof(t_cfg, items),
     .sub = t_item_fields,
     .elem_size = sizeof(t_item)},
    {.name = "main",
     .type = CAIRN_CFG_MAP,
     .offset = offsetof(t_cfg, main),
     .sub = t_item_fields},
    {.name = "deftags",
     .type = CAIRN_CFG_STRLIST,
     .def = "[x, y]",
     .offset = offsetof(t_cfg, deftags)},
    {.name = "raw", .type = CAIRNI_CFG_NODE, .offset = offsetof(t_cfg, raw)},
    {.name = "wait",
     .type = CAIRN_CFG_DURATION,
     .def = "2s",
     .offset = offsetof(t_cfg, wait)},
    {.type = CAIRN_CFG_END},
};

typedef struct t_run {
    cairni_doc  *doc;
    cairni_arena arena;
    t_cfg        cfg;
    char         err[256];
} t_run;

static cairn_err
t_fill(t_run *r, const char *yaml, const cairn_cfg_field *fields)
{
    memset(r, 0, sizeof(*r));
    memset(&r->cfg, 0xa5, sizeof(r->cfg)); /* every field must be written */
    r->doc = parse_ok(yaml);
    return cairni_cfg_fill(r->doc, r->doc->root, fields, &r->cfg, &r->arena,
                           r->err, sizeof(r->err));
}

static void
t_done(t_run *r)
{
    cairni_arena_fini(&r->arena);
    cairni_doc_free(r->doc);
}

static void
t_err(const char *yaml, const cairn_cfg_field *fields, const char *want)
{
    t_run r;
    assert_int_equal(t_fill(&r, yaml, fields), CAIRN_ECONFIG);
    expect_text(r.err, want);
    t_done(&r);
}

static void
test_table_lists(void **state)
{
    t_run r;
    assert_int_equal(t_fill(&r,
                            "tags: [a, 'b c']\n"
                            "items:\n"
                            "  - host: h1\n"
                            "  - host: h2\n"
                            "    port: 8080\n"
                            "main:\n"
                            "  host: m\n"
                            "raw: {free: [form]}\n",
                            t_fields),
                     CAIRN_OK);
    assert_int_equal(r.cfg.tags.count, 2);
    assert_string_equal(((const char **)r.cfg.tags.items)[1], "b c");
    assert_int_equal(r.cfg.items.count, 2);
    const t_item *it = r.cfg.items.items;
    assert_string_equal(it[0].host, "h1");
    assert_int_equal(it[0].port, 80);
    assert_string_equal(it[1].host, "h2");
    assert_int_equal(it[1].port, 8080);
    assert_string_equal(r.cfg.main.host, "m");
    assert_int_equal(r.cfg.main.port, 80);
    assert_string_equal(r.cfg.s, "dflt");
    assert_int_equal(r.cfg.deftags.count, 2);
    assert_string_equal(((const char **)r.cfg.deftags.items)[0], "x");
    assert_non_null(r.cfg.raw);
    assert_int_equal(r.cfg.raw->kind, CAIRNI_NODE_MAP);
    assert_int_equal(r.cfg.raw->line, 8);
    assert_int_equal(r.cfg.wait, 2000);
    t_done(&r);
}

static void
test_table_absent_and_null(void **state)
{
    t_run r;
    /* null containers are absent; a required key of an absent map is
     * reported at the line of the map that lacks it */
    assert_int_equal(
        t_fill(&r, "tags:\nitems: ~\nraw:\nmain: {host: q}\n", t_fields),
        CAIRN_OK);
    assert_int_equal(r.cfg.tags.count, 0);
    assert_null(r.cfg.tags.items);
    assert_int_equal(r.cfg.items.count, 0);
    assert_null(r.cfg.raw);
    t_done(&r);
    t_err("s: x\n\ntags: []\n", t_fields,
          NAME ":1: missing required key 'main.host'");
    t_err("s: x\nmain:\n", t_fields,
          NAME ":2: missing required key 'main.host'");
    t_err("items:\n  - port: 1\n", t_fields,
          NAME ":2: missing required key 'items[0].host'");
    t_err("items:\n  -\n", t_fields,
          NAME ":2: missing required key 'items[0].host'");
}

static void
test_table_errors(void **state)
{
    const char *base = "main: {host: m}\n";
    char        yaml[512];
    t_err("main: {host: m}\nitems:\n  - host: a\n  - host: b\n\n    port: "
          "70000\n",
          t_fields,
          NAME ":6: 'items[1].port' must be between 1 and 65535, got "
               "'70000'");
    t_err("main: {host: m}\nitems:\n  - host: a\n  - host: b\n    prot: 1\n",
          t_fields, NAME ":5: unknown key 'items[1].prot'");
    t_err("main: {host: m}\nitems:\n  - host: a\n  - [b]\n", t_fields,
          NAME ":4: 'items[1]' must be a map, got a list");
    t_err("main: {host: m}\nitems: {host: a}\n", t_fields,
          NAME ":2: 'items' must be a list of maps, got a map");
    t_err("main: {host: m}\ntags:\n  - a\n  - {b: 1}\n", t_fields,
          NAME ":4: 'tags[1]' must be a string, got a map");
    t_err("main: {host: m}\ntags: a\n", t_fields,
          NAME ":2: 'tags' must be a list of strings, got 'a'");
    t_err("main: 5\n", t_fields, NAME ":1: 'main' must be a map, got '5'");
    t_err("main:\n  host:\n    - x\n", t_fields,
          NAME ":3: 'main.host' must be a string, got a list");
    snprintf(yaml, sizeof(yaml), "%sbogus: 1\nzz: 2\n", base);
    t_err(yaml, t_fields, NAME ":2: unknown key 'bogus'");
    t_err("[1, 2]\n", t_fields,
          NAME ":1: the top level must be a map, got a list");
}

static void
test_table_bad_default(void **state)
{
    static const cairn_cfg_field bad[] = {
        {.name = "n", .type = CAIRN_CFG_INT, .def = "ten", .offset = 0},
        {.type = CAIRN_CFG_END},
    };
    int64_t      v;
    cairni_arena arena = {0};
    char         err[256];
    cairni_doc  *doc = parse_ok("\n\nother: 1\n");
    /* the unknown key is found first ... */
    assert_int_equal(
        cairni_cfg_fill(doc, doc->root, bad, &v, &arena, err, sizeof(err)),
        CAIRN_ECONFIG);
    expect_text(err, NAME ":3: unknown key 'other'");
    cairni_doc_free(doc);
    /* ... and a broken default says so */
    doc = parse_ok("");
    assert_int_equal(
        cairni_cfg_fill(doc, doc->root, bad, &v, &arena, err, sizeof(err)),
        CAIRN_ECONFIG);
    expect_text(err,
                NAME ":1: 'n' must be an integer, got 'ten' (table default)");
    cairni_doc_free(doc);
    /* NULL node: all defaults */
    static const cairn_cfg_field good[] = {
        {.name = "n", .type = CAIRN_CFG_INT, .def = "0x10", .offset = 0},
        {.type = CAIRN_CFG_END},
    };
    assert_int_equal(
        cairni_cfg_fill(NULL, NULL, good, &v, &arena, err, sizeof(err)),
        CAIRN_OK);
    assert_int_equal(v, 16);
    cairni_arena_fini(&arena);
}

/* ---- the daemon's configuration ------------------------------------------ */

static void
expect_defaults(const cairni_config *cfg)
{
    assert_string_equal(cfg->runtime.name, "cairn");
    assert_string_equal(cfg->runtime.data_dir, "/var/lib/cairn");
    assert_string_equal(cfg->runtime.plugin_dir, "");
    assert_string_equal(cfg->runtime.admin, "");
    assert_int_equal(cfg->runtime.log_level, CAIRN_LOG_INFO);
    assert_int_equal(cfg->runtime.sub_queue, 4096);
    assert_int_equal(cfg->store.sync, CAIRNI_SYNC_FULL);
    assert_int_equal(cfg->store.max_bytes, 64u * 1024 * 1024);
    assert_int_equal(cfg->store.max_messages, 1000000);
    assert_int_equal(cfg->store.ttl_ms, 0);
    assert_int_equal(cfg->store.on_full, CAIRNI_FULL_REJECT);
    assert_int_equal(cfg->retry.initial_ms, 500);
    assert_int_equal(cfg->retry.max_ms, 60000);
    assert_true(cfg->retry.multiplier == 2.0);
    assert_int_equal(cfg->retry.max_attempts, 0);
    assert_int_equal(cfg->plugins.count, 0);
}

static void
test_config_defaults(void **state)
{
    const char *empties[] = {"", "# nothing yet\n", "---\n", "~\n",
                             "runtime:\nstore: {}\nretry: ~\nplugins: []\n"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(empties); i++) {
        cairni_config *cfg = load_ok(empties[i]);
        expect_defaults(cfg);
        cairni_config_free(cfg);
    }
    cairni_config_free(NULL);
}

static const char *quickstart =
    "# cairn quickstart: a simulated sensor and a counter\n"
    "runtime:\n"
    "  name: demo\n"
    "  data_dir: /tmp/cairn-demo\n"
    "  log_level: debug\n"
    "  sub_queue: 1024\n"
    "store:\n"
    "  sync: normal\n"
    "  max_bytes: 16MiB\n"
    "  max_messages: 50000\n"
    "  ttl: 1d\n"
    "  on_full: drop_oldest\n"
    "retry:\n"
    "  initial: 250ms\n"
    "  max: 30s\n"
    "  multiplier: 1.5\n"
    "  max_attempts: 8\n"
    "plugins:\n"
    "  - name: sim\n"
    "    path: sensor-sim.so\n"
    "    config:\n"
    "      topic: sensors/temp\n"
    "      interval: 1s\n"
    "  - name: counter\n"
    "    path: /usr/lib/cairn/plugins/counter.so\n"
    "    optional: yes\n"
    "    config:\n"
    "      filter: \"sensors/#\"\n"
    "  - name: idle\n"
    "    path: idle.so\n";

static void
test_config_quickstart(void **state)
{
    cairni_config *cfg = load_ok(quickstart);
    assert_string_equal(cfg->runtime.name, "demo");
    assert_string_equal(cfg->runtime.data_dir, "/tmp/cairn-demo");
    assert_string_equal(cfg->runtime.plugin_dir, "");
    assert_int_equal(cfg->runtime.log_level, CAIRN_LOG_DEBUG);
    assert_int_equal(cfg->runtime.sub_queue, 1024);
    assert_int_equal(cfg->store.sync, CAIRNI_SYNC_NORMAL);
    assert_int_equal(cfg->store.max_bytes, 16u * 1024 * 1024);
    assert_int_equal(cfg->store.max_messages, 50000);
    assert_int_equal(cfg->store.ttl_ms, 86400000);
    assert_int_equal(cfg->store.on_full, CAIRNI_FULL_DROP_OLDEST);
    assert_int_equal(cfg->retry.initial_ms, 250);
    assert_int_equal(cfg->retry.max_ms, 30000);
    assert_true(cfg->retry.multiplier == 1.5);
    assert_int_equal(cfg->retry.max_attempts, 8);
    assert_int_equal(cfg->plugins.count, 3);
    const cairni_plugin_cfg *pl = cfg->plugins.items;
    assert_string_equal(pl[0].name, "sim");
    assert_string_equal(pl[0].path, "sensor-sim.so");
    assert_false(pl[0].optional);
    assert_int_equal(pl[0].line, 19);
    assert_string_equal(cairni_node_get(pl[0].config, "topic")->value,
                        "sensors/temp");
    assert_string_equal(pl[1].name, "counter");
    assert_true(pl[1].optional);
    assert_int_equal(pl[1].line, 24);
    assert_int_equal(pl[1].config->line, 28);
    assert_null(pl[2].config);
    assert_int_equal(pl[2].line, 29);

    /* A plugin's own table, filled from its config map, names the whole
     * path in its messages. */
    typedef struct {
        const char *topic;
        uint64_t    interval_ms;
    } sim_cfg;
    static const cairn_cfg_field sim_fields[] = {
        {.name = "topic",
         .type = CAIRN_CFG_STRING,
         .offset = offsetof(sim_cfg, topic)},
        {.name = "interval",
         .type = CAIRN_CFG_DURATION,
         .def = "5s",
         .offset = offsetof(sim_cfg, interval_ms)},
        {.type = CAIRN_CFG_END},
    };
    sim_cfg sc;
    char    err[256];
    assert_int_equal(cairni_cfg_fill(cfg->doc, pl[0].config, sim_fields, &sc,
                                     &cfg->arena, err, sizeof(err)),
                     CAIRN_OK);
    assert_string_equal(sc.topic, "sensors/temp");
    assert_int_equal(sc.interval_ms, 1000);
    assert_int_equal(cairni_cfg_fill(cfg->doc, pl[1].config, sim_fields, &sc,
                                     &cfg->arena, err, sizeof(err)),
                     CAIRN_ECONFIG);
    expect_text(err, NAME ":28: unknown key 'plugins[1].config.filter'");
    assert_int_equal(cairni_cfg_fill(cfg->doc, pl[2].config, sim_fields, &sc,
                                     &cfg->arena, err, sizeof(err)),
                     CAIRN_ECONFIG);
    expect_text(err, NAME ":1: missing required key 'topic'");
    cairni_config_free(cfg);
}

static void
test_config_plugin_config_shapes(void **state)
{
    cairni_config               *cfg = load_ok("plugins:\n"
                                                             "  - name: a\n"
                                                             "    path: a.so\n"
                                                             "    config: 7\n");
    static const cairn_cfg_field none[] = {{.type = CAIRN_CFG_END}};
    char                         err[256];
    int                          dummy;
    const cairni_plugin_cfg     *pl = cfg->plugins.items;
    assert_int_equal(cairni_cfg_fill(cfg->doc, pl[0].config, none, &dummy,
                                     &cfg->arena, err, sizeof(err)),
                     CAIRN_ECONFIG);
    expect_text(err, NAME ":4: 'plugins[0].config' must be a map, got '7'");
    cairni_config_free(cfg);
}

static void
test_config_errors(void **state)
{
    load_err("runtime: {}\nbogus: 1\n", NAME ":2: unknown key 'bogus'");
    load_err("runtime:\n  nmae: x\n", NAME ":2: unknown key 'runtime.nmae'");
    load_err("runtime:\n  sub_queue: abc\n",
             NAME ":2: 'runtime.sub_queue' must be an integer, got 'abc'");
    load_err("runtime:\n  sub_queue: 0\n",
             NAME ":2: 'runtime.sub_queue' must be between 1 and 1048576, got "
                  "'0'");
    load_err("runtime:\n  sub_queue: 1048577\n",
             NAME ":2: 'runtime.sub_queue' must be between 1 and 1048576, got "
                  "'1048577'");
    load_err("runtime:\n  log_level: verbose\n",
             NAME ":2: 'runtime.log_level' must be one of "
                  "error|warn|info|debug, got 'verbose'");
    load_err("runtime:\n  name:\n    x: 1\n",
             NAME ":3: 'runtime.name' must be a string, got a map");
    load_err("store: 5\n", NAME ":1: 'store' must be a map, got '5'");
    load_err("store:\n  - a\n", NAME ":2: 'store' must be a map, got a list");
    load_err("store:\n  sync: FULL\n",
             NAME ":2: 'store.sync' must be one of full|normal, got 'FULL'");
    load_err("store:\n  max_bytes: 1KiB\n",
             NAME ":2: 'store.max_bytes' must be at least 64KiB, got '1KiB'");
    load_err("store:\n  max_messages: 0\n",
             NAME ":2: 'store.max_messages' must be at least 1, got '0'");
    load_err("store:\n  ttl: forever\n",
             NAME ":2: 'store.ttl' must be a duration (e.g. 250ms, 5s, 2m, "
                  "1h, 1d), got 'forever'");
    load_err("store:\n  on_full: drop\n",
             NAME ":2: 'store.on_full' must be one of reject|drop_oldest, got "
                  "'drop'");
    load_err("retry:\n  initial: 0ms\n",
             NAME ":2: 'retry.initial' must be at least 1ms, got '0ms'");
    load_err("retry:\n  multiplier: 11\n",
             NAME ":2: 'retry.multiplier' must be between 1 and 10, got '11'");
    load_err("retry:\n  max_attempts: -1\n",
             NAME ":2: 'retry.max_attempts' must be at least 0, got '-1'");
    load_err("- a\n", NAME ":1: the top level must be a map, got a list");
    load_err("just text\n", NAME ":1: the top level must be a map, got 'just "
                                 "text'");
    /* parse errors come through load_string unchanged */
    load_err("a: &x 1\n", NAME ":1: anchors are not allowed (&x)");
}

static void
test_config_retry_order(void **state)
{
    load_err("runtime: {}\n\nretry:\n  initial: 2m\n  max: 1m\n",
             NAME ":4: 'retry.max' (60000ms) must not be less than "
                  "'retry.initial' (120000ms)");
    /* a default max below a given initial is caught too */
    load_err("retry:\n  initial: 61s\n",
             NAME ":2: 'retry.max' (60000ms) must not be less than "
                  "'retry.initial' (61000ms)");
    cairni_config *cfg = load_ok("retry:\n  initial: 1m\n  max: 1m\n");
    assert_int_equal(cfg->retry.max_ms, 60000);
    cairni_config_free(cfg);
}

static void
test_config_plugins(void **state)
{
    load_err("plugins:\n"
             "  - name: a\n"
             "    path: a.so\n"
             "  - name: b\n"
             "    path: b.so\n"
             "  - path: a2.so\n"
             "    name: a\n",
             NAME ":7: duplicate plugin name 'a' (first at line 2)");
    load_err("plugins:\n  - name: a\n", NAME ":2: missing required key "
                                             "'plugins[0].path'");
    load_err("plugins:\n  - name: a\n    path: a.so\n  - path: b.so\n",
             NAME ":4: missing required key 'plugins[1].name'");
    load_err("plugins:\n  - name: a\n    path: a.so\n  - name: b\n"
             "    path: b.so\n    optional: maybe\n",
             NAME ":6: 'plugins[1].optional' must be true or false, got "
                  "'maybe'");
    load_err("plugins:\n  - name: a\n    path: a.so\n    confg: {}\n",
             NAME ":4: unknown key 'plugins[0].confg'");
    load_err("plugins:\n  - foo\n", NAME ":2: 'plugins[0]' must be a map, got "
                                         "'foo'");
    load_err("plugins: foo\n", NAME ":1: 'plugins' must be a list of maps, got "
                                    "'foo'");
    load_err("plugins:\n  - name: ''\n    path: x.so\n",
             NAME ":2: 'plugins[0].name' must not be empty");
}

static void
test_config_document(void **state)
{
    cairni_buf out = {0};
    cairni_cfg_document(cairni_config_fields, NULL, &out);
    assert_non_null(out.data);
    assert_non_null(strstr(out.data, "| key | type | default |"));
    /* every key of every table, with its dotted path */
    const cairn_cfg_field *top = cairni_config_fields;
    for (const cairn_cfg_field *f = top; f->type != CAIRN_CFG_END; f++) {
        char key[96];
        snprintf(key, sizeof(key), "| `%s` |", f->name);
        assert_non_null(strstr(out.data, key));
        const char *sep = f->type == CAIRN_CFG_LIST ? "[]." : ".";
        for (const cairn_cfg_field *s = f->sub;
             s != NULL && s->type != CAIRN_CFG_END; s++) {
            snprintf(key, sizeof(key), "| `%s%s%s` |", f->name, sep, s->name);
            if (strstr(out.data, key) == NULL) {
                print_error("no row for %s in:\n%s\n", key, out.data);
                fail();
            }
        }
    }
    const char *rows[] = {
        "| `runtime.sub_queue` | integer | `4096` | between 1 and 1048576 |",
        ("| `runtime.log_level` | enum | `info` | one of `error`, `warn`, "
         "`info`, `debug` |"),
        "| `runtime.plugin_dir` | string | `\"\"` |  |",
        "| `store.max_bytes` | size | `64MiB` | at least 64KiB |",
        "| `retry.initial` | duration | `500ms` | at least 1ms |",
        "| `retry.multiplier` | number | `2.0` | between 1 and 10 |",
        "| `plugins` | list of maps | empty |  |",
        "| `plugins[].name` | string | required |  |",
        "| `plugins[].config` | map (free-form) | empty |  |",
    };
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(rows); i++) {
        if (strstr(out.data, rows[i]) == NULL) {
            print_error("no '%s' in:\n%s\n", rows[i], out.data);
            fail();
        }
    }
    cairni_buf_fini(&out);

    /* a prefix, and '|' in text escaped */
    static const cairn_cfg_field pipe[] = {
        {.name = "p",
         .type = CAIRN_CFG_STRING,
         .def = "a|b",
         .description = "x | y"},
        {.type = CAIRN_CFG_END},
    };
    cairni_cfg_document(pipe, "sim", &out);
    assert_non_null(
        strstr(out.data, "| `sim.p` | string | `a\\|b` |  | x \\| y |"));
    cairni_buf_fini(&out);
    cairni_cfg_document(pipe, "config.", &out);
    assert_non_null(strstr(out.data, "| `config.p` |"));
    cairni_buf_fini(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_tree),
        cmocka_unit_test(test_parse_empty),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_syntax_errors),
        cmocka_unit_test(test_parse_limits_depth),
        cmocka_unit_test(test_parse_limits_count_size),
        cmocka_unit_test(test_parse_file),
        cmocka_unit_test(test_type_int),
        cmocka_unit_test(test_type_double),
        cmocka_unit_test(test_type_bool),
        cmocka_unit_test(test_type_duration),
        cmocka_unit_test(test_type_size),
        cmocka_unit_test(test_type_enum_string),
        cmocka_unit_test(test_table_lists),
        cmocka_unit_test(test_table_absent_and_null),
        cmocka_unit_test(test_table_errors),
        cmocka_unit_test(test_table_bad_default),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_quickstart),
        cmocka_unit_test(test_config_plugin_config_shapes),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_retry_order),
        cmocka_unit_test(test_config_plugins),
        cmocka_unit_test(test_config_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
