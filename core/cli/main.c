/*
 * cairn - the command-line client of a running cairnd.
 *
 * It speaks to the admin endpoint (NNG req0 over ipc://; wire format in
 * core/daemon/cairnd.h).  The address comes from -s URL, else from the
 * config file given with -c (runtime.admin, or ipc://DATA_DIR/admin.sock),
 * else $CAIRN_ADMIN, else ipc:///var/lib/cairn/admin.sock.
 *
 * `sub` listens on an ipc:// address of its own (under $TMPDIR) and asks
 * the daemon to push matching messages there; when this process exits
 * the daemon notices the closed pipe and drops the subscription.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/reqrep0/req.h>

#include "cairni.h"

/* Exit status, documented in --help. */
enum {
    CLI_OK      = 0,
    CLI_FAIL    = 1, /* the daemon refused or the command failed */
    CLI_USAGE   = 2,
    CLI_NOCONN  = 3, /* no daemon at the admin address */
    CLI_TIMEOUT = 4, /* sub: --timeout before --count messages; call: deadline */
};

#define CLI_DEFAULT_ADMIN "ipc:///var/lib/cairn/admin.sock"
#define CLI_REQ_TIMEOUT_MS 10000

static volatile sig_atomic_t cli_interrupted;

static void
cli_on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

static void
cli_usage(FILE *f)
{
    fputs("usage: cairn [-s URL | -c FILE] COMMAND [ARGS]\n"
          "\n"
          "Talks to a running cairnd over its admin socket.\n"
          "\n"
          "commands:\n"
          "  status                 runtime name, version, uptime, plugins\n"
          "  plugins                plugin instances, state and counters\n"
          "  services               request/reply services on the bus\n"
          "  metrics                all metrics, Prometheus text format\n"
          "  pub [-k KEY] TOPIC PAYLOAD   publish one message\n"
          "  pub -l [-k KEY] TOPIC  publish each line of standard input\n"
          "  sub [-n N] [-t SEC] [-v] FILTER   print matching messages\n"
          "  call [-t MS] SERVICE [PAYLOAD]    call a request/reply service\n"
          "  outbox                 per destination: depth, bytes, oldest, "
          "in flight, retries\n"
          "  dlq list|replay ID|replay --all|purge   dead letters\n"
          "\n"
          "options:\n"
          "  -s, --socket URL   admin address (default: from -c, else "
          "$CAIRN_ADMIN,\n"
          "                     else " CLI_DEFAULT_ADMIN ")\n"
          "  -c, --config FILE  read the admin address from cairnd's config\n"
          "  -h, --help         this text; COMMAND --help for a command\n"
          "\n"
          "Exit status: 0 success, 1 command failed, 2 bad usage, 3 no "
          "daemon at\nthe admin address, 4 timed out (sub -t, call -t).\n",
          f);
}

static int
cli_resolve(const char *sock, const char *cfgfile, char *url, size_t n)
{
    const char *env = getenv("CAIRN_ADMIN");
    if (sock != NULL) {
        snprintf(url, n, "%s", sock);
    } else if (cfgfile != NULL) {
        char           err[1024];
        cairni_config *cfg;
        if (cairni_config_load(cfgfile, &cfg, err, sizeof(err)) != CAIRN_OK) {
            fprintf(stderr, "cairn: %s\n", err);
            return CLI_USAGE;
        }
        if (cfg->runtime.admin && cfg->runtime.admin[0]) {
            snprintf(url, n, "%s", cfg->runtime.admin);
        } else {
            snprintf(url, n, "ipc://%s/admin.sock", cfg->runtime.data_dir);
        }
        cairni_config_free(cfg);
    } else {
        snprintf(url, n, "%s", env && env[0] ? env : CLI_DEFAULT_ADMIN);
    }
    return CLI_OK;
}

typedef struct cli_conn {
    nng_socket  sock;
    const char *url;
    uint32_t    last_status; /* cairn_err of the last reply */
} cli_conn;

static int
cli_connect(cli_conn *c, const char *url)
{
    int e;
    c->url = url;
    if ((e = nng_req0_open(&c->sock)) != 0) {
        fprintf(stderr, "cairn: %s\n", nng_strerror(e));
        return CLI_FAIL;
    }
    nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, CLI_REQ_TIMEOUT_MS);
    nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, CLI_REQ_TIMEOUT_MS);
    /* One request at a time, each handled once: no resend. */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    if ((e = nng_dial(c->sock, url, NULL, 0)) != 0) {
        fprintf(stderr, "cairn: no cairnd at %s: %s\n", url, nng_strerror(e));
        nng_close(c->sock);
        return CLI_NOCONN;
    }
    return CLI_OK;
}

static cairn_err
cli_arg(nng_msg *m, const char *s, size_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                    (uint8_t)(len >> 8), (uint8_t)len};
    if (nng_msg_append(m, h, 4) != 0 || nng_msg_append(m, s, len) != 0) {
        return CAIRN_ENOMEM;
    }
    return CAIRN_OK;
}

/*
 * Sends argv[0..argc) as one request and prints the reply's text (to
 * stdout on success, stderr on failure) unless quiet.
 */
static int
cli_request(cli_conn *c, int argc, const char *const *argv, const size_t *lens,
            bool quiet)
{
    nng_msg *m;
    int      e;
    if (nng_msg_alloc(&m, 0) != 0) {
        return CLI_FAIL;
    }
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        if (cli_arg(m, argv[i], len) != CAIRN_OK) {
            nng_msg_free(m);
            return CLI_FAIL;
        }
    }
    if ((e = nng_sendmsg(c->sock, m, 0)) != 0) {
        nng_msg_free(m);
        fprintf(stderr, "cairn: %s: %s\n", c->url, nng_strerror(e));
        return CLI_NOCONN;
    }
    if ((e = nng_recvmsg(c->sock, &m, 0)) != 0) {
        fprintf(stderr, "cairn: %s: %s\n", c->url, nng_strerror(e));
        return e == NNG_ETIMEDOUT ? CLI_NOCONN : CLI_FAIL;
    }
    const uint8_t *b   = nng_msg_body(m);
    size_t         len = nng_msg_len(m);
    int            rc  = CLI_FAIL;
    if (len >= 4) {
        uint32_t st = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                      (uint32_t)b[2] << 8 | b[3];
        rc             = st == 0 ? CLI_OK : CLI_FAIL;
        c->last_status = st;
        if (!quiet || rc != CLI_OK) {
            FILE *f = rc == CLI_OK ? stdout : stderr;
            fprintf(f, "%s%.*s", rc == CLI_OK ? "" : "cairn: ", (int)(len - 4),
                    (const char *)b + 4);
            if (rc != CLI_OK && (len == 4 || b[len - 1] != '\n')) {
                fputc('\n', f);
            }
        }
    }
    nng_msg_free(m);
    return rc;
}

/* pub [-l] [-k KEY] TOPIC [PAYLOAD] */
static int
cli_pub(cli_conn *c, int argc, char **argv)
{
    const char *key   = NULL;
    bool        lines = false;
    int         o;
    static const struct option lo[] = {
        {"lines", no_argument, NULL, 'l'},
        {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0; /* GNU getopt: start over for the command's own options */
    while ((o = getopt_long(argc, argv, "+lk:h", lo, NULL)) != -1) {
        switch (o) {
        case 'l':
            lines = true;
            break;
        case 'k':
            key = optarg;
            break;
        case 'h':
            puts("usage: cairn pub [-k KEY] TOPIC PAYLOAD\n"
                 "       cairn pub -l [-k KEY] TOPIC   (one message per "
                 "line of stdin)\n"
                 "Prints the id of each message published.");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    if (argc - optind != (lines ? 1 : 2)) {
        fprintf(stderr, "cairn pub: expected %s\n",
                lines ? "TOPIC" : "TOPIC PAYLOAD");
        return CLI_USAGE;
    }
    const char *av[4] = {"pub", argv[optind], NULL, key};
    int         n     = key ? 4 : 3;
    if (!lines) {
        av[2] = argv[optind + 1];
        return cli_request(c, n, av, NULL, false);
    }
    char   *line = NULL;
    size_t  cap  = 0;
    ssize_t len;
    int     rc = CLI_OK;
    while (rc == CLI_OK && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') {
            line[--len] = '\0';
        }
        size_t lens[4] = {3, strlen(av[1]), (size_t)len, key ? strlen(key) : 0};
        av[2]          = line;
        rc             = cli_request(c, n, av, lens, false);
    }
    free(line);
    return rc;
}

typedef struct cli_sub_opts {
    long count;   /* 0 = until interrupted */
    long timeout; /* seconds, 0 = none */
    bool verbose; /* print the topic before the payload */
} cli_sub_opts;

static int
cli_sub_loop(nng_socket pull, const cli_sub_opts *so)
{
    uint64_t deadline = so->timeout ? cairni_mono_ms() + so->timeout * 1000 : 0;
    long     got      = 0;
    while (!cli_interrupted && (so->count == 0 || got < so->count)) {
        nng_msg       *m;
        cairn_envelope env;
        int            e = nng_recvmsg(pull, &m, 0);
        if (e == NNG_ETIMEDOUT) {
            if (deadline && cairni_mono_ms() >= deadline) {
                return CLI_TIMEOUT;
            }
            continue;
        }
        if (e != 0) {
            fprintf(stderr, "cairn sub: %s\n", nng_strerror(e));
            return CLI_FAIL;
        }
        if (cairn_envelope_decode(nng_msg_body(m), nng_msg_len(m), &env) ==
            CAIRN_OK) {
            if (so->verbose) {
                printf("%.*s ", (int)env.topic.len, env.topic.ptr);
            }
            fwrite(env.payload.ptr, 1, env.payload.len, stdout);
            putchar('\n');
            fflush(stdout);
            got++;
        }
        nng_msg_free(m);
    }
    return CLI_OK;
}

static int
cli_sub_parse(int argc, char **argv, cli_sub_opts *so)
{
    int o;
    static const struct option lo[] = {
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 0;
    while ((o = getopt_long(argc, argv, "+n:t:vh", lo, NULL)) != -1) {
        switch (o) {
        case 'n':
            so->count = strtol(optarg, NULL, 10);
            break;
        case 't':
            so->timeout = strtol(optarg, NULL, 10);
            break;
        case 'v':
            so->verbose = true;
            break;
        case 'h':
            puts("usage: cairn sub [-n N] [-t SEC] [-v] FILTER\n"
                 "Prints the payload of each message matching FILTER (MQTT "
                 "syntax: + and #),\none per line, until interrupted.\n"
                 "  -n, --count N  exit after N messages\n"
                 "  -t, --timeout SEC  exit with status 4 after SEC seconds\n"
                 "  -v, --verbose  print the topic before each payload");
            return -1;
        default:
            return CLI_USAGE;
        }
    }
    if (argc - optind != 1 || so->count < 0 || so->timeout < 0) {
        fprintf(stderr, "cairn sub: expected one FILTER\n");
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int
cli_sub(cli_conn *c, int argc, char **argv)
{
    cli_sub_opts so = {0};
    nng_socket   pull;
    char         url[512];
    const char  *tmp = getenv("TMPDIR");
    int          rc  = cli_sub_parse(argc, argv, &so);
    if (rc != CLI_OK) {
        return rc < 0 ? CLI_OK : rc;
    }
    snprintf(url, sizeof(url), "ipc://%s/cairn-sub-%ld-%llx.sock",
             tmp && tmp[0] ? tmp : "/tmp", (long)getpid(),
             (unsigned long long)cairni_mono_us());
    if (nng_pull0_open(&pull) != 0 || nng_listen(pull, url, NULL, 0) != 0) {
        fprintf(stderr, "cairn sub: cannot listen on %s\n", url);
        return CLI_FAIL;
    }
    nng_socket_set_ms(pull, NNG_OPT_RECVTIMEO, 200);
    const char *av[3] = {"sub", argv[optind], url};
    rc                = cli_request(c, 3, av, NULL, true);
    if (rc == CLI_OK) {
        rc = cli_sub_loop(pull, &so);
    }
    nng_close(pull);
    return rc;
}

/* call [-t MS] SERVICE [PAYLOAD] */
static int
cli_call(cli_conn *c, int argc, char **argv)
{
    static const struct option lo[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ms = "5000";
    int         o;
    optind = 0;
    while ((o = getopt_long(argc, argv, "+t:h", lo, NULL)) != -1) {
        switch (o) {
        case 't':
            ms = optarg;
            break;
        case 'h':
            puts("usage: cairn call [-t MS] SERVICE [PAYLOAD]\n"
                 "Calls a request/reply service and prints its reply.\n"
                 "  -t, --timeout MS  deadline (default 5000, at most 60000);"
                 "\n                    exit status 4 when it expires");
            return CLI_OK;
        default:
            return CLI_USAGE;
        }
    }
    int left = argc - optind;
    if (left < 1 || left > 2) {
        fprintf(stderr, "cairn call: expected SERVICE [PAYLOAD]\n");
        return CLI_USAGE;
    }
    const char *av[4] = {"call", argv[optind], left == 2 ? argv[optind + 1] : "",
                         ms};
    int rc = cli_request(c, 4, av, NULL, false);
    if (rc == CLI_OK) {
        putchar('\n');
    }
    return rc == CLI_FAIL && c->last_status == CAIRN_ETIMEDOUT ? CLI_TIMEOUT
                                                               : rc;
}

/* dlq list [LIMIT] | dlq replay ID|--all | dlq purge */
static int
cli_dlq(cli_conn *c, int argc, char **argv)
{
    const char *op = argc > 1 ? argv[1] : "";
    bool        ok = (strcmp(op, "list") == 0 && argc <= 3) ||
              (strcmp(op, "replay") == 0 && argc == 3) ||
              (strcmp(op, "purge") == 0 && argc == 2);
    if (argc > 1 && strcmp(argv[argc - 1], "--help") == 0) {
        puts("usage: cairn dlq list [LIMIT]     dead letters: id, destination, "
             "attempts, age, error\n"
             "       cairn dlq replay ID|--all  back into the outbox, attempts "
             "reset\n"
             "       cairn dlq purge            delete every dead letter");
        return CLI_OK;
    }
    if (!ok) {
        fprintf(stderr, "cairn dlq: expected list [LIMIT], replay ID|--all or "
                        "purge\n");
        return CLI_USAGE;
    }
    return cli_request(c, argc, (const char *const *)argv, NULL, false);
}

static int
cli_simple(cli_conn *c, int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 ||
                     strcmp(argv[1], "-h") == 0)) {
        printf("usage: cairn %s\n", argv[0]);
        return CLI_OK;
    }
    if (argc != 1) {
        fprintf(stderr, "cairn %s: takes no arguments\n", argv[0]);
        return CLI_USAGE;
    }
    const char *av[1] = {argv[0]};
    return cli_request(c, 1, av, NULL, false);
}

static int
cli_command(const char *url, int argc, char **argv)
{
    static const char *const simple[] = {"status", "plugins", "services",
                                         "metrics", "outbox"};
    int (*fn)(cli_conn *, int, char **) = NULL;
    for (size_t i = 0; i < CAIRNI_ARRAY_LEN(simple); i++) {
        fn = strcmp(argv[0], simple[i]) == 0 ? cli_simple : fn;
    }
    fn = strcmp(argv[0], "pub") == 0 ? cli_pub : fn;
    fn = strcmp(argv[0], "sub") == 0 ? cli_sub : fn;
    fn = strcmp(argv[0], "call") == 0 ? cli_call : fn;
    fn = strcmp(argv[0], "dlq") == 0 ? cli_dlq : fn;
    if (fn == NULL) {
        fprintf(stderr, "cairn: unknown command '%s'\n", argv[0]);
        cli_usage(stderr);
        return CLI_USAGE;
    }
    bool help = false;
    for (int i = 1; i < argc; i++) {
        help |= strcmp(argv[i], "--help") == 0;
    }
    if (help) { /* help needs no daemon */
        char  help_opt[] = "--help";
        char *hv[3]      = {argv[0], help_opt, NULL};
        return fn(NULL, 2, hv);
    }
    cli_conn c;
    memset(&c, 0, sizeof(c));
    int      rc = cli_connect(&c, url);
    if (rc == CLI_OK) {
        rc = fn(&c, argc, argv);
        nng_close(c.sock);
    }
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL, *cfg = NULL;
    char        url[4200];
    int         o;
    while ((o = getopt_long(argc, argv, "+s:c:h", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            sock = optarg;
            break;
        case 'c':
            cfg = optarg;
            break;
        case 'h':
            cli_usage(stdout);
            return CLI_OK;
        default:
            cli_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        cli_usage(stderr);
        return CLI_USAGE;
    }
    struct sigaction sa = {.sa_handler = cli_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = cli_resolve(sock, cfg, url, sizeof(url));
    if (rc != CLI_OK) {
        return rc;
    }
    return cli_command(url, argc - optind, argv + optind);
}
