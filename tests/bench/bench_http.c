/*
 * bench_http.c - requests per second through the http-gateway against a
 * raw NNG HTTP server, measured in the same run with wrk on loopback.
 *
 *   raw      an NNG HTTP server (this process) whose handler answers
 *            every GET at once with a fixed JSON body of the size the
 *            gateway's reply has: the floor of NNG's HTTP server.
 *   gateway  a real cairnd (started here, own data dir and admin socket)
 *            with the http-gateway routing GET /bench/{id} to the echo
 *            service of the test plugin: HTTP parse, route, request map
 *            to CBOR, bus call (req/rep), reply CBOR to JSON.
 *
 * Each runs wrk for a bounded time (--quick: 3 s, else 10 s) with the
 * same threads and connections; the figure is wrk's Requests/sec, with
 * its latency percentiles.  Prints both, the ratio (target >= 0.7) and
 * one JSON line.  Exits 77 (skipped) when wrk is not installed.
 *
 * Usage: bench_http [--quick] [-c CONNECTIONS] [-d SECONDS]
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#define BODY                                                               \
    ("{\"method\":\"GET\",\"path\":\"/bench/1\",\"params\":{\"id\":\"1\"}," \
     "\"query\":{},\"body\":null}\n")

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

static void
raw_handle(nng_aio *aio)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0 ||
        nng_http_res_set_header(res, "Content-Type", "application/json") ||
        nng_http_res_copy_data(res, BODY, strlen(BODY)) != 0) {
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

int
main(int argc, char **argv)
{
    int    conns = 16, secs = 10;
    char   url[128];
    result raw, gw;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            secs = 3;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            conns = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc) {
            secs = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_http [--quick] [-c CONNS] "
                            "[-d SECONDS]\n");
            return 2;
        }
    }
    if (system("command -v wrk >/dev/null 2>&1") != 0) {
        printf("bench_http: skipped, wrk is not installed\n");
        return 77;
    }
    int port;
    nng_http_server *srv = raw_start(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bench/1", port);
    run_wrk(url, conns, secs, &raw);
    nng_http_server_stop(srv);
    nng_http_server_release(srv);

    port = gateway_start();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/bench/1", port);
    run_wrk(url, conns, secs, &gw);
    gateway_stop();

    double ratio = gw.rps / raw.rps;
    printf("raw NNG HTTP handler:  %10.0f req/s  p50 %s  p90 %s  p99 %s\n",
           raw.rps, raw.p50, raw.p90, raw.p99);
    printf("gateway -> bus echo:   %10.0f req/s  p50 %s  p90 %s  p99 %s\n",
           gw.rps, gw.p50, gw.p90, gw.p99);
    printf("ratio: %.2f (target >= 0.7)\n", ratio);
    printf("{\"bench\":\"http\",\"connections\":%d,\"seconds\":%d,"
           "\"raw_rps\":%.0f,\"gateway_rps\":%.0f,\"ratio\":%.3f,"
           "\"raw_p50\":\"%s\",\"raw_p99\":\"%s\",\"gateway_p50\":\"%s\","
           "\"gateway_p90\":\"%s\",\"gateway_p99\":\"%s\"}\n",
           conns, secs, raw.rps, gw.rps, ratio, raw.p50, raw.p99, gw.p50,
           gw.p90, gw.p99);
    return 0;
}
