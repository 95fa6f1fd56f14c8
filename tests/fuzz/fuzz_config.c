/*
 * fuzz_config.c - libFuzzer target for the config file path: the YAML
 * parser (cairni_doc_parse_string), the daemon's loader
 * (cairni_config_load_string) and the typed tables, which also fill a
 * table holding every field type from the document root and from each
 * plugin's config map.  Besides "no crash, no leak" it checks that every
 * refusal comes with a "fuzz.yaml:..." message free of control bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairni.h"

#define FZ_NAME "fuzz.yaml"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fz_item {
    const char *host;
    int64_t     port;
} fz_item;

typedef struct fz_cfg {
    const char        *s;
    int64_t            i;
    double             d;
    bool               b;
    uint64_t           dur;
    uint64_t           size;
    int                e;
    cairn_cfg_list     tags;
    cairn_cfg_list     items;
    fz_item            main;
    cairn_cfg_list     deftags;
    const cairni_node *raw;
} fz_cfg;

static const cairn_cfg_field fz_item_fields[] = {
    {.name = "host",
     .type = CAIRN_CFG_STRING,
     .offset = offsetof(fz_item, host)},
    {.name = "port",
     .type = CAIRN_CFG_INT,
     .def = "80",
     .offset = offsetof(fz_item, port),
     .min = 1,
     .max = 65535},
    {.type = CAIRN_CFG_END},
};

static const cairn_cfg_field fz_fields[] = {
    {.name = "s",
     .type = CAIRN_CFG_STRING,
     .def = "x",
     .offset = offsetof(fz_cfg, s)},
    {.name = "i",
     .type = CAIRN_CFG_INT,
     .def = "0",
     .offset = offsetof(fz_cfg, i),
     .min = -9223372036854775808.0,
     .max = 1000},
    {.name = "d",
     .type = CAIRN_CFG_DOUBLE,
     .def = "1.5",
     .offset = offsetof(fz_cfg, d),
     .min = -1,
     .max = 1e6},
    {.name = "b",
     .type = CAIRN_CFG_BOOL,
     .def = "off",
     .offset = offsetof(fz_cfg, b)},
    {.name = "dur",
     .type = CAIRN_CFG_DURATION,
     .def = "1s",
     .offset = offsetof(fz_cfg, dur),
     .min = 1,
     .max = 86400000},
    {.name = "size",
     .type = CAIRN_CFG_SIZE,
     .def = "1MiB",
     .offset = offsetof(fz_cfg, size),
     .min = 1024,
     .max = 18446744073709551616.0},
    {.name = "e",
     .type = CAIRN_CFG_ENUM,
     .def = "two",
     .offset = offsetof(fz_cfg, e),
     .choices = "one|two|three"},
    {.name = "tags",
     .type = CAIRN_CFG_STRLIST,
     .offset = offsetof(fz_cfg, tags)},
    {.name = "items",
     .type = CAIRN_CFG_LIST,
     .offset = offsetof(fz_cfg, items),
     .sub = fz_item_fields,
     .elem_size = sizeof(fz_item)},
    {.name = "main",
     .type = CAIRN_CFG_MAP,
     .offset = offsetof(fz_cfg, main),
     .sub = fz_item_fields},
    {.name = "deftags",
     .type = CAIRN_CFG_STRLIST,
     .def = "[a, b]",
     .offset = offsetof(fz_cfg, deftags)},
    {.name = "raw", .type = CAIRNI_CFG_NODE, .offset = offsetof(fz_cfg, raw)},
    {.type = CAIRN_CFG_END},
};

/* A refusal must say where, and must not carry control bytes. */
static void
fz_check_err(const char *err)
{
    if (strncmp(err, FZ_NAME ":", sizeof(FZ_NAME)) != 0) {
        __builtin_trap();
    }
    for (const char *p = err; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            __builtin_trap();
        }
    }
}

static void
fz_fill(const cairni_doc *doc, const cairni_node *node)
{
    cairni_arena arena = {0};
    fz_cfg       cfg;
    char         err[256];
    if (cairni_cfg_fill(doc, node, fz_fields, &cfg, &arena, err, sizeof(err)) !=
        CAIRN_OK) {
        fz_check_err(err);
    }
    cairni_arena_fini(&arena);
}

static void
fz_load(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    cairni_config *cfg = NULL;
    char           err[256];
    if (cairni_config_load_string(FZ_NAME, text, &cfg, err, sizeof(err)) !=
        CAIRN_OK) {
        fz_check_err(err);
    } else {
        const cairni_plugin_cfg *pl = cfg->plugins.items;
        for (size_t i = 0; i < cfg->plugins.count; i++) {
            fz_fill(cfg->doc, pl[i].config);
        }
        cairni_config_free(cfg);
    }
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairni_doc *doc = NULL;
    char        err[256];
    if (cairni_doc_parse_string(FZ_NAME, (const char *)data, size, &doc, err,
                                sizeof(err)) != CAIRN_OK) {
        fz_check_err(err);
    } else {
        fz_fill(doc, doc->root);
        cairni_doc_free(doc);
    }
    fz_load(data, size);
    return 0;
}
