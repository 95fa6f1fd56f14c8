/*
 * config.c - turns a YAML file into a small tree of cairni_node (maps,
 * lists, scalars with their line numbers) and loads the daemon's own
 * configuration from it.  Checking a tree against a typed table lives in
 * cfgtable.c.
 *
 * The config file is edited by hand and may come from anywhere, so the
 * parser accepts only the plain subset of YAML a config needs and refuses
 * the rest with "file:line: message":
 *   - anchors, aliases and explicit tags (a config that means the same
 *     thing in every reader, and no alias bombs);
 *   - more than one document in the stream;
 *   - keys that are not scalars, duplicate keys in one map, NUL bytes in
 *     a scalar;
 *   - more than CFG_MAX_DEPTH nested collections, more than CFG_MAX_NODES
 *     nodes (every key and value counts), more than CFG_MAX_BYTES of text:
 *     memory and recursion stay bounded whatever the input.
 * Syntax errors carry libyaml's own problem text and its line.  Whole-file
 * problems (too large) are reported at line 1; a file that cannot be read
 * gets "file: reason" (there is no line to point at).
 *
 * The tree lives in the document's arena.  Building it recurses once per
 * nesting level (bounded by CFG_MAX_DEPTH); children of the collections
 * being built wait on one shared stack and are copied into the arena when
 * their collection ends.
 *
 * The daemon's table is at the end of this file.  To add a section (say,
 * routes): add its struct to cairni_config, a table, one line to
 * cairni_config_fields and, for checks across keys, a function to
 * cfg_checks.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "cairni.h"

#define CFG_MAX_BYTES (1024u * 1024u)
#define CFG_MAX_DEPTH 32
#define CFG_MAX_NODES 100000
#define CFG_NAME_SHOW 40 /* bytes of an anchor or tag quoted in a message */

/* Open upper ends of ranges, as cfgtable.c reads them. */
#define CFG_NO_MAX_INT 9223372036854775808.0  /* 2^63 */
#define CFG_NO_MAX_U64 18446744073709551616.0 /* 2^64 */

/* ---- messages ------------------------------------------------------------ */

static void cfg_errf(char *err, size_t errlen, const char *file, int line,
                     const char *fmt, ...) CAIRN_PRINTF(5, 6);

/* "file:line: message", control bytes from the input replaced by '?'. */
static void
cfg_errf(char *err, size_t errlen, const char *file, int line, const char *fmt,
         ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    int n = line > 0 ? snprintf(err, errlen, "%s:%d: ", file, line)
                     : snprintf(err, errlen, "%s: ", file);
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *p = err; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
}

/* ---- duplicate detection ------------------------------------------------- */

typedef struct cfg_ent {
    const char *s;
    size_t      i;
} cfg_ent;

static int
cfg_ent_cmp(const void *a, const void *b)
{
    const cfg_ent *x = a, *y = b;
    int            r = strcmp(x->s, y->s);
    if (r != 0) {
        return r;
    }
    return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Finds the first string (in input order) equal to an earlier one.  Sorts
 * a copy, so large maps cost n log n rather than n^2.  *dupp = n if none;
 * *origp gets the index of the earlier occurrence.
 */
static cairn_err
cfg_first_dup(const char *const *strs, size_t n, size_t *dupp, size_t *origp)
{
    *dupp = n;
    if (n < 2) {
        return CAIRN_OK;
    }
    cfg_ent *e = calloc(n, sizeof(*e));
    if (e == NULL) {
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        e[i] = (cfg_ent){strs[i], i};
    }
    qsort(e, n, sizeof(*e), cfg_ent_cmp);
    /* In a run of equal strings, the run's second entry is its first dup. */
    for (size_t i = 1; i < n; i++) {
        bool starts_run = strcmp(e[i].s, e[i - 1].s) == 0 &&
                          (i == 1 || strcmp(e[i - 1].s, e[i - 2].s) != 0);
        if (starts_run && e[i].i < *dupp) {
            *dupp = e[i].i;
            *origp = e[i - 1].i;
        }
    }
    free(e);
    return CAIRN_OK;
}

/* ---- the YAML parser ----------------------------------------------------- */

/* A child waiting for its collection to end; key is NULL in lists. */
typedef struct cfg_slot {
    const char  *key;
    int          key_line;
    cairni_node *node;
} cfg_slot;

typedef struct cfg_parser {
    yaml_parser_t yp;
    yaml_event_t  ev; /* the current event; zeroed when there is none */
    cairni_doc   *doc;
    const char   *file;
    const char   *text;
    size_t        len;
    size_t        nodes;
    cfg_slot     *stack;
    size_t        top, cap;
    char         *err;
    size_t        errlen;
} cfg_parser;

static cairn_err cfg_perr(cfg_parser *p, cairn_err rv, int line,
                          const char *fmt, ...) CAIRN_PRINTF(4, 5);

static cairn_err
cfg_perr(cfg_parser *p, cairn_err rv, int line, const char *fmt, ...)
{
    char    msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfg_errf(p->err, p->errlen, p->file, line, "%s", msg);
    return rv;
}

static int
cfg_mark_line(const yaml_mark_t *m)
{
    return m->line >= (size_t)INT_MAX ? INT_MAX : (int)m->line + 1;
}

static int
cfg_ev_line(const cfg_parser *p)
{
    return cfg_mark_line(&p->ev.start_mark);
}

/* Reader errors (bad encoding) carry a byte offset, not a mark. */
static int
cfg_offset_line(const cfg_parser *p, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < p->len; i++) {
        line += p->text[i] == '\n';
    }
    return line;
}

static cairn_err
cfg_yaml_error(cfg_parser *p)
{
    const yaml_parser_t *y = &p->yp;
    if (y->error == YAML_MEMORY_ERROR) {
        return cfg_perr(p, CAIRN_ENOMEM, 1, "out of memory");
    }
    const char *problem = y->problem != NULL ? y->problem : "syntax error";
    if (y->error == YAML_READER_ERROR) {
        int line = cfg_offset_line(p, y->problem_offset);
        if (y->problem_value != -1) {
            return cfg_perr(p, CAIRN_ECONFIG, line, "%s (byte 0x%02x)", problem,
                            (unsigned)y->problem_value & 0xffu);
        }
        return cfg_perr(p, CAIRN_ECONFIG, line, "%s", problem);
    }
    int line = cfg_mark_line(&y->problem_mark);
    if (y->context == NULL) {
        return cfg_perr(p, CAIRN_ECONFIG, line, "%s", problem);
    }
    int cline = cfg_mark_line(&y->context_mark);
    if (cline != line) {
        return cfg_perr(p, CAIRN_ECONFIG, line, "%s (line %d): %s", y->context,
                        cline, problem);
    }
    return cfg_perr(p, CAIRN_ECONFIG, line, "%s: %s", y->context, problem);
}

/* Drops the current event and reads the next one. */
static cairn_err
cfg_next(cfg_parser *p)
{
    yaml_event_delete(&p->ev);
    memset(&p->ev, 0, sizeof(p->ev));
    if (!yaml_parser_parse(&p->yp, &p->ev)) {
        memset(&p->ev, 0, sizeof(p->ev));
        return cfg_yaml_error(p);
    }
    /* After an error libyaml hands out empty events: never loop on one. */
    if (p->ev.type == YAML_NO_EVENT) {
        return cfg_perr(p, CAIRN_EINTERNAL, 1, "unexpected end of events");
    }
    return CAIRN_OK;
}

static cairn_err
cfg_check_props(cfg_parser *p, const yaml_char_t *anchor,
                const yaml_char_t *tag)
{
    if (anchor != NULL) {
        return cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                        "anchors are not allowed (&%.*s)", CFG_NAME_SHOW,
                        (const char *)anchor);
    }
    if (tag != NULL) {
        return cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                        "tags are not allowed (%.*s)", CFG_NAME_SHOW,
                        (const char *)tag);
    }
    return CAIRN_OK;
}

/* extra: bytes allocated right after the node (a scalar's text), so a
 * scalar costs one arena block, not two. */
static cairn_err
cfg_new_node(cfg_parser *p, cairni_node_kind kind, size_t extra,
             cairni_node **np)
{
    int line = cfg_ev_line(p);
    if (++p->nodes > CFG_MAX_NODES) {
        return cfg_perr(p, CAIRN_ELIMIT, line, "more than %d nodes",
                        CFG_MAX_NODES);
    }
    cairni_node *n =
        extra > SIZE_MAX - sizeof(*n)
            ? NULL
            : cairni_arena_alloc(&p->doc->arena, sizeof(*n) + extra);
    if (n == NULL) {
        return cfg_perr(p, CAIRN_ENOMEM, line, "out of memory");
    }
    n->kind = kind;
    n->line = line;
    *np = n;
    return CAIRN_OK;
}

static cairn_err
cfg_push(cfg_parser *p, const char *key, int key_line, cairni_node *node)
{
    if (p->top == p->cap) {
        size_t    cap = p->cap ? p->cap * 2 : 64;
        cfg_slot *s = realloc(p->stack, cap * sizeof(*s));
        if (s == NULL) {
            return cfg_perr(p, CAIRN_ENOMEM, node->line, "out of memory");
        }
        p->stack = s;
        p->cap = cap;
    }
    p->stack[p->top++] = (cfg_slot){key, key_line, node};
    return CAIRN_OK;
}

static cairn_err
cfg_parse_scalar(cfg_parser *p, cairni_node **np)
{
    const yaml_event_t *ev = &p->ev;
    const char         *v = (const char *)ev->data.scalar.value;
    size_t              len = ev->data.scalar.length;
    cairn_err           rv =
        cfg_check_props(p, ev->data.scalar.anchor, ev->data.scalar.tag);
    /* A "\0" escape would silently cut the text short. */
    if (rv == CAIRN_OK && memchr(v, '\0', len) != NULL) {
        rv = cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                      "NUL characters are not allowed in a value");
    }
    if (rv == CAIRN_OK) {
        rv = cfg_new_node(p, CAIRNI_NODE_SCALAR, len + 1, np);
    }
    if (rv != CAIRN_OK) {
        return rv;
    }
    char *text = (char *)(*np + 1); /* zeroed, so already terminated */
    memcpy(text, v, len);
    (*np)->value = text;
    (*np)->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    return CAIRN_OK;
}

/* Moves the children above base off the stack into n's arrays. */
static cairn_err
cfg_collect(cfg_parser *p, cairni_node *n, size_t base)
{
    cairni_arena *a = &p->doc->arena;
    size_t        count = p->top - base;
    bool          map = n->kind == CAIRNI_NODE_MAP;
    n->count = count;
    if (count == 0) {
        return CAIRN_OK;
    }
    n->items = cairni_arena_alloc(a, count * sizeof(*n->items));
    if (map) {
        n->keys = cairni_arena_alloc(a, count * sizeof(*n->keys));
        n->key_lines = cairni_arena_alloc(a, count * sizeof(*n->key_lines));
    }
    if (n->items == NULL ||
        (map && (n->keys == NULL || n->key_lines == NULL))) {
        return cfg_perr(p, CAIRN_ENOMEM, n->line, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        const cfg_slot *s = &p->stack[base + i];
        n->items[i] = s->node;
        if (map) {
            n->keys[i] = s->key;
            n->key_lines[i] = s->key_line;
        }
    }
    p->top = base;
    return CAIRN_OK;
}

static cairn_err cfg_parse_node(cfg_parser *p, int depth, cairni_node **np);

/* Common start of a collection: properties, depth, the node itself. */
static cairn_err
cfg_begin_collection(cfg_parser *p, cairni_node_kind kind, int depth,
                     cairni_node **np)
{
    const yaml_event_t *ev = &p->ev;
    cairn_err           rv = kind == CAIRNI_NODE_MAP
                                 ? cfg_check_props(p, ev->data.mapping_start.anchor,
                                                   ev->data.mapping_start.tag)
                                 : cfg_check_props(p, ev->data.sequence_start.anchor,
                                                   ev->data.sequence_start.tag);
    if (rv != CAIRN_OK) {
        return rv;
    }
    if (depth > CFG_MAX_DEPTH) {
        return cfg_perr(p, CAIRN_ELIMIT, cfg_ev_line(p),
                        "nesting deeper than %d levels", CFG_MAX_DEPTH);
    }
    return cfg_new_node(p, kind, 0, np);
}

static cairn_err
cfg_parse_seq(cfg_parser *p, int depth, cairni_node **np)
{
    cairn_err rv = cfg_begin_collection(p, CAIRNI_NODE_SEQ, depth, np);
    size_t    base = p->top;
    while (rv == CAIRN_OK && (rv = cfg_next(p)) == CAIRN_OK &&
           p->ev.type != YAML_SEQUENCE_END_EVENT) {
        cairni_node *child = NULL;
        rv = cfg_parse_node(p, depth, &child);
        if (rv == CAIRN_OK) {
            rv = cfg_push(p, NULL, 0, child);
        }
    }
    return rv != CAIRN_OK ? rv : cfg_collect(p, *np, base);
}

static cairn_err
cfg_parse_key(cfg_parser *p, cairni_node **keyp)
{
    yaml_event_type_t t = p->ev.type;
    if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
        return cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                        "keys must be scalars, not maps or lists");
    }
    if (t != YAML_SCALAR_EVENT) {
        return cfg_parse_node(p, 0, keyp); /* an alias: refused there */
    }
    return cfg_parse_scalar(p, keyp);
}

static cairn_err
cfg_check_dup_keys(cfg_parser *p, const cairni_node *map)
{
    size_t    dup, orig = 0;
    cairn_err rv = cfg_first_dup(map->keys, map->count, &dup, &orig);
    if (rv != CAIRN_OK) {
        return cfg_perr(p, rv, map->line, "out of memory");
    }
    if (dup < map->count) {
        return cfg_perr(p, CAIRN_ECONFIG, map->key_lines[dup],
                        "duplicate key '%.*s' (first at line %d)", 64,
                        map->keys[dup], map->key_lines[orig]);
    }
    return CAIRN_OK;
}

static cairn_err
cfg_parse_map(cfg_parser *p, int depth, cairni_node **np)
{
    cairn_err rv = cfg_begin_collection(p, CAIRNI_NODE_MAP, depth, np);
    size_t    base = p->top;
    while (rv == CAIRN_OK && (rv = cfg_next(p)) == CAIRN_OK &&
           p->ev.type != YAML_MAPPING_END_EVENT) {
        cairni_node *key = NULL, *value = NULL;
        rv = cfg_parse_key(p, &key);
        if (rv == CAIRN_OK && (rv = cfg_next(p)) == CAIRN_OK) {
            rv = cfg_parse_node(p, depth, &value);
        }
        if (rv == CAIRN_OK) {
            rv = cfg_push(p, key->value, key->line, value);
        }
    }
    if (rv == CAIRN_OK) {
        rv = cfg_collect(p, *np, base);
    }
    return rv != CAIRN_OK ? rv : cfg_check_dup_keys(p, *np);
}

/* Builds the node of the current event; depth counts enclosing
 * collections. */
static cairn_err
cfg_parse_node(cfg_parser *p, int depth, cairni_node **np)
{
    switch (p->ev.type) {
    case YAML_SCALAR_EVENT:
        return cfg_parse_scalar(p, np);
    case YAML_SEQUENCE_START_EVENT:
        return cfg_parse_seq(p, depth + 1, np);
    case YAML_MAPPING_START_EVENT:
        return cfg_parse_map(p, depth + 1, np);
    case YAML_ALIAS_EVENT:
        return cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                        "aliases are not allowed (*%.*s)", CFG_NAME_SHOW,
                        (const char *)p->ev.data.alias.anchor);
    default:
        return cfg_perr(p, CAIRN_EINTERNAL, cfg_ev_line(p),
                        "unexpected YAML event %d", (int)p->ev.type);
    }
}

static cairn_err
cfg_expect(cfg_parser *p, yaml_event_type_t type)
{
    cairn_err rv = cfg_next(p);
    if (rv == CAIRN_OK && p->ev.type != type) {
        rv = cfg_perr(p, CAIRN_EINTERNAL, cfg_ev_line(p),
                      "unexpected YAML event %d", (int)p->ev.type);
    }
    return rv;
}

/* stream-start (document-start node document-end)? stream-end */
static cairn_err
cfg_parse_stream(cfg_parser *p)
{
    cairn_err rv = cfg_expect(p, YAML_STREAM_START_EVENT);
    if (rv == CAIRN_OK) {
        rv = cfg_next(p);
    }
    if (rv != CAIRN_OK || p->ev.type == YAML_STREAM_END_EVENT) {
        return rv;
    }
    if (p->ev.type != YAML_DOCUMENT_START_EVENT) {
        return cfg_perr(p, CAIRN_EINTERNAL, cfg_ev_line(p),
                        "unexpected YAML event %d", (int)p->ev.type);
    }
    if ((rv = cfg_next(p)) != CAIRN_OK ||
        (rv = cfg_parse_node(p, 0, &p->doc->root)) != CAIRN_OK ||
        (rv = cfg_expect(p, YAML_DOCUMENT_END_EVENT)) != CAIRN_OK ||
        (rv = cfg_next(p)) != CAIRN_OK) {
        return rv;
    }
    if (p->ev.type == YAML_DOCUMENT_START_EVENT) {
        return cfg_perr(p, CAIRN_ECONFIG, cfg_ev_line(p),
                        "more than one document (only one is allowed)");
    }
    return p->ev.type == YAML_STREAM_END_EVENT
               ? CAIRN_OK
               : cfg_perr(p, CAIRN_EINTERNAL, cfg_ev_line(p),
                          "unexpected YAML event %d", (int)p->ev.type);
}

cairn_err
cairni_doc_parse_string(const char *name, const char *text, size_t len,
                        cairni_doc **docp, char *err, size_t errlen)
{
    cfg_parser p = {.file = name != NULL ? name : "<string>",
                    .text = text != NULL ? text : "",
                    .len = text != NULL ? len : 0,
                    .err = err,
                    .errlen = errlen};
    cairn_err  rv;
    *docp = NULL;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (p.len > CFG_MAX_BYTES) {
        return cfg_perr(&p, CAIRN_ETOOBIG, 1, "larger than %u bytes (1 MiB)",
                        CFG_MAX_BYTES);
    }
    p.doc = calloc(1, sizeof(*p.doc));
    if (p.doc == NULL || (p.doc->file = strdup(p.file)) == NULL) {
        rv = cfg_perr(&p, CAIRN_ENOMEM, 1, "out of memory");
        goto fail;
    }
    if (!yaml_parser_initialize(&p.yp)) {
        rv = cfg_perr(&p, CAIRN_ENOMEM, 1, "out of memory");
        goto fail;
    }
    yaml_parser_set_input_string(&p.yp, (const unsigned char *)p.text, p.len);
    rv = cfg_parse_stream(&p);
    yaml_event_delete(&p.ev);
    yaml_parser_delete(&p.yp);
    free(p.stack);
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *docp = p.doc;
    return CAIRN_OK;
fail:
    cairni_doc_free(p.doc);
    return rv;
}

/* Reads at most CFG_MAX_BYTES + 1 bytes: one more tells "too large". */
static cairn_err
cfg_read_file(const char *path, char **bufp, size_t *lenp, char *err,
              size_t errlen)
{
    cairn_err rv = CAIRN_OK;
    char     *buf = NULL;
    size_t    len = 0;
    FILE     *f = fopen(path, "rb");
    if (f == NULL) {
        rv = cairn_errno(errno);
        cfg_errf(err, errlen, path, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    buf = malloc(CFG_MAX_BYTES + 1);
    if (buf == NULL) {
        rv = CAIRN_ENOMEM;
        cfg_errf(err, errlen, path, 0, "out of memory");
        goto fail;
    }
    len = fread(buf, 1, CFG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rv = cairn_errno(errno != 0 ? errno : EIO);
        cfg_errf(err, errlen, path, 0, "cannot read: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    *bufp = buf;
    *lenp = len;
    return CAIRN_OK;
fail:
    free(buf);
    if (f != NULL) {
        fclose(f);
    }
    return rv;
}

cairn_err
cairni_doc_parse_file(const char *path, cairni_doc **docp, char *err,
                      size_t errlen)
{
    char  *buf = NULL;
    size_t len = 0;
    *docp = NULL;
    cairn_err rv = cfg_read_file(path, &buf, &len, err, errlen);
    if (rv == CAIRN_OK) {
        rv = cairni_doc_parse_string(path, buf, len, docp, err, errlen);
        free(buf);
    }
    return rv;
}

void
cairni_doc_free(cairni_doc *doc)
{
    if (doc == NULL) {
        return;
    }
    cairni_arena_fini(&doc->arena);
    free(doc->file);
    free(doc);
}

const cairni_node *
cairni_node_get(const cairni_node *map, const char *key)
{
    if (map == NULL || map->kind != CAIRNI_NODE_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < map->count; i++) {
        if (strcmp(map->keys[i], key) == 0) {
            return map->items[i];
        }
    }
    return NULL;
}

/* ---- the daemon's configuration ------------------------------------------ */

/* One row of the daemon's tables; unlike CAIRN_FIELD_*, the key is given,
 * since some members carry their unit (ttl_ms for "ttl"). */
#define CFG_ROW(KEY, T, S, M, D, TEXT, ...)                                    \
    {                                                                          \
        .name = (KEY), .type = (T), .def = (D), .offset = offsetof(S, M),      \
        .description = (TEXT), __VA_ARGS__                                     \
    }

// clang-format off
static const cairn_cfg_field cfg_runtime_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_runtime_cfg, name, "cairn",
            "name of this runtime, shown in status and metrics", .min = 0),
    CFG_ROW("data_dir", CAIRN_CFG_STRING, cairni_runtime_cfg, data_dir,
            "/var/lib/cairn", "directory of the store and the admin socket",
            .min = 0),
    CFG_ROW("plugin_dir", CAIRN_CFG_STRING, cairni_runtime_cfg, plugin_dir, "",
            "where relative plugin paths are looked up; empty: the plugin "
            "directory built into cairnd", .min = 0),
    CFG_ROW("admin", CAIRN_CFG_STRING, cairni_runtime_cfg, admin, "",
            "admin socket URL; empty: `ipc://<data_dir>/admin.sock`", .min = 0),
    CFG_ROW("log_level", CAIRN_CFG_ENUM, cairni_runtime_cfg, log_level, "info",
            "least severe level written to stderr",
            .choices = "error|warn|info|debug"),
    CFG_ROW("sub_queue", CAIRN_CFG_INT, cairni_runtime_cfg, sub_queue, "4096",
            "messages a subscriber may lag behind before its messages are "
            "dropped (and counted)", .min = 1, .max = 1048576),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_dest_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_dest_entry, name, NULL,
            "destination: a plugin instance name", .min = 0),
    CFG_ROW("max_bytes", CAIRN_CFG_SIZE, cairni_dest_entry, max_bytes, "64MiB",
            "as store.max_bytes, for this destination",
            .min = 65536, .max = CFG_NO_MAX_U64),
    CFG_ROW("max_messages", CAIRN_CFG_INT, cairni_dest_entry, max_messages,
            "1000000", "as store.max_messages", .min = 1,
            .max = CFG_NO_MAX_INT),
    CFG_ROW("ttl", CAIRN_CFG_DURATION, cairni_dest_entry, ttl_ms, "0",
            "as store.ttl", .min = 0),
    CFG_ROW("on_full", CAIRN_CFG_ENUM, cairni_dest_entry, on_full, "reject",
            "as store.on_full", .choices = "reject|drop_oldest"),
    CFG_ROW("window", CAIRN_CFG_INT, cairni_dest_entry, window, "100",
            "as store.window", .min = 1, .max = 65535),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_store_fields[] = {
    CFG_ROW("sync", CAIRN_CFG_ENUM, cairni_store_cfg, sync, "full",
            "full: survives power loss; normal: survives a crash of cairnd "
            "only", .choices = "full|normal"),
    CFG_ROW("max_bytes", CAIRN_CFG_SIZE, cairni_store_cfg, max_bytes, "64MiB",
            "per destination: most bytes waiting (encoded envelope plus "
            "key); the database stays within the sum of these",
            .min = 65536, .max = CFG_NO_MAX_U64),
    CFG_ROW("max_messages", CAIRN_CFG_INT, cairni_store_cfg, max_messages,
            "1000000", "per destination: most messages waiting",
            .min = 1, .max = CFG_NO_MAX_INT),
    CFG_ROW("ttl", CAIRN_CFG_DURATION, cairni_store_cfg, ttl_ms, "0",
            "undelivered messages older than this are dropped; 0: kept until "
            "delivered", .min = 0),
    CFG_ROW("on_full", CAIRN_CFG_ENUM, cairni_store_cfg, on_full, "reject",
            "when full: refuse the new message, or drop the oldest (counted)",
            .choices = "reject|drop_oldest"),
    CFG_ROW("window", CAIRN_CFG_INT, cairni_store_cfg, window, "100",
            "messages a destination may have in flight (sent, not yet "
            "acknowledged)", .min = 1, .max = 65535),
    CFG_ROW("inbox_window", CAIRN_CFG_DURATION, cairni_store_cfg,
            inbox_window_ms, "24h", "how long consumed message ids are kept "
            "to drop duplicates", .min = 1000, .max = CFG_NO_MAX_U64),
    CFG_ROW("destinations", CAIRN_CFG_LIST, cairni_store_cfg, destinations,
            NULL, "per-destination limits; absent keys take the values above",
            .sub = cfg_dest_fields, .elem_size = sizeof(cairni_dest_entry)),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_route_fields[] = {
    CFG_ROW("filter", CAIRN_CFG_STRING, cairni_route_cfg, filter, NULL,
            "bus topic filter (MQTT syntax) of the messages to keep", .min = 0),
    CFG_ROW("to", CAIRN_CFG_STRING, cairni_route_cfg, to, NULL,
            "destination: the name of a plugin instance (a bridge or a "
            "durable consumer)", .min = 0),
    CFG_ROW("priority", CAIRN_CFG_ENUM, cairni_route_cfg, priority, "normal",
            "high drains before normal", .choices = "normal|high"),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_retry_fields[] = {
    CFG_ROW("initial", CAIRN_CFG_DURATION, cairni_retry_cfg, initial_ms,
            "500ms", "delay before the first retry",
            .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("max", CAIRN_CFG_DURATION, cairni_retry_cfg, max_ms, "60s",
            "longest delay between retries; at least initial", .min = 0),
    CFG_ROW("multiplier", CAIRN_CFG_DOUBLE, cairni_retry_cfg, multiplier,
            "2.0", "each delay is the previous one times this (plus jitter)",
            .min = 1, .max = 10),
    CFG_ROW("max_attempts", CAIRN_CFG_INT, cairni_retry_cfg, max_attempts, "0",
            "attempts before a message goes to the dead letters; 0: retry "
            "forever", .min = 0, .max = CFG_NO_MAX_INT),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_call_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_call_cfg, name, NULL,
            "service name", .min = 0),
    CFG_ROW("failures", CAIRN_CFG_INT, cairni_call_cfg, failures, "5",
            "as calls.failures, for this service", .min = 0, .max = 1000000),
    CFG_ROW("open", CAIRN_CFG_DURATION, cairni_call_cfg, open_ms, "10s",
            "as calls.open", .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("probes", CAIRN_CFG_INT, cairni_call_cfg, probes, "1",
            "as calls.probes", .min = 1, .max = 1000),
    CFG_ROW("idempotent", CAIRN_CFG_BOOL, cairni_call_cfg, idempotent, "false",
            "calling it twice has the effect of calling it once, so a failed "
            "call may be retried", .min = 0),
    CFG_ROW("attempts", CAIRN_CFG_INT, cairni_call_cfg, attempts, "1",
            "calls made for one request, within its deadline; more than 1 "
            "needs idempotent: true", .min = 1, .max = 100),
    CFG_ROW("backoff", CAIRN_CFG_DURATION, cairni_call_cfg, backoff_ms, "20ms",
            "as calls.backoff", .min = 1, .max = CFG_NO_MAX_U64),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_calls_fields[] = {
    CFG_ROW("failures", CAIRN_CFG_INT, cairni_calls_cfg, failures, "5",
            "consecutive failed calls (timeouts, service errors) that open a "
            "service's circuit breaker; 0: no breaker", .min = 0,
            .max = 1000000),
    CFG_ROW("open", CAIRN_CFG_DURATION, cairni_calls_cfg, open_ms, "10s",
            "how long an open breaker fails calls at once before it lets a "
            "probe through", .min = 1, .max = CFG_NO_MAX_U64),
    CFG_ROW("probes", CAIRN_CFG_INT, cairni_calls_cfg, probes, "1",
            "successful probe calls that close a half-open breaker",
            .min = 1, .max = 1000),
    CFG_ROW("backoff", CAIRN_CFG_DURATION, cairni_calls_cfg, backoff_ms,
            "20ms", "first delay before a retried call (doubling, full "
            "jitter, at most 1s, never past the call's deadline)", .min = 1,
            .max = CFG_NO_MAX_U64),
    CFG_ROW("services", CAIRN_CFG_LIST, cairni_calls_cfg, services, NULL,
            "per-service policies; absent keys take the values above",
            .sub = cfg_call_fields, .elem_size = sizeof(cairni_call_cfg)),
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field cfg_plugin_fields[] = {
    CFG_ROW("name", CAIRN_CFG_STRING, cairni_plugin_cfg, name, NULL,
            "instance name, unique among the plugins", .min = 0),
    CFG_ROW("path", CAIRN_CFG_STRING, cairni_plugin_cfg, path, NULL,
            "shared object; a relative name is looked up in "
            "runtime.plugin_dir", .min = 0),
    CFG_ROW("optional", CAIRN_CFG_BOOL, cairni_plugin_cfg, optional, "false",
            "if it fails to load or start, the others run anyway", .min = 0),
    CFG_ROW("config", CAIRNI_CFG_NODE, cairni_plugin_cfg, config, NULL,
            "the plugin's own settings, checked against its table", .min = 0),
    {.type = CAIRN_CFG_END},
};

/* The top level.  A new section is one more row here. */
const cairn_cfg_field cairni_config_fields[] = {
    CFG_ROW("runtime", CAIRN_CFG_MAP, cairni_config, runtime, NULL,
            "the runtime itself", .sub = cfg_runtime_fields),
    CFG_ROW("store", CAIRN_CFG_MAP, cairni_config, store, NULL,
            "the durable outbox", .sub = cfg_store_fields),
    CFG_ROW("retry", CAIRN_CFG_MAP, cairni_config, retry, NULL,
            "backoff of failed deliveries", .sub = cfg_retry_fields),
    CFG_ROW("calls", CAIRN_CFG_MAP, cairni_config, calls, NULL,
            "request/reply calls: circuit breakers and retries",
            .sub = cfg_calls_fields),
    CFG_ROW("plugins", CAIRN_CFG_LIST, cairni_config, plugins, NULL,
            "plugins to load, started in this order", .sub = cfg_plugin_fields,
            .elem_size = sizeof(cairni_plugin_cfg)),
    CFG_ROW("routes", CAIRN_CFG_LIST, cairni_config, routes, NULL,
            "durable routes: matching messages are kept in the outbox until "
            "their destination has delivered them", .sub = cfg_route_fields,
            .elem_size = sizeof(cairni_route_cfg)),
    {.type = CAIRN_CFG_END},
};
// clang-format on

/* Checks across keys, run in order after the tables have filled cfg. */
typedef cairn_err (*cfg_check_fn)(cairni_config *cfg, char *err, size_t errlen);

static cairn_err
cfg_check_retry(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_retry_cfg *r = &cfg->retry;
    if (r->max_ms >= r->initial_ms) {
        return CAIRN_OK;
    }
    const cairni_node *node = cairni_node_get(cfg->doc->root, "retry");
    cfg_errf(err, errlen, cfg->doc->file, node != NULL ? node->line : 1,
             "'retry.max' (%llums) must not be less than 'retry.initial' "
             "(%llums)",
             (unsigned long long)r->max_ms, (unsigned long long)r->initial_ms);
    return CAIRN_ECONFIG;
}

/* Sets each entry's line; names must be non-empty and unique. */
static cairn_err
cfg_check_plugins(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *seq = cairni_node_get(cfg->doc->root, "plugins");
    cairni_plugin_cfg *pl = cfg->plugins.items;
    size_t             n = cfg->plugins.count;
    if (n == 0) {
        return CAIRN_OK;
    }
    const char **names = calloc(n, sizeof(*names));
    if (names == NULL) {
        cfg_errf(err, errlen, cfg->doc->file, seq->line, "out of memory");
        return CAIRN_ENOMEM;
    }
    cairn_err rv = CAIRN_OK;
    for (size_t i = 0; i < n; i++) {
        pl[i].line = seq->items[i]->line;
        names[i] = pl[i].name;
        if (rv == CAIRN_OK && pl[i].name[0] == '\0') {
            cfg_errf(err, errlen, cfg->doc->file, pl[i].line,
                     "'plugins[%zu].name' must not be empty", i);
            rv = CAIRN_ECONFIG;
        }
    }
    size_t dup, orig = 0;
    if (rv == CAIRN_OK &&
        (rv = cfg_first_dup(names, n, &dup, &orig)) == CAIRN_OK && dup < n) {
        const cairni_node *at = cairni_node_get(seq->items[dup], "name");
        cfg_errf(err, errlen, cfg->doc->file,
                 at != NULL ? at->line : pl[dup].line,
                 "duplicate plugin name '%.*s' (first at line %d)", 64,
                 pl[dup].name, pl[orig].line);
        rv = CAIRN_ECONFIG;
    }
    free(names);
    return rv;
}

/* Destinations: absent keys inherit the store section's values; names
 * unique.  Routes: valid filters, destinations that are plugins. */
static void
cfg_dest_inherit(const cairni_store_cfg *st, const cairni_node *n,
                 cairni_dest_entry *d)
{
    if (cairni_node_get(n, "max_bytes") == NULL) {
        d->max_bytes = st->max_bytes;
    }
    if (cairni_node_get(n, "max_messages") == NULL) {
        d->max_messages = st->max_messages;
    }
    if (cairni_node_get(n, "ttl") == NULL) {
        d->ttl_ms = st->ttl_ms;
    }
    if (cairni_node_get(n, "on_full") == NULL) {
        d->on_full = st->on_full;
    }
    if (cairni_node_get(n, "window") == NULL) {
        d->window = st->window;
    }
}

static cairn_err
cfg_check_dests(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *store = cairni_node_get(cfg->doc->root, "store");
    const cairni_node *seq   = cairni_node_get(store, "destinations");
    cairni_dest_entry *d     = cfg->store.destinations.items;
    for (size_t i = 0; i < cfg->store.destinations.count; i++) {
        d[i].line = seq->items[i]->line;
        cfg_dest_inherit(&cfg->store, seq->items[i], &d[i]);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(d[i].name, d[j].name) == 0) {
                cfg_errf(err, errlen, cfg->doc->file, d[i].line,
                         "duplicate destination '%.64s' (first at line %d)",
                         d[i].name, d[j].line);
                return CAIRN_ECONFIG;
            }
        }
    }
    return CAIRN_OK;
}

/* Call policies: absent keys inherit the calls section's; names
 * non-empty and unique; retries only for idempotent services. */
static void
cfg_call_inherit(const cairni_calls_cfg *c, const cairni_node *n,
                 cairni_call_cfg *e)
{
    if (cairni_node_get(n, "failures") == NULL) {
        e->failures = c->failures;
    }
    if (cairni_node_get(n, "open") == NULL) {
        e->open_ms = c->open_ms;
    }
    if (cairni_node_get(n, "probes") == NULL) {
        e->probes = c->probes;
    }
    if (cairni_node_get(n, "backoff") == NULL) {
        e->backoff_ms = c->backoff_ms;
    }
}

static cairn_err
cfg_check_calls(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *calls = cairni_node_get(cfg->doc->root, "calls");
    const cairni_node *seq   = cairni_node_get(calls, "services");
    cairni_call_cfg   *c     = cfg->calls.services.items;
    for (size_t i = 0; i < cfg->calls.services.count; i++) {
        c[i].line = seq->items[i]->line;
        cfg_call_inherit(&cfg->calls, seq->items[i], &c[i]);
        if (c[i].name[0] == '\0') {
            cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                     "'calls.services[%zu].name' must not be empty", i);
            return CAIRN_ECONFIG;
        }
        if (c[i].attempts > 1 && !c[i].idempotent) {
            cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                     "'calls.services[%zu].attempts' is %lld but the service "
                     "is not idempotent: a retried call could act twice (set "
                     "idempotent: true, or attempts: 1)",
                     i, (long long)c[i].attempts);
            return CAIRN_ECONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c[i].name, c[j].name) == 0) {
                cfg_errf(err, errlen, cfg->doc->file, c[i].line,
                         "duplicate service '%.64s' (first at line %d)",
                         c[i].name, c[j].line);
                return CAIRN_ECONFIG;
            }
        }
    }
    return CAIRN_OK;
}

static bool
cfg_is_plugin(const cairni_config *cfg, const char *name)
{
    const cairni_plugin_cfg *pl = cfg->plugins.items;
    for (size_t i = 0; i < cfg->plugins.count; i++) {
        if (strcmp(pl[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

static cairn_err
cfg_check_routes(cairni_config *cfg, char *err, size_t errlen)
{
    const cairni_node *seq = cairni_node_get(cfg->doc->root, "routes");
    cairni_route_cfg  *r   = cfg->routes.items;
    for (size_t i = 0; i < cfg->routes.count; i++) {
        r[i].line = seq->items[i]->line;
        if (cairn_filter_valid(r[i].filter) != CAIRN_OK) {
            cfg_errf(err, errlen, cfg->doc->file, r[i].line,
                     "'routes[%zu].filter' is not a valid topic filter: "
                     "'%.64s'", i, r[i].filter);
            return CAIRN_ECONFIG;
        }
        if (!cfg_is_plugin(cfg, r[i].to)) {
            cfg_errf(err, errlen, cfg->doc->file, r[i].line,
                     "'routes[%zu].to': no plugin named '%.64s'", i, r[i].to);
            return CAIRN_ECONFIG;
        }
    }
    return CAIRN_OK;
}

static const cfg_check_fn cfg_checks[] = {
    cfg_check_retry,
    cfg_check_plugins,
    cfg_check_dests,
    cfg_check_routes,
    cfg_check_calls,
};

/* Takes doc; on success *cfgp owns it. */
static cairn_err
cfg_config_build(cairni_doc *doc, cairni_config **cfgp, char *err,
                 size_t errlen)
{
    cairn_err      rv = CAIRN_ENOMEM;
    cairni_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        cfg_errf(err, errlen, doc->file, 1, "out of memory");
        cairni_doc_free(doc);
        return rv;
    }
    cfg->doc = doc;
    rv = cairni_cfg_fill(doc, doc->root, cairni_config_fields, cfg, &cfg->arena,
                         err, errlen);
    for (size_t i = 0; rv == CAIRN_OK && i < CAIRNI_ARRAY_LEN(cfg_checks);
         i++) {
        rv = cfg_checks[i](cfg, err, errlen);
    }
    if (rv != CAIRN_OK) {
        goto fail;
    }
    *cfgp = cfg;
    return CAIRN_OK;
fail:
    cairni_config_free(cfg);
    return rv;
}

cairn_err
cairni_config_load(const char *path, cairni_config **cfgp, char *err,
                   size_t errlen)
{
    cairni_doc *doc = NULL;
    *cfgp = NULL;
    cairn_err rv = cairni_doc_parse_file(path, &doc, err, errlen);
    return rv != CAIRN_OK ? rv : cfg_config_build(doc, cfgp, err, errlen);
}

cairn_err
cairni_config_load_string(const char *name, const char *text,
                          cairni_config **cfgp, char *err, size_t errlen)
{
    cairni_doc *doc = NULL;
    *cfgp = NULL;
    cairn_err rv = cairni_doc_parse_string(
        name, text, text != NULL ? strlen(text) : 0, &doc, err, errlen);
    return rv != CAIRN_OK ? rv : cfg_config_build(doc, cfgp, err, errlen);
}

void
cairni_config_free(cairni_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    cairni_arena_fini(&cfg->arena);
    cairni_doc_free(cfg->doc);
    free(cfg);
}
