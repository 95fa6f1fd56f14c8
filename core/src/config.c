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
 * The daemon's own tables and checks are in config_daemon.c.
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


/* ---- messages ------------------------------------------------------------ */

/* "file:line: message", control bytes from the input replaced by '?'. */
void
cairni_cfg_errf(char *err, size_t errlen, const char *file, int line, const char *fmt,
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
cairn_err
cairni_cfg_first_dup(const char *const *strs, size_t n, size_t *dupp, size_t *origp)
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
    cairni_cfg_errf(p->err, p->errlen, p->file, line, "%s", msg);
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
    cairn_err rv = cairni_cfg_first_dup(map->keys, map->count, &dup, &orig);
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
        cairni_cfg_errf(err, errlen, path, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    buf = malloc(CFG_MAX_BYTES + 1);
    if (buf == NULL) {
        rv = CAIRN_ENOMEM;
        cairni_cfg_errf(err, errlen, path, 0, "out of memory");
        goto fail;
    }
    len = fread(buf, 1, CFG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rv = cairn_errno(errno != 0 ? errno : EIO);
        cairni_cfg_errf(err, errlen, path, 0, "cannot read: %s", strerror(errno));
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
