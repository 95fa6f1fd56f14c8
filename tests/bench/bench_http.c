/*
 * bench_http.c - requests per second through the http-gateway against a
 * raw NNG HTTP server, measured in the same run with wrk on loopback.
 *
 *   raw      an NNG HTTP server (this process) whose handler answers
 *            every GET at once, on NNG's thread: it takes the method and
 *            path apart, and writes the same JSON document, with the
 *            same headers, as the gateway's reply: the floor of NNG's
 *            HTTP server doing comparable work.
 *   gateway  a real cairnd (started here, own data dir and admin socket)
 *            with the http-gateway routing GET /bench/{id} to the echo
 *            service of the test plugin: HTTP parse, route, request map
 *            to CBOR, bus call (req/rep), reply CBOR to JSON.
 *
 * Both servers are up for the whole run, and both first answer one
 * check request: their documents must be equal.  Each side is warmed up
 * with a 1 s wrk run that is not counted.  Then, in each of ROUNDS
 * rounds (--quick: 1, else 3), wrk runs for a bounded time (--quick:
 * 3 s, else 10 s) against the raw server and right after against the
 * gateway, with the same threads and connections: a machine whose load
 * changes over the run then weighs on both sides of a round alike.  The
 * figure is wrk's Requests/sec, with its latency percentiles; the round
 * with the median ratio is reported (target >= 0.7), every round's ratio
 * goes into the one JSON line.  Exits 77 (skipped) when wrk is not
 * installed.
 *
 * Usage: bench_http [--quick] [-c CONNECTIONS] [-d SECONDS] [-r ROUNDS]
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

typedef struct result {
    double rps;
    char   p50[32], p90[32], p99[32];
} result;

static char tmpdir[] = "/tmp/cairn-bench-http.XXXXXX";
static pid_t daemon_pid;

static void __attribute__((noreturn))
die(const char *what)
{
    fprintf(stderr, "bench_http: %s\n", what);
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
    }
    exit(1);
}

/* What the gateway's route /bench/{id} does to a request, without the
 * bus: the path without its query, the id parameter, and the reply
 * document built from them. */
static void
raw_handle(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    const char   *uri = nng_http_req_get_uri(req);
    size_t        plen = strcspn(uri, "?");
    const char   *id = memchr(uri + 1, '/', plen > 0 ? plen - 1 : 0);
    char          body[512];
    int           n;
    nng_http_res *res;
    if (id == NULL || plen >= 200) {
        nng_aio_finish(aio, NNG_EINVAL);
        return;
    }
    id++;
    n = snprintf(body, sizeof(body),
                 "{\"method\":\"%s\",\"path\":\"%.*s\",\"params\":"
                 "{\"id\":\"%.*s\"},\"query\":{},\"body\":null}\n",
                 nng_http_req_get_method(req), (int)plen, uri,
                 (int)(uri + plen - id), id);
    if (nng_http_res_alloc(&res) != 0 ||
        nng_http_res_set_header(res, "Content-Type", "application/json") ||
        nng_http_res_set_header(res, "Cache-Control", "no-store") ||
        nng_http_res_copy_data(res, body, (size_t)n) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static nng_http_server *
raw_start(int *port)
{
    nng_url          *url;
    nng_http_server  *srv = NULL;
    nng_http_handler *h;
    nng_sockaddr      sa;
    if (nng_url_parse(&url, "http://127.0.0.1:0") != 0 ||
        nng_http_server_hold(&srv, url) != 0 ||
        nng_http_handler_alloc(&h, "/bench", raw_handle) != 0 ||
        nng_http_handler_set_tree(h) != 0 ||
        nng_http_server_add_handler(srv, h) != 0 ||
        nng_http_server_start(srv) != 0 ||
        nng_http_server_get_addr(srv, &sa) != 0) {
        die("raw NNG HTTP server failed");
    }
    nng_url_free(url);
    *port = ntohs(sa.s_in.sa_port);
    return srv;
}

/* A run of wrk that is not counted. */
static void
warm_up(const char *url, int conns)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%d -d1s '%s' >/dev/null 2>&1",
             conns, url);
    if (system(cmd) != 0) {
        die("the warm-up run of wrk failed");
    }
}

/* Runs wrk against url; fills r from its output. */
static void
run_wrk(const char *url, int conns, int secs, result *r)
{
    char  cmd[512], line[512];
    FILE *p;
    snprintf(cmd, sizeof(cmd),
             "wrk -t1 -c%d -d%ds --timeout 5s --latency '%s' 2>&1", conns,
             secs, url);
    if ((p = popen(cmd, "r")) == NULL) {
        die("cannot run wrk");
    }
    memset(r, 0, sizeof(*r));
    while (fgets(line, sizeof(line), p) != NULL) {
        double v;
        char   unit[32];
        if (sscanf(line, "Requests/sec: %lf", &v) == 1) {
            r->rps = v;
        } else if (sscanf(line, " 50%% %31s", unit) == 1) {
            snprintf(r->p50, sizeof(r->p50), "%s", unit);
        } else if (sscanf(line, " 90%% %31s", unit) == 1) {
            snprintf(r->p90, sizeof(r->p90), "%s", unit);
        } else if (sscanf(line, " 99%% %31s", unit) == 1) {
            snprintf(r->p99, sizeof(r->p99), "%s", unit);
        } else if (strstr(line, "Non-2xx") != NULL) {
            fprintf(stderr, "bench_http: %s", line);
            die("errors during the run");
        }
    }
    if (pclose(p) != 0 || r->rps <= 0) {
        die("wrk failed");
    }
}

/* GETs url once into body (NUL-terminated); dies on any failure. */
static void
fetch(const char *url, char *body, size_t cap)
{
    nng_url         *u = NULL;
    nng_http_client *cli = NULL;
    nng_http_req    *req = NULL;
    nng_http_res    *res = NULL;
    nng_aio         *aio = NULL;
    void            *data;
    size_t           len;
    if (nng_url_parse(&u, url) != 0 || nng_http_client_alloc(&cli, u) != 0 ||
        nng_http_req_alloc(&req, u) != 0 || nng_http_res_alloc(&res) != 0 ||
        nng_aio_alloc(&aio, NULL, NULL) != 0) {
        die("cannot set up an HTTP client");
    }
    nng_aio_set_timeout(aio, 5000);
    nng_http_client_transact(cli, req, res, aio);
    nng_aio_wait(aio);
    if (nng_aio_result(aio) != 0 || nng_http_res_get_status(res) != 200) {
        die("a check request failed");
    }
    nng_http_res_get_data(res, &data, &len);
    if (len >= cap) {
        die("a check reply is too long");
    }
    memcpy(body, data, len);
    body[len] = '\0';
    nng_aio_free(aio);
    nng_http_res_free(res);
    nng_http_req_free(req);
    nng_http_client_free(cli);
    nng_url_free(u);
}

/* cairnd with the gateway on port 0; returns its port. */
static int
gateway_start(void)
{
    char  conf[8192], path[4200], cmd[8400], line[512];
    FILE *f;
    int   port = 0;
    if (mkdtemp(tmpdir) == NULL) {
        die("mkdtemp");
    }
    snprintf(path, sizeof(path), "%s/c.yaml", tmpdir);
    snprintf(conf, sizeof(conf),
             "runtime:\n  name: bench\n  data_dir: %s/data\n"
             "  admin: ipc://%s/admin.sock\n  log_level: warn\n"
             "plugins:\n  - name: echo\n    path: %s\n"
             "  - name: gw\n    path: http-gateway.so\n    config:\n"
             "      listen: \"http://127.0.0.1:0\"\n"
             "      routes:\n"
             "        - {method: GET, path: \"/bench/{id}\", service: echo}\n",
             tmpdir, tmpdir, BENCH_ECHO_PLUGIN);
    if ((f = fopen(path, "w")) == NULL || fputs(conf, f) < 0 || fclose(f)) {
        die("cannot write the config");
    }
    if ((daemon_pid = fork()) == 0) {
        /* Dies with the benchmark, even one killed by a timeout. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(BENCH_CAIRND, "cairnd", "-c", path, "-P", BENCH_PLUGIN_DIR,
              (char *)NULL);
        _exit(127);
    }
    snprintf(cmd, sizeof(cmd), "%s -s ipc://%s/admin.sock status 2>/dev/null",
             BENCH_CAIRN, tmpdir);
    for (int i = 0; i < 400 && port == 0; i++) { /* 20 s at most */
        usleep(50000);
        if ((f = popen(cmd, "r")) == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), f) != NULL) {
            char *at = strstr(line, "listening on http://127.0.0.1:");
            if (at != NULL) {
                port = atoi(at + strlen("listening on http://127.0.0.1:"));
            }
        }
        pclose(f);
    }
    if (port == 0) {
        die("the gateway did not start");
    }
    return port;
}

static void
gateway_stop(void)
{
    int  st;
    char cmd[200];
    kill(daemon_pid, SIGTERM);
    waitpid(daemon_pid, &st, 0);
    daemon_pid = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_http: could not remove %s\n", tmpdir);
    }
}

#define ROUNDS_MAX 9

int
main(int argc, char **argv)
{
    int    conns = 16, secs = 10, rounds = 3;
    char   raw_url[128], gw_url[128];
    char   raw_body[512], gw_body[512];
    result raw[ROUNDS_MAX], gw[ROUNDS_MAX];
    double ratio[ROUNDS_MAX];
    int    order[ROUNDS_MAX];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            secs = 3, rounds = 1;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conns = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            secs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else {
            rounds = 0;
        }
        if (conns < 1 || secs < 1 || rounds < 1 || rounds > ROUNDS_MAX) {
            fprintf(stderr, "usage: bench_http [--quick] [-c CONNS] "
                            "[-d SECONDS] [-r ROUNDS (1..%d)]\n",
                    ROUNDS_MAX);
            return 2;
        }
    }
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        printf("bench_http: skipped, wrk is not installed\n");
        return 77;
    }
    int              port;
    nng_http_server *srv = raw_start(&port);
    snprintf(raw_url, sizeof(raw_url), "http://127.0.0.1:%d/bench/1", port);
    port = gateway_start();
    snprintf(gw_url, sizeof(gw_url), "http://127.0.0.1:%d/bench/1", port);

    /* Both sides must answer with the same document. */
    fetch(raw_url, raw_body, sizeof(raw_body));
    fetch(gw_url, gw_body, sizeof(gw_body));
    if (strcmp(raw_body, gw_body) != 0) {
        fprintf(stderr, "bench_http: raw %sgateway %s", raw_body, gw_body);
        die("the two sides do not answer alike");
    }
    warm_up(raw_url, conns);
    warm_up(gw_url, conns);
    for (int i = 0; i < rounds; i++) {
        run_wrk(raw_url, conns, secs, &raw[i]);
        run_wrk(gw_url, conns, secs, &gw[i]);
        ratio[i] = gw[i].rps / raw[i].rps;
        order[i] = i;
    }
    gateway_stop();
    nng_http_server_stop(srv);
    nng_http_server_release(srv);

    /* The round with the median ratio (insertion sort of a few). */
    for (int i = 1; i < rounds; i++) {
        for (int k = i; k > 0 && ratio[order[k]] < ratio[order[k - 1]]; k--) {
            int t = order[k];
            order[k] = order[k - 1], order[k - 1] = t;
        }
    }
    int m = order[rounds / 2];
    printf("raw NNG HTTP handler:  %10.0f req/s  p50 %s  p90 %s  p99 %s\n",
           raw[m].rps, raw[m].p50, raw[m].p90, raw[m].p99);
    printf("gateway -> bus echo:   %10.0f req/s  p50 %s  p90 %s  p99 %s\n",
           gw[m].rps, gw[m].p50, gw[m].p90, gw[m].p99);
    printf("ratio: %.2f (target >= 0.7), median of %d round(s):", ratio[m],
           rounds);
    for (int i = 0; i < rounds; i++) {
        printf(" %.2f", ratio[i]);
    }
    printf("\n{\"bench\":\"http\",\"connections\":%d,\"seconds\":%d,"
           "\"rounds\":%d,\"raw_rps\":%.0f,\"gateway_rps\":%.0f,"
           "\"ratio\":%.3f,\"raw_p50\":\"%s\",\"raw_p99\":\"%s\","
           "\"gateway_p50\":\"%s\",\"gateway_p90\":\"%s\","
           "\"gateway_p99\":\"%s\",\"ratios\":[",
           conns, secs, rounds, raw[m].rps, gw[m].rps, ratio[m], raw[m].p50,
           raw[m].p99, gw[m].p50, gw[m].p90, gw[m].p99);
    for (int i = 0; i < rounds; i++) {
        printf("%s%.3f", i > 0 ? "," : "", ratio[i]);
    }
    printf("]}\n");
    return 0;
}
