/*
 * hello - the smallest useful cairn plugin, built out of tree.
 *
 * It offers a request/reply service, "<instance>.greet", that answers
 * "<greeting>, <payload>", and publishes one message on `topic` when it
 * starts.  Read it top to bottom: a config table, init, start, stop, fini,
 * and the descriptor.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cairn/cairn.h>

/* 1. The config struct and its table: the host validates the plugin's
 *    `config:` map against it, fills the struct, and `cairnd --describe`
 *    prints it as documentation. */
typedef struct hello_cfg {
    const char *greeting;
    const char *topic;
} hello_cfg;

static const cairn_cfg_field hello_fields[] = {
    CAIRN_FIELD_STRING(hello_cfg, greeting, "hello", "word to greet with"),
    CAIRN_FIELD_STRING(hello_cfg, topic, "hello/started",
                       "topic announced on at start"),
    CAIRN_FIELD_END,
};

typedef struct hello {
    const cairn_host *host;
    cairn_plugin     *self;
    hello_cfg         cfg;
    char              service[128];
} hello;

/* 2. A service handler: runs on the service's own thread. */
static cairn_err
hello_greet(void *arg, const cairn_envelope *req, cairn_out *out)
{
    hello *h = arg;
    char   text[512];
    int    n = snprintf(text, sizeof(text), "%s, %.*s", h->cfg.greeting,
                        (int)req->payload.len, (const char *)req->payload.ptr);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return CAIRN_ETOOBIG;
    }
    return h->host->out_append(out, text, (size_t)n);
}

/* 3. Lifecycle. */
static cairn_err
hello_init(const cairn_host *host, cairn_plugin *self, const void *config,
           void **statep)
{
    hello *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return CAIRN_ENOMEM;
    }
    h->host = host;
    h->self = self;
    h->cfg  = *(const hello_cfg *)config;
    snprintf(h->service, sizeof(h->service), "%s.greet", host->name(self));
    *statep = h;
    return CAIRN_OK;
}

static cairn_err
hello_start(void *state)
{
    hello    *h  = state;
    cairn_err rv = h->host->serve(h->self, h->service, hello_greet, h, NULL);
    if (rv == CAIRN_OK) {
        rv = h->host->publish(h->self, h->cfg.topic, "up", 2, NULL);
    }
    return rv;
}

static void
hello_stop(void *state)
{
}

static void
hello_fini(void *state)
{
    free(state);
}

/* 4. The descriptor, exported as the one versioned entry. */
static const cairn_plugin_desc hello_desc = {
    .abi_version = CAIRN_ABI_VERSION,
    .size        = sizeof(cairn_plugin_desc),
    .name        = "hello",
    .version     = "1.0.0",
    .description = "Greets whoever calls NAME.greet",
    .config      = hello_fields,
    .config_size = sizeof(hello_cfg),
    .init        = hello_init,
    .start       = hello_start,
    .stop        = hello_stop,
    .fini        = hello_fini,
};

CAIRN_PLUGIN_DEFINE(hello_desc)
