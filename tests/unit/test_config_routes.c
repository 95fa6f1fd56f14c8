/*
 * test_config_routes.c - the durable parts of the daemon's config: store
 * destinations (inheriting the store section's limits) and routes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cairni.h"

static const char plugins[] = "plugins:\n"
                              "  - name: cloud\n"
                              "    path: x.so\n";

/* Loads text + plugins; returns the error text ("" on success). */
static const char *
load(const char *text, cairni_config **cfg)
{
    static char err[512];
    char        doc[2048];
    snprintf(doc, sizeof(doc), "%s%s", text, plugins);
    err[0] = '\0';
    if (cairni_config_load_string("t.yaml", doc, cfg, err, sizeof(err)) !=
        CAIRN_OK) {
        *cfg = NULL;
    }
    return err;
}

static void
test_defaults(void **state)
{
    cairni_config *cfg;
    assert_string_equal(load("", &cfg), "");
    assert_int_equal(cfg->store.window, 100);
    assert_int_equal(cfg->store.inbox_window_ms, 24ull * 3600 * 1000);
    assert_int_equal(cfg->routes.count, 0);
    assert_int_equal(cfg->store.destinations.count, 0);
    cairni_config_free(cfg);
}

static void
test_routes(void **state)
{
    cairni_config *cfg;
    assert_string_equal(load("routes:\n"
                             "  - filter: \"a/#\"\n"
                             "    to: cloud\n"
                             "  - filter: b/+\n"
                             "    to: cloud\n"
                             "    priority: high\n",
                             &cfg),
                        "");
    const cairni_route_cfg *r = cfg->routes.items;
    assert_int_equal(cfg->routes.count, 2);
    assert_string_equal(r[0].filter, "a/#");
    assert_string_equal(r[0].to, "cloud");
    assert_int_equal(r[0].priority, 0);
    assert_int_equal(r[0].line, 2);
    assert_int_equal(r[1].priority, 1);
    assert_int_equal(r[1].line, 4);
    cairni_config_free(cfg);
}

static void
test_route_errors(void **state)
{
    cairni_config *cfg;
    const char    *e = load("routes:\n  - filter: \"a/#/b\"\n    to: cloud\n",
                            &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "t.yaml:2:"));
    assert_non_null(strstr(e, "not a valid topic filter"));
    e = load("routes:\n  - filter: a\n    to: nowhere\n", &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "t.yaml:2:"));
    assert_non_null(strstr(e, "no plugin named 'nowhere'"));
    e = load("routes:\n  - filter: a\n", &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "missing required key 'routes[0].to'"));
    e = load("routes:\n  - filter: a\n    to: cloud\n    priority: urgent\n",
             &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "t.yaml:4:"));
}

static void
test_destinations_inherit(void **state)
{
    cairni_config *cfg;
    assert_string_equal(load("store:\n"
                             "  max_bytes: 1MiB\n"
                             "  on_full: drop_oldest\n"
                             "  ttl: 1h\n"
                             "  destinations:\n"
                             "    - name: cloud\n"
                             "      max_messages: 10\n"
                             "    - name: other\n"
                             "      on_full: reject\n"
                             "      window: 7\n",
                             &cfg),
                        "");
    const cairni_dest_entry *d = cfg->store.destinations.items;
    assert_int_equal(cfg->store.destinations.count, 2);
    assert_int_equal(d[0].max_bytes, 1u << 20); /* inherited */
    assert_int_equal(d[0].max_messages, 10);
    assert_int_equal(d[0].on_full, CAIRNI_FULL_DROP_OLDEST);
    assert_int_equal(d[0].ttl_ms, 3600000);
    assert_int_equal(d[0].window, 100);
    assert_int_equal(d[1].on_full, CAIRNI_FULL_REJECT);
    assert_int_equal(d[1].window, 7);
    assert_int_equal(d[1].max_messages, 1000000);
    cairni_config_free(cfg);
}

static void
test_destination_errors(void **state)
{
    cairni_config *cfg;
    const char    *e = load("store:\n"
                            "  destinations:\n"
                            "    - name: a\n"
                            "    - name: a\n",
                            &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "t.yaml:4: duplicate destination 'a'"));
    e = load("store:\n  destinations:\n    - name: a\n      colour: red\n",
             &cfg);
    assert_null(cfg);
    assert_non_null(strstr(e, "t.yaml:4:"));
    assert_non_null(strstr(e, "colour"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_route_errors),
        cmocka_unit_test(test_destinations_inherit),
        cmocka_unit_test(test_destination_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
