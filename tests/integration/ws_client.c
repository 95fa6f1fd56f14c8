/*
 * ws_client.c - a small WebSocket client (RFC 6455) over a plain TCP
 * socket, for the gateway's tests.
 *
 *   ws_client PORT PATH N [TOKEN]
 *
 * Connects to 127.0.0.1:PORT, sends the upgrade for PATH (with the
 * RFC's sample key, so the test can check the server's
 * Sec-WebSocket-Accept against the RFC's answer) and prints:
 *
 *   status CODE                the response's status
 *   accept VALUE               its Sec-WebSocket-Accept
 *   connected                  after a 101
 *   TEXT                       one line per text frame, N of them
 *   pong PAYLOAD               after it pinged, having read N frames
 *
 * then sends a close frame and exits 0.  A refused upgrade prints the
 * body after the status and exits 3; any other failure exits 1..4.
 * Every read has a 20 s timeout, so the program always ends.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="

static uint8_t inbuf[1 << 20];
static size_t  inlen;

static int
rd_more(int fd)
{
    if (inlen == sizeof(inbuf)) {
        return -1;
    }
    ssize_t n = recv(fd, inbuf + inlen, sizeof(inbuf) - inlen, 0);
    if (n <= 0) {
        return -1;
    }
    inlen += (size_t)n;
    return 0;
}

static void
consume(size_t n)
{
    memmove(inbuf, inbuf + n, inlen - n);
    inlen -= n;
}

/* A masked frame from the client. */
static int
send_frame(int fd, uint8_t op, const char *p, size_t n)
{
    uint8_t f[256];
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    if (n > 125) {
        return -1;
    }
    f[0] = (uint8_t)(0x80 | op);
    f[1] = (uint8_t)(0x80 | n);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < n; i++) {
        f[6 + i] = (uint8_t)(p[i] ^ mask[i % 4]);
    }
    return send(fd, f, 6 + n, 0) == (ssize_t)(6 + n) ? 0 : -1;
}

/* Reads one frame; *op its opcode, payload in out (NUL-terminated). */
static int
read_frame(int fd, uint8_t *op, char **out, size_t *outlen)
{
    for (;;) {
        if (inlen >= 2) {
            size_t n = inbuf[1] & 0x7f, hl = 2;
            if (n == 126) {
                hl = 4;
                n  = inlen >= 4 ? (size_t)inbuf[2] << 8 | inbuf[3] : 0;
            } else if (n == 127) {
                hl = 10;
                n  = 0;
                for (int i = 0; i < 8 && inlen >= 10; i++) {
                    n = n << 8 | inbuf[2 + i];
                }
            }
            if (inlen >= hl && inlen >= hl + n && n < sizeof(inbuf)) {
                *op  = inbuf[0] & 0x0f;
                *out = malloc(n + 1);
                if (*out == NULL) {
                    return -1;
                }
                memcpy(*out, inbuf + hl, n);
                (*out)[n] = '\0';
                *outlen   = n;
                consume(hl + n);
                return 0;
            }
        }
        if (rd_more(fd) != 0) {
            return -1;
        }
    }
}

static int
handshake(int fd, const char *path, const char *token)
{
    char req[2048];
    int  n = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " WS_KEY "\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                      path, token ? "Authorization: Bearer " : "",
                      token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req) || send(fd, req, (size_t)n, 0) != n) {
        return 1;
    }
    char *end;
    while ((end = memmem(inbuf, inlen, "\r\n\r\n", 4)) == NULL) {
        if (rd_more(fd) != 0) {
            return 2;
        }
    }
    size_t hlen = (size_t)(end - (char *)inbuf) + 4;
    char  *head = strndup((char *)inbuf, hlen);
    int    code = 0;
    consume(hlen);
    sscanf(head, "HTTP/1.1 %d", &code);
    printf("status %d\n", code);
    char *acc = strcasestr(head, "\r\nSec-WebSocket-Accept: ");
    if (acc != NULL) {
        acc += 24;
        printf("accept %.*s\n", (int)strcspn(acc, "\r\n"), acc);
    }
    if (code != 101) {
        char *cl = strcasestr(head, "\r\nContent-Length: ");
        size_t blen = cl ? strtoul(cl + 18, NULL, 10) : 0;
        while (inlen < blen && rd_more(fd) == 0) {
        }
        printf("%.*s\n", (int)(inlen < blen ? inlen : blen), (char *)inbuf);
        free(head);
        return 3;
    }
    free(head);
    printf("connected\n");
    fflush(stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ws_client PORT PATH N [TOKEN]\n");
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port   = htons((uint16_t)atoi(argv[1]))};
    struct timeval     tv = {.tv_sec = 20};
    long               want = atol(argv[3]);
    int                fd   = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        return 1;
    }
    int rv = handshake(fd, argv[2], argc > 4 ? argv[4] : NULL);
    if (rv != 0) {
        return rv;
    }
    for (long got = 0; got < want;) {
        uint8_t op;
        char   *p;
        size_t  n;
        if (read_frame(fd, &op, &p, &n) != 0) {
            fprintf(stderr, "ws_client: no frame %ld of %ld\n", got + 1, want);
            return 4;
        }
        if (op == 0x1) {
            printf("%s\n", p);
            fflush(stdout);
            got++;
        }
        free(p);
    }
    if (send_frame(fd, 0x9, "hi", 2) != 0) {
        return 1;
    }
    for (;;) {
        uint8_t op;
        char   *p;
        size_t  n;
        if (read_frame(fd, &op, &p, &n) != 0) {
            fprintf(stderr, "ws_client: no pong\n");
            return 4;
        }
        if (op == 0xa) {
            printf("pong %s\n", p);
            free(p);
            break;
        }
        free(p);
    }
    send_frame(fd, 0x8, "", 0);
    close(fd);
    return 0;
}
