/* held.c: jobq-held, a client for tests/it_held.sh that pipelines requests on one connection
 * by hand (nng's SP wire format), then keeps the connection open until its standard input
 * ends, and closes it.
 *
 *   jobq-held TARGET N same|distinct JSON [READ]
 *
 * TARGET is an ipc socket's path (an ipc:// URL is accepted) or tcp:PORT (127.0.0.1). Once
 * jobqd's handshake is read, the handshake and the N requests (request ids 1..N, or 1 for
 * every one with `same`, as a REQ socket that sends a request again) go out in one write. With READ, that many replies are read and printed, one a line. Then "sent N" is
 * printed, standard input is read to its end and the connection is closed (JOBQ_HELD_EAGER:
 * without waiting for jobqd's handshake first). Exits 0 when it
 * did what it was asked, 1 on a connection error, 2 on bad usage. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int tcp_mode; /* frames without the ipc type byte */

static int
dial(const char *target)
{
    if (strncmp(target, "tcp:", 4) == 0) {
        tcp_mode = 1;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)atoi(target + 4))};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            return -1;
        }
        return fd;
    }
    if (strncmp(target, "ipc://", 6) == 0) {
        target += 6;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", target);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        return -1;
    }
    return fd;
}

static int
get_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 5 || argc > 6 || (strcmp(argv[3], "same") != 0 && strcmp(argv[3], "distinct") != 0)) {
        fprintf(stderr, "usage: jobq-held TARGET N same|distinct JSON [READ]\n");
        return 2;
    }
    unsigned n = (unsigned)strtoul(argv[2], NULL, 10);
    int same = strcmp(argv[3], "same") == 0;
    const char *json = argv[4];
    unsigned nread = argc == 6 ? (unsigned)strtoul(argv[5], NULL, 10) : 0;
    int fd = dial(argv[1]);
    if (fd < 0) {
        perror("connect");
        return 1;
    }
    /* jobqd's handshake first: the connection is accepted and will read what comes. With
     * JOBQ_HELD_EAGER set, everything is sent (and, READ 0 with standard input at its end,
     * the connection closed) before jobqd's handshake is read, so that jobqd finds the
     * requests and the end of the connection waiting together. */
    unsigned char peer[8];
    if (getenv("JOBQ_HELD_EAGER") == NULL && get_all(fd, peer, sizeof(peer)) != 0) {
        fprintf(stderr, "no handshake from jobqd\n");
        return 1;
    }
    size_t jl = strlen(json), fl = 9 + 4 + jl;
    size_t len = 8 + (size_t)n * fl;
    unsigned char *buf = malloc(len), *p = buf;
    if (buf == NULL) {
        return 1;
    }
    static const unsigned char hs[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
    memcpy(p, hs, 8);
    p += 8;
    for (unsigned i = 0; i < n; i++) {
        uint64_t body = 4 + jl;
        if (!tcp_mode) {
            *p++ = 1;
        }
        for (int k = 7; k >= 0; k--) {
            *p++ = (unsigned char)(body >> (8 * k));
        }
        uint32_t id = 0x80000000u | (same ? 1u : i + 1);
        for (int k = 3; k >= 0; k--) {
            *p++ = (unsigned char)(id >> (8 * k));
        }
        memcpy(p, json, jl);
        p += jl;
    }
    len = (size_t)(p - buf);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w <= 0) {
            perror("send");
            return 1;
        }
        off += (size_t)w;
    }
    free(buf);
    for (unsigned i = 0; i < nread; i++) {
        unsigned char hdr[9];
        size_t hl = tcp_mode ? 8 : 9;
        if (get_all(fd, hdr, hl) != 0) {
            fprintf(stderr, "connection closed after %u replies\n", i);
            return 1;
        }
        uint64_t body = 0;
        for (size_t k = hl - 8; k < hl; k++) {
            body = (body << 8) | hdr[k];
        }
        char *r = malloc(body + 1);
        if (r == NULL || body < 4 || get_all(fd, r, body) != 0) {
            return 1;
        }
        r[body] = '\0';
        printf("%s\n", r + 4);
        free(r);
    }
    printf("sent %u\n", n);
    fflush(stdout);
    char sink[256];
    while (fread(sink, 1, sizeof(sink), stdin) > 0) {
    }
    close(fd);
    return 0;
}
