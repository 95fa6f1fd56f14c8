/*
 * cfgtable.c - the typed configuration tables of cairn/plugin.h at work:
 * checks a parsed YAML map (config.c builds the tree) against a table of
 * cairn_cfg_field, fills the struct the table describes, and renders the
 * same table as a Markdown reference, so the docs cannot drift from the
 * code.
 *
 * Rules, which plugin authors rely on (keep the README in step):
 *
 *  - Every field of the table is written: the value from the map, else the
 *    default, else an empty list / a zeroed-and-defaulted nested map.
 *  - A default (def) is the text one would write after the colon, parsed by
 *    the same code as a value.  For LIST, STRLIST and MAP a non-NULL def is
 *    parsed as YAML (flow syntax, e.g. "[a, b]").  CAIRNI_CFG_NODE ignores
 *    def.
 *  - YAML's null (an unquoted empty value, "~" or "null") means "absent" for
 *    MAP, LIST, STRLIST and CAIRNI_CFG_NODE.  Scalar types see its text: a
 *    STRING gets "", the others refuse it.
 *  - A range applies when min and max are not both 0.  An open end is
 *    written as the type's limit: max >= 2^63 for INT, max >= 2^64 for
 *    DURATION and SIZE, and min <= 0 for those two; messages and docs then
 *    say "at least" / "at most".
 *  - INT: decimal or 0x hex, optional sign, 64-bit overflow refused.
 *    DOUBLE: finite decimal numbers only.  BOOL: true/false, yes/no, on/off
 *    (any case).  DURATION: a whole number with ms, s, m, h or d, or a
 *    bare number of milliseconds.  SIZE: a whole number of bytes, with B,
 *    KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000,
 *    as the SI prefixes say).  ENUM: exact, case-sensitive match.
 *  - Messages are "file:line: message", the key named by its full path:
 *    dotted keys and zero-based list indices, "plugins[1].config.rate".
 *    The path of a node below the document root is found by searching the
 *    document, so a plugin's own table reports "plugins[1].config.rate"
 *    although the daemon hands over only the plugin's config map.
 *    Shapes: "unknown key 'P'", "missing required key 'P'",
 *    "'P' must be an integer, got 'abc'", "'P' must be between 1 and 10,
 *    got '12'", "'P' must be one of a|b, got 'c'", "'P' must be a map, got
 *    a list", "'P' overflows 64 bits, got '...'".  A bad table default
 *    (a bug in the table, not in the file) adds " (table default)".
 *  - Strings and arrays are allocated in the caller's arena, never pointed
 *    into the document, so the document may be freed first.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairni.h"

#define CFG_PATH_MAX 256 /* longer key paths are cut short in messages */
#define CFG_SHOW_MAX 40  /* bytes of a bad value quoted in a message */
#define CFG_DOC_DEPTH 8  /* nesting rendered by cairni_cfg_document */

#define CFG_TWO63 9223372036854775808.0
#define CFG_TWO64 18446744073709551616.0

typedef struct cfg_ctx {
    const cairni_doc *doc;
    cairni_arena     *arena;
    char             *err;
    size_t            errlen;
    bool              in_default; /* parsing a table default, not the file */
    int               def_line;   /* line reported for a bad default */
    size_t            plen;
    char              path[CFG_PATH_MAX];
} cfg_ctx;

typedef enum { CFG_NUM_OK, CFG_NUM_BAD, CFG_NUM_BIG } cfg_num;

typedef struct cfg_unit {
    const char *suffix;
    uint64_t    mult;
} cfg_unit;

static const cfg_unit cfg_dur_units[] = {
    {"", 1},        {"ms", 1},       {"s", 1000}, {"m", 60000},
    {"h", 3600000}, {"d", 86400000}, {NULL, 0},
};

static const cfg_unit cfg_size_units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", 1ull << 10},
    {"MiB", 1ull << 20},
    {"GiB", 1ull << 30},
    {"TiB", 1ull << 40},
    {"KB", 1000ull},
    {"MB", 1000000ull},
    {"GB", 1000000000ull},
    {"TB", 1000000000000ull},
    {NULL, 0},
};

/* ---- messages ------------------------------------------------------------ */

static cairn_err cfg_fail(cfg_ctx *c, cairn_err rv, int line, const char *fmt,
                          ...) CAIRN_PRINTF(4, 5);

/* Control bytes from the file must not reach a terminal through a message. */
static void
cfg_sanitize(char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            *s = '?';
        }
    }
}

static cairn_err
cfg_fail(cfg_ctx *c, cairn_err rv, int line, const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0) {
        return rv;
    }
    const char *file = c->doc != NULL ? c->doc->file : "config";
    if (c->in_default) {
        line = c->def_line;
    }
    int n = snprintf(c->err, c->errlen, "%s:%d: ", file, line);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (c->in_default) {
        size_t len = strlen(c->err);
        snprintf(c->err + len, c->errlen - len, " (table default)");
    }
    cfg_sanitize(c->err);
    return rv;
}

/* What a node is, for "got ...": a map, a list, or its quoted text. */
static const char *
cfg_got(const cairni_node *n, char *buf, size_t len)
{
    if (n->kind == CAIRNI_NODE_MAP) {
        return "a map";
    }
    if (n->kind == CAIRNI_NODE_SEQ) {
        return "a list";
    }
    size_t vlen = strlen(n->value);
    if (vlen > CFG_SHOW_MAX) {
        snprintf(buf, len, "'%.*s...'", CFG_SHOW_MAX, n->value);
    } else {
        snprintf(buf, len, "'%s'", n->value);
    }
    return buf;
}

/* Each type's name in the docs and what a message says it must be. */
static const struct cfg_type_info {
    int         type;
    const char *name;
    const char *phrase;
} cfg_types[] = {
    {CAIRN_CFG_STRING, "string", "a string"},
    {CAIRN_CFG_INT, "integer", "an integer"},
    {CAIRN_CFG_DOUBLE, "number", "a finite number"},
    {CAIRN_CFG_BOOL, "bool", "true or false"},
    {CAIRN_CFG_DURATION, "duration", "a duration (e.g. 250ms, 5s, 2m, 1h, 1d)"},
    {CAIRN_CFG_SIZE, "size", "a size (e.g. 512, 64KiB, 10MiB, 1GiB)"},
    {CAIRN_CFG_ENUM, "enum", "one of the choices"},
    {CAIRN_CFG_STRLIST, "list of strings", "a list of strings"},
    {CAIRN_CFG_LIST, "list of maps", "a list of maps"},
    {CAIRN_CFG_MAP, "map", "a map"},
    {CAIRNI_CFG_NODE, "map (free-form)", "a map"},
};

static const char *
cfg_type_text(cairn_cfg_type t, bool phrase)
{
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(cfg_types); i++) {
        if (cfg_types[i].type == (int)t) {
            return phrase ? cfg_types[i].phrase : cfg_types[i].name;
        }
    }
    return "?";
}

static cairn_err
cfg_type_fail(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n)
{
    char got[CFG_SHOW_MAX + 8];
    if (f->type == CAIRN_CFG_ENUM) {
        return cfg_fail(c, CAIRN_ECONFIG, n->line,
                        "'%s' must be one of %s, got %s", c->path, f->choices,
                        cfg_got(n, got, sizeof(got)));
    }
    return cfg_fail(c, CAIRN_ECONFIG, n->line, "'%s' must be %s, got %s",
                    c->path, cfg_type_text(f->type, true),
                    cfg_got(n, got, sizeof(got)));
}

/* ---- key paths ----------------------------------------------------------- */

/* Appends text to the key path, truncating; returns the old length so the
 * caller can cut the path back. */
static size_t
cfg_path_add(cfg_ctx *c, const char *sep, const char *text)
{
    size_t old  = c->plen;
    size_t room = sizeof(c->path) - c->plen;
    int    n    = snprintf(c->path + c->plen, room, "%s%s", sep, text);
    if (n > 0) {
        c->plen += (size_t)n < room ? (size_t)n : room - 1;
    }
    return old;
}

static size_t
cfg_path_key(cfg_ctx *c, const char *key)
{
    return cfg_path_add(c, c->plen == 0 ? "" : ".", key);
}

static size_t
cfg_path_index(cfg_ctx *c, size_t i)
{
    char idx[32];
    snprintf(idx, sizeof(idx), "[%zu]", i);
    return cfg_path_add(c, "", idx);
}

static void
cfg_path_pop(cfg_ctx *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

/* Depth-first search for target below cur, leaving its path in c->path. */
static bool
cfg_path_find(cfg_ctx *c, const cairni_node *cur, const cairni_node *target,
              int depth)
{
    if (cur == target) {
        return true;
    }
    if (cur == NULL || cur->kind == CAIRNI_NODE_SCALAR || depth > 64) {
        return false;
    }
    for (size_t i = 0; i < cur->count; i++) {
        size_t old = cur->kind == CAIRNI_NODE_MAP
                         ? cfg_path_key(c, cur->keys[i])
                         : cfg_path_index(c, i);
        if (cfg_path_find(c, cur->items[i], target, depth + 1)) {
            return true;
        }
        cfg_path_pop(c, old);
    }
    return false;
}

/* ---- scalars ------------------------------------------------------------- */

static bool
cfg_is_null(const cairni_node *n)
{
    return n->kind == CAIRNI_NODE_SCALAR && !n->quoted &&
           (n->value[0] == '\0' || strcmp(n->value, "~") == 0 ||
            strcmp(n->value, "null") == 0 || strcmp(n->value, "Null") == 0 ||
            strcmp(n->value, "NULL") == 0);
}

static int
cfg_digit(char ch, int base)
{
    int d = -1;
    if (ch >= '0' && ch <= '9') {
        d = ch - '0';
    } else if (base == 16 && ch >= 'a' && ch <= 'f') {
        d = ch - 'a' + 10;
    } else if (base == 16 && ch >= 'A' && ch <= 'F') {
        d = ch - 'A' + 10;
    }
    return d < base ? d : -1;
}

/* Unsigned digits at s; *end gets the first byte after them. */
static cfg_num
cfg_parse_u64(const char *s, int base, uint64_t *out, const char **end)
{
    uint64_t    v = 0;
    bool        big = false;
    const char *p = s;
    for (int d; (d = cfg_digit(*p, base)) >= 0; p++) {
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) {
            big = true;
        }
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *end = p;
    *out = v;
    if (p == s) {
        return CFG_NUM_BAD;
    }
    return big ? CFG_NUM_BIG : CFG_NUM_OK;
}

static cfg_num
cfg_parse_i64(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    if (*s == '-' || *s == '+') {
        s++;
    }
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    uint64_t    mag;
    const char *end;
    cfg_num     r = cfg_parse_u64(s, base, &mag, &end);
    if (r == CFG_NUM_BAD || *end != '\0') {
        return CFG_NUM_BAD;
    }
    if (r == CFG_NUM_BIG || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) {
        return CFG_NUM_BIG;
    }
    /* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return CFG_NUM_OK;
}

static cfg_num
cfg_parse_scaled(const char *s, const cfg_unit *units, uint64_t *out)
{
    uint64_t    v;
    const char *end;
    cfg_num     r = cfg_parse_u64(s, 10, &v, &end);
    if (r == CFG_NUM_BAD) {
        return r;
    }
    for (const cfg_unit *u = units; u->suffix != NULL; u++) {
        if (strcmp(end, u->suffix) != 0) {
            continue;
        }
        if (r == CFG_NUM_BIG || v > UINT64_MAX / u->mult) {
            return CFG_NUM_BIG;
        }
        *out = v * u->mult;
        return CFG_NUM_OK;
    }
    return CFG_NUM_BAD;
}

/* Renders ms with the largest unit that divides it: 60000 -> "1m". */
static void
cfg_fmt_ms(uint64_t ms, char *buf, size_t len)
{
    for (size_t i = CAIRNI_ARRAY_LEN(cfg_dur_units) - 2; i >= 2; i--) {
        uint64_t m = cfg_dur_units[i].mult;
        if (ms != 0 && ms % m == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(ms / m),
                     cfg_dur_units[i].suffix);
            return;
        }
    }
    snprintf(buf, len, "%llums", (unsigned long long)ms);
}

/* Renders bytes with the largest binary unit that divides it. */
static void
cfg_fmt_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(names); i++) {
        uint64_t m = 1ull << (10 * (4 - i));
        if (b != 0 && b % m == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(b / m), names[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)b);
}

/* ---- ranges -------------------------------------------------------------- */

static bool
cfg_has_range(const cairn_cfg_field *f)
{
    return f->min != 0 || f->max != 0;
}

/* True when that end of the range is the type's own limit (no bound). */
static bool
cfg_bound_open(const cairn_cfg_field *f, bool upper)
{
    double d = upper ? f->max : f->min;
    switch ((int)f->type) {
    case CAIRN_CFG_INT:
        return upper ? d >= CFG_TWO63 : d <= -CFG_TWO63;
    case CAIRN_CFG_DURATION:
    case CAIRN_CFG_SIZE:
        return upper ? d >= CFG_TWO64 : d <= 0;
    default:
        return false;
    }
}

static int64_t
cfg_i64_bound(double d, bool upper)
{
    if (d <= -CFG_TWO63) {
        return INT64_MIN;
    }
    if (d >= CFG_TWO63) {
        return INT64_MAX;
    }
    int64_t t = (int64_t)d; /* truncates toward zero */
    if (upper && (double)t > d) {
        t--;
    } else if (!upper && (double)t < d) {
        t++;
    }
    return t;
}

static uint64_t
cfg_u64_bound(double d, bool upper)
{
    if (!(d > 0)) {
        return 0;
    }
    if (d >= CFG_TWO64) {
        return UINT64_MAX;
    }
    uint64_t t = (uint64_t)d;
    if (!upper && (double)t < d) {
        t++;
    }
    return t;
}

static void
cfg_fmt_bound(const cairn_cfg_field *f, bool upper, char *buf, size_t len)
{
    double d = upper ? f->max : f->min;
    switch ((int)f->type) {
    case CAIRN_CFG_INT:
        snprintf(buf, len, "%lld", (long long)cfg_i64_bound(d, upper));
        break;
    case CAIRN_CFG_DURATION:
        cfg_fmt_ms(cfg_u64_bound(d, upper), buf, len);
        break;
    case CAIRN_CFG_SIZE:
        cfg_fmt_bytes(cfg_u64_bound(d, upper), buf, len);
        break;
    default:
        snprintf(buf, len, "%g", d);
        break;
    }
}

/* "between 1 and 10", "at least 1ms", "at most 5" */
static void
cfg_fmt_range(const cairn_cfg_field *f, char *buf, size_t len)
{
    char lo[48], hi[48];
    cfg_fmt_bound(f, false, lo, sizeof(lo));
    cfg_fmt_bound(f, true, hi, sizeof(hi));
    if (cfg_bound_open(f, true)) {
        snprintf(buf, len, "at least %s", lo);
    } else if (cfg_bound_open(f, false)) {
        snprintf(buf, len, "at most %s", hi);
    } else {
        snprintf(buf, len, "between %s and %s", lo, hi);
    }
}

static cairn_err
cfg_range_fail(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n)
{
    char range[112], got[CFG_SHOW_MAX + 8];
    cfg_fmt_range(f, range, sizeof(range));
    return cfg_fail(c, CAIRN_ECONFIG, n->line, "'%s' must be %s, got %s",
                    c->path, range, cfg_got(n, got, sizeof(got)));
}

/* ---- scalar fields ------------------------------------------------------- */

static cairn_err
cfg_num_fail(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
             cfg_num r)
{
    char got[CFG_SHOW_MAX + 8];
    if (r == CFG_NUM_BIG) {
        return cfg_fail(c, CAIRN_ECONFIG, n->line,
                        "'%s' overflows 64 bits, got %s", c->path,
                        cfg_got(n, got, sizeof(got)));
    }
    return cfg_type_fail(c, f, n);
}

static cairn_err
cfg_set_int(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
            void *dst)
{
    int64_t v = 0;
    cfg_num r = cfg_parse_i64(n->value, &v);
    if (r != CFG_NUM_OK) {
        return cfg_num_fail(c, f, n, r);
    }
    if (cfg_has_range(f) &&
        (v < cfg_i64_bound(f->min, false) || v > cfg_i64_bound(f->max, true))) {
        return cfg_range_fail(c, f, n);
    }
    memcpy(dst, &v, sizeof(v));
    return CAIRN_OK;
}

static cairn_err
cfg_set_scaled(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
               void *dst)
{
    const cfg_unit *units =
        f->type == CAIRN_CFG_SIZE ? cfg_size_units : cfg_dur_units;
    uint64_t v = 0;
    cfg_num  r = cfg_parse_scaled(n->value, units, &v);
    if (r != CFG_NUM_OK) {
        return cfg_num_fail(c, f, n, r);
    }
    if (cfg_has_range(f) &&
        (v < cfg_u64_bound(f->min, false) || v > cfg_u64_bound(f->max, true))) {
        return cfg_range_fail(c, f, n);
    }
    memcpy(dst, &v, sizeof(v));
    return CAIRN_OK;
}

static cairn_err
cfg_set_double(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
               void *dst)
{
    const char *s = n->value;
    char       *end;
    /* strtod also takes spaces, "inf", "nan" and hex: accept plain decimals. */
    bool start =
        (*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.';
    double v = start ? strtod(s, &end) : 0;
    if (!start || *end != '\0' || end == s || !isfinite(v) ||
        strpbrk(s, "xXnNiI") != NULL) {
        return cfg_type_fail(c, f, n);
    }
    if (cfg_has_range(f) && (v < f->min || v > f->max)) {
        return cfg_range_fail(c, f, n);
    }
    memcpy(dst, &v, sizeof(v));
    return CAIRN_OK;
}

static cairn_err
cfg_set_bool(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
             void *dst)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(yes); i++) {
        bool v = strcasecmp(n->value, yes[i]) == 0;
        if (v || strcasecmp(n->value, no[i]) == 0) {
            memcpy(dst, &v, sizeof(v));
            return CAIRN_OK;
        }
    }
    return cfg_type_fail(c, f, n);
}

static cairn_err
cfg_set_enum(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
             void *dst)
{
    if (f->choices == NULL) {
        return cfg_fail(c, CAIRN_EINVAL, n->line, "'%s': enum without choices",
                        c->path);
    }
    size_t      vlen = strlen(n->value);
    int         idx = 0;
    const char *p = f->choices;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t      len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == vlen && memcmp(p, n->value, len) == 0) {
            memcpy(dst, &idx, sizeof(idx));
            return CAIRN_OK;
        }
        if (bar == NULL) {
            return cfg_type_fail(c, f, n);
        }
        p = bar + 1;
        idx++;
    }
}

static cairn_err
cfg_set_string(cfg_ctx *c, const cairni_node *n, void *dst)
{
    const char *s = cairni_arena_strndup(c->arena, n->value, strlen(n->value));
    if (s == NULL) {
        return cfg_fail(c, CAIRN_ENOMEM, n->line, "out of memory");
    }
    memcpy(dst, &s, sizeof(s));
    return CAIRN_OK;
}

static cairn_err
cfg_fill_scalar(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
                void *dst)
{
    if (n->kind != CAIRNI_NODE_SCALAR) {
        return cfg_type_fail(c, f, n);
    }
    switch ((int)f->type) {
    case CAIRN_CFG_STRING:
        return cfg_set_string(c, n, dst);
    case CAIRN_CFG_INT:
        return cfg_set_int(c, f, n, dst);
    case CAIRN_CFG_DOUBLE:
        return cfg_set_double(c, f, n, dst);
    case CAIRN_CFG_BOOL:
        return cfg_set_bool(c, f, n, dst);
    case CAIRN_CFG_DURATION:
    case CAIRN_CFG_SIZE:
        return cfg_set_scaled(c, f, n, dst);
    case CAIRN_CFG_ENUM:
        return cfg_set_enum(c, f, n, dst);
    default:
        return cfg_fail(c, CAIRN_EINVAL, n->line,
                        "'%s': unknown field type %d in the table", c->path,
                        (int)f->type);
    }
}

/* ---- containers ---------------------------------------------------------- */

static cairn_err cfg_fill_map(cfg_ctx *c, const cairni_node *map, int line,
                              const cairn_cfg_field *fields, char *base);

static void
cfg_set_list(void *dst, void *items, size_t count)
{
    cairn_cfg_list l = {.items = items, .count = count};
    memcpy(dst, &l, sizeof(l));
}

/* Allocates count elements of size in the arena; NULL for none. */
static cairn_err
cfg_alloc_array(cfg_ctx *c, size_t count, size_t size, int line, void **out)
{
    *out = NULL;
    if (count == 0) {
        return CAIRN_OK;
    }
    if (size == 0 || count > SIZE_MAX / size) {
        return cfg_fail(c, CAIRN_EINVAL, line, "'%s': bad element size",
                        c->path);
    }
    *out = cairni_arena_alloc(c->arena, count * size);
    return *out != NULL ? CAIRN_OK
                        : cfg_fail(c, CAIRN_ENOMEM, line, "out of memory");
}

static cairn_err
cfg_fill_strlist(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
                 void *dst)
{
    if (cfg_is_null(n)) {
        cfg_set_list(dst, NULL, 0);
        return CAIRN_OK;
    }
    if (n->kind != CAIRNI_NODE_SEQ) {
        return cfg_type_fail(c, f, n);
    }
    const char **items;
    cairn_err    rv =
        cfg_alloc_array(c, n->count, sizeof(*items), n->line, (void **)&items);
    for (size_t i = 0; rv == CAIRN_OK && i < n->count; i++) {
        size_t old = cfg_path_index(c, i);
        if (n->items[i]->kind != CAIRNI_NODE_SCALAR) {
            char got[CFG_SHOW_MAX + 8];
            rv = cfg_fail(c, CAIRN_ECONFIG, n->items[i]->line,
                          "'%s' must be a string, got %s", c->path,
                          cfg_got(n->items[i], got, sizeof(got)));
        } else {
            rv = cfg_set_string(c, n->items[i], &items[i]);
        }
        cfg_path_pop(c, old);
    }
    if (rv == CAIRN_OK) {
        cfg_set_list(dst, items, n->count);
    }
    return rv;
}

/* A map, or null ("absent"), for a MAP field or a LIST element. */
static cairn_err
cfg_fill_submap(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
                void *dst)
{
    if (f->sub == NULL) {
        return cfg_fail(c, CAIRN_EINVAL, n->line, "'%s': no sub-table",
                        c->path);
    }
    if (cfg_is_null(n)) {
        return cfg_fill_map(c, NULL, n->line, f->sub, dst);
    }
    if (n->kind != CAIRNI_NODE_MAP) {
        char got[CFG_SHOW_MAX + 8];
        return cfg_fail(c, CAIRN_ECONFIG, n->line, "'%s' must be a map, got %s",
                        c->path, cfg_got(n, got, sizeof(got)));
    }
    return cfg_fill_map(c, n, n->line, f->sub, dst);
}

static cairn_err
cfg_fill_list(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
              void *dst)
{
    if (cfg_is_null(n)) {
        cfg_set_list(dst, NULL, 0);
        return CAIRN_OK;
    }
    if (n->kind != CAIRNI_NODE_SEQ) {
        return cfg_type_fail(c, f, n);
    }
    char     *items;
    cairn_err rv =
        cfg_alloc_array(c, n->count, f->elem_size, n->line, (void **)&items);
    for (size_t i = 0; rv == CAIRN_OK && i < n->count; i++) {
        size_t old = cfg_path_index(c, i);
        rv = cfg_fill_submap(c, f, n->items[i], items + i * f->elem_size);
        cfg_path_pop(c, old);
    }
    if (rv == CAIRN_OK) {
        cfg_set_list(dst, items, n->count);
    }
    return rv;
}

static cairn_err
cfg_fill_value(cfg_ctx *c, const cairn_cfg_field *f, const cairni_node *n,
               void *dst)
{
    switch ((int)f->type) {
    case CAIRN_CFG_MAP:
        return cfg_fill_submap(c, f, n, dst);
    case CAIRN_CFG_LIST:
        return cfg_fill_list(c, f, n, dst);
    case CAIRN_CFG_STRLIST:
        return cfg_fill_strlist(c, f, n, dst);
    case CAIRNI_CFG_NODE: {
        const cairni_node *raw = cfg_is_null(n) ? NULL : n;
        memcpy(dst, &raw, sizeof(raw));
        return CAIRN_OK;
    }
    default:
        return cfg_fill_scalar(c, f, n, dst);
    }
}

/* ---- defaults ------------------------------------------------------------ */

/* A container default is YAML text: parse it, fill, drop the tree. */
static cairn_err
cfg_fill_parsed_default(cfg_ctx *c, const cairn_cfg_field *f, int line,
                        void *dst)
{
    cairni_doc *doc = NULL;
    cairn_err   rv = cairni_doc_parse_string("default", f->def, strlen(f->def),
                                             &doc, c->err, c->errlen);
    if (rv != CAIRN_OK) {
        return rv;
    }
    cairni_node empty = {.kind = CAIRNI_NODE_SCALAR, .line = line, .value = ""};
    c->in_default = true;
    c->def_line = line;
    rv = cfg_fill_value(c, f, doc->root != NULL ? doc->root : &empty, dst);
    c->in_default = false;
    cairni_doc_free(doc);
    return rv;
}

static cairn_err
cfg_fill_default(cfg_ctx *c, const cairn_cfg_field *f, int line, void *dst)
{
    int t = (int)f->type;
    if (t == CAIRNI_CFG_NODE) {
        const cairni_node *none = NULL;
        memcpy(dst, &none, sizeof(none));
        return CAIRN_OK;
    }
    bool container =
        t == CAIRN_CFG_MAP || t == CAIRN_CFG_LIST || t == CAIRN_CFG_STRLIST;
    if (container && f->def != NULL) {
        return cfg_fill_parsed_default(c, f, line, dst);
    }
    cairni_node absent = {
        .kind = CAIRNI_NODE_SCALAR, .line = line, .value = ""};
    if (container) {
        return cfg_fill_value(c, f, &absent, dst);
    }
    if (f->def == NULL) {
        return cfg_fail(c, CAIRN_ECONFIG, line, "missing required key '%s'",
                        c->path);
    }
    absent.value = f->def;
    c->in_default = true;
    c->def_line = line;
    cairn_err rv = cfg_fill_scalar(c, f, &absent, dst);
    c->in_default = false;
    return rv;
}

/* ---- maps ---------------------------------------------------------------- */

static const cairn_cfg_field *
cfg_field_find(const cairn_cfg_field *fields, const char *name)
{
    for (const cairn_cfg_field *f = fields; f->type != CAIRN_CFG_END; f++) {
        if (f->name != NULL && strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* map is NULL (absent: all defaults, missing keys reported at line) or a
 * MAP node. */
static cairn_err
cfg_fill_map(cfg_ctx *c, const cairni_node *map, int line,
             const cairn_cfg_field *fields, char *base)
{
    for (size_t i = 0; map != NULL && i < map->count; i++) {
        if (cfg_field_find(fields, map->keys[i]) == NULL) {
            size_t    old = cfg_path_key(c, map->keys[i]);
            cairn_err rv = cfg_fail(c, CAIRN_ECONFIG, map->key_lines[i],
                                    "unknown key '%s'", c->path);
            cfg_path_pop(c, old);
            return rv;
        }
    }
    for (const cairn_cfg_field *f = fields; f->type != CAIRN_CFG_END; f++) {
        if (f->name == NULL) {
            continue;
        }
        const cairni_node *v = cairni_node_get(map, f->name);
        size_t             old = cfg_path_key(c, f->name);
        cairn_err          rv = v != NULL
                                    ? cfg_fill_value(c, f, v, base + f->offset)
                                    : cfg_fill_default(c, f, line, base + f->offset);
        cfg_path_pop(c, old);
        if (rv != CAIRN_OK) {
            return rv;
        }
    }
    return CAIRN_OK;
}

cairn_err
cairni_cfg_fill(const cairni_doc *doc, const cairni_node *node,
                const cairn_cfg_field *fields, void *base, cairni_arena *arena,
                char *err, size_t errlen)
{
    cfg_ctx c = {.doc = doc, .arena = arena, .err = err, .errlen = errlen};
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (node != NULL && doc != NULL && node != doc->root &&
        !cfg_path_find(&c, doc->root, node, 0)) {
        cfg_path_pop(&c, 0);
    }
    if (node != NULL && cfg_is_null(node)) {
        return cfg_fill_map(&c, NULL, node->line, fields, base);
    }
    if (node != NULL && node->kind != CAIRNI_NODE_MAP) {
        char        got[CFG_SHOW_MAX + 8];
        const char *what = c.plen > 0 ? c.path : "the top level";
        return cfg_fail(&c, CAIRN_ECONFIG, node->line,
                        "%s%s%s must be a map, got %s", c.plen > 0 ? "'" : "",
                        what, c.plen > 0 ? "'" : "",
                        cfg_got(node, got, sizeof(got)));
    }
    return cfg_fill_map(&c, node, 1, fields, base);
}

/* ---- documentation ------------------------------------------------------- */

/* Text inside a table cell: '|' would end the cell, a newline the row. */
static void
cfg_doc_cell(cairni_buf *out, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '|') {
            cairni_buf_append(out, "\\|", 2);
        } else {
            cairni_buf_append(out, *s == '\n' ? " " : s, 1);
        }
    }
}

static void
cfg_doc_default(const cairn_cfg_field *f, cairni_buf *out)
{
    int t = (int)f->type;
    if (t == CAIRN_CFG_MAP) {
        return;
    }
    if (t == CAIRNI_CFG_NODE ||
        (f->def == NULL && (t == CAIRN_CFG_LIST || t == CAIRN_CFG_STRLIST))) {
        cairni_buf_printf(out, "empty");
    } else if (f->def == NULL) {
        cairni_buf_printf(out, "required");
    } else if (f->def[0] == '\0') {
        cairni_buf_printf(out, "`\"\"`");
    } else {
        cairni_buf_append(out, "`", 1);
        cfg_doc_cell(out, f->def);
        cairni_buf_append(out, "`", 1);
    }
}

static void
cfg_doc_range(const cairn_cfg_field *f, cairni_buf *out)
{
    if (f->type == CAIRN_CFG_ENUM && f->choices != NULL) {
        cairni_buf_append(out, "one of `", 8);
        for (const char *p = f->choices; *p != '\0'; p++) {
            cairni_buf_append(out, *p == '|' ? "`, `" : p, *p == '|' ? 4 : 1);
        }
        cairni_buf_append(out, "`", 1);
        return;
    }
    bool numeric = f->type == CAIRN_CFG_INT || f->type == CAIRN_CFG_DOUBLE ||
                   f->type == CAIRN_CFG_DURATION || f->type == CAIRN_CFG_SIZE;
    if (numeric && cfg_has_range(f)) {
        char range[112];
        cfg_fmt_range(f, range, sizeof(range));
        cairni_buf_printf(out, "%s", range);
    }
}

static void
cfg_doc_rows(const cairn_cfg_field *fields, const char *prefix, cairni_buf *out,
             int depth)
{
    /* "store" and "store." both give "store.max_bytes". */
    size_t      plen = strlen(prefix);
    const char *sep = plen > 0 && prefix[plen - 1] != '.' ? "." : "";
    for (const cairn_cfg_field *f = fields; f->type != CAIRN_CFG_END; f++) {
        if (f->name == NULL) {
            continue;
        }
        cairni_buf key = {0};
        cairni_buf_printf(&key, "%s%s%s", prefix, sep, f->name);
        const char *k = key.data != NULL ? key.data : f->name;
        cairni_buf_append(out, "| `", 3);
        cfg_doc_cell(out, k);
        cairni_buf_printf(out, "` | %s | ", cfg_type_text(f->type, false));
        cfg_doc_default(f, out);
        cairni_buf_append(out, " | ", 3);
        cfg_doc_range(f, out);
        cairni_buf_append(out, " | ", 3);
        cfg_doc_cell(out, f->description);
        cairni_buf_append(out, " |\n", 3);
        if (f->sub != NULL && depth < CFG_DOC_DEPTH &&
            (f->type == CAIRN_CFG_MAP || f->type == CAIRN_CFG_LIST)) {
            if (f->type == CAIRN_CFG_LIST) {
                cairni_buf_append(&key, "[]", 2);
            }
            if (key.data != NULL) {
                cfg_doc_rows(f->sub, key.data, out, depth + 1);
            }
        }
        cairni_buf_fini(&key);
    }
}

void
cairni_cfg_document(const cairn_cfg_field *fields, const char *prefix,
                    cairni_buf *out)
{
    cairni_buf_printf(out, "| key | type | default | range | description |\n"
                           "|---|---|---|---|---|\n");
    if (fields != NULL) {
        cfg_doc_rows(fields, prefix != NULL ? prefix : "", out, 0);
    }
}
