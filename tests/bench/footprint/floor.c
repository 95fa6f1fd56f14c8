/*
 * floor.c - the footprint floor: a process that loads and initializes
 * what cairnd is built on (libc with pthreads, nng, libcbor, libyaml,
 * SQLite) and
 * then idles, so that footprint.sh can set cairnd's idle memory next to
 * what these libraries cost by themselves, measured in the same run.
 *
 * Each library is put to the least use that initializes it the way
 * cairnd does: NNG starts its task, timer and resolver threads with the
 * first socket, and an ipc listener is what cairnd's admin socket is;
 * libcbor encodes and decodes one small map; libyaml parses one small
 * document; SQLite opens a database in WAL mode, as cairnd's store does,
 * writes one row and keeps it open.  Then it prints "ready" and waits for
 * SIGTERM or SIGINT.
 *
 *   footprint_floor DIR    listens on ipc://DIR/floor.sock
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <sqlite3.h>
#include <yaml.h>

static int
floor_nng(const char *dir, nng_socket *s)
{
    char url[512];
    int  rv;

    snprintf(url, sizeof(url), "ipc://%s/floor.sock", dir);
    if ((rv = nng_rep0_open(s)) != 0 || (rv = nng_listen(*s, url, NULL, 0)) != 0) {
        fprintf(stderr, "floor: nng: %s\n", nng_strerror(rv));
        return -1;
    }
    return 0;
}

static int
floor_cbor(void)
{
    unsigned char         *buf  = NULL;
    size_t                 size = 0;
    struct cbor_load_result res;
    cbor_item_t           *map  = cbor_new_definite_map(1);
    cbor_item_t           *back;
    int                    ok;

    ok = map != NULL &&
         cbor_map_add(map, (struct cbor_pair){
                               .key   = cbor_move(cbor_build_uint8(2)),
                               .value = cbor_move(cbor_build_string("t")),
                           }) &&
         cbor_serialize_alloc(map, &buf, &size) > 0;
    back = ok ? cbor_load(buf, size, &res) : NULL;
    ok   = back != NULL && cbor_map_size(back) == 1;
    if (back != NULL) {
        cbor_decref(&back);
    }
    if (map != NULL) {
        cbor_decref(&map);
    }
    free(buf);
    return ok ? 0 : -1;
}

static int
floor_yaml(void)
{
    static const char doc[] = "runtime:\n  name: floor\n";
    yaml_parser_t     parser;
    yaml_event_t      ev;
    int               done = 0, ok = 1;

    if (!yaml_parser_initialize(&parser)) {
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)doc,
                                 strlen(doc));
    while (ok && !done) {
        if (!(ok = yaml_parser_parse(&parser, &ev))) {
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return ok ? 0 : -1;
}

static int
floor_sqlite(const char *dir, sqlite3 **db)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/floor.db", dir);
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(*db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                     " CREATE TABLE IF NOT EXISTS t(x BLOB);"
                     " INSERT INTO t VALUES (x'00');",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: sqlite: %s\n", sqlite3_errmsg(*db));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    nng_socket s;
    sqlite3   *db = NULL;
    sigset_t   set;
    int        sig;

    if (argc != 2) {
        fprintf(stderr, "usage: footprint_floor DIR\n");
        return 2;
    }
    /* As in cairnd: signals blocked before any thread exists, then
     * taken with sigwait(). */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (floor_nng(argv[1], &s) != 0 || floor_cbor() != 0 ||
        floor_yaml() != 0 || floor_sqlite(argv[1], &db) != 0) {
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    sigwait(&set, &sig);
    nng_close(s);
    sqlite3_close(db);
    return 0;
}
