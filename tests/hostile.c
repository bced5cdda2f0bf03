/* hostile.c: jobq-hostile, a misbehaving client for tests/it_hostile.sh. It speaks nng's
 * wire format by hand so it can break it: connections opened and dropped before, during and
 * after the handshake and in the middle of a message, frames that announce more than they
 * carry or more than any limit; and slowloris clients on the HTTP port.
 *
 *   jobq-hostile conns TARGET N            N connections, each dropped at some point; TARGET
 *                                          is an ipc socket's path or tcp:PORT (127.0.0.1)
 *   jobq-hostile slowloris HOST PORT N SEC  N sockets each sending one header byte a second
 *   jobq-hostile stall TARGET N ANNOUNCE SEND
 *                                          N connections, each with a frame that announces
 *                                          ANNOUNCE bytes and carries a request id and then
 *                                          SEND bytes of it as the socket takes them, then
 *                                          silence; prints "stalled" once all are open, then
 *                                          waits (at most 120 s) until jobqd closed them all,
 *                                          and reports the replies they got
 *   jobq-hostile pooled URL                libjobq: a ping, "called", then another ping on
 *                                          the same client once a line arrives on stdin
 *
 * Exits 0 when it did what it was asked (the daemon's side is checked by the test). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "jobq.h"

/* The SP handshake of a REQ peer: "\0SP\0", protocol 0x30 (req0), two reserved bytes. */
static const unsigned char handshake[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};

static int tcp_mode; /* frames without the ipc type byte */

static int
tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int
ipc_connect(const char *path)
{
    if (strncmp(path, "tcp:", 4) == 0) {
        return tcp_connect(atoi(path + 4));
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
put_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return; /* the daemon may close on us: that is allowed */
        }
        p += n;
        len -= (size_t)n;
    }
}

/* frame_header: an ipc frame: type 1, then the 64-bit big-endian length (tcp: no type).
 * Returns the header's size. */
static size_t
frame_header(unsigned char out[9], uint64_t len)
{
    size_t off = tcp_mode ? 0 : 1;
    out[0] = 1;
    for (int i = 0; i < 8; i++) {
        out[off + (size_t)i] = (unsigned char)(len >> (56 - 8 * i));
    }
    return off + 8;
}

/* One way to misbehave on a connection; i picks it. */
static void
misbehave(int fd, unsigned i)
{
    unsigned char hdr[9];
    static const char body[] =
        "\x80\x00\x00\x01{\"op\":\"submit\",\"queue\":\"email\",\"payload\":";
    switch (i % 7) {
    case 0: /* connect and drop */
        break;
    case 1: /* half a handshake */
        put_all(fd, handshake, 3);
        break;
    case 2: /* a handshake, then nothing */
        put_all(fd, handshake, sizeof(handshake));
        break;
    case 3: /* a frame header that announces 100 bytes, then 10 of them */
        put_all(fd, handshake, sizeof(handshake));
        put_all(fd, hdr, frame_header(hdr, 100));
        put_all(fd, body, 10);
        break;
    case 4: /* half a frame header */
        put_all(fd, handshake, sizeof(handshake));
        frame_header(hdr, 100);
        put_all(fd, hdr, 4);
        break;
    case 5: /* a frame that announces a terabyte */
        put_all(fd, handshake, sizeof(handshake));
        put_all(fd, hdr, frame_header(hdr, (uint64_t)1 << 40));
        put_all(fd, body, sizeof(body) - 1);
        break;
    case 6: /* a whole request, truncated JSON; dropped before the reply is read */
        put_all(fd, handshake, sizeof(handshake));
        put_all(fd, hdr, frame_header(hdr, sizeof(body) - 1));
        put_all(fd, body, sizeof(body) - 1);
        break;
    }
}

/* conns: n connections in waves of up to 200 open at once, each dropped after misbehaving. */
static int
conns(const char *path, unsigned n)
{
    enum { WAVE = 100 };
    int fds[WAVE];
    unsigned done = 0, failed = 0;
    while (done < n) {
        unsigned w = n - done < WAVE ? n - done : WAVE;
        for (unsigned k = 0; k < w; k++) {
            fds[k] = ipc_connect(path);
            if (fds[k] < 0) {
                failed++;
                continue;
            }
            misbehave(fds[k], done + k);
        }
        for (unsigned k = 0; k < w; k++) {
            if (fds[k] >= 0) {
                close(fds[k]);
            }
        }
        done += w;
    }
    printf("conns: %u connections opened and dropped (%u could not connect)\n", n, failed);
    /* A few refused connects are fine (the backlog is full for a moment); most must work. */
    return failed * 10 > n ? 1 : 0;
}

/* slowloris: n sockets to host:port each sending one byte of a request header a second. */
static int
slowloris(const char *host, int port, unsigned n, unsigned seconds)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int *fds = calloc(n, sizeof(*fds));
    if (fds == NULL) {
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    unsigned open_n = 0;
    for (unsigned k = 0; k < n; k++) {
        fds[k] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[k] >= 0 && connect(fds[k], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            close(fds[k]);
            fds[k] = -1;
        }
        open_n += fds[k] >= 0;
    }
    unsigned closed_by_server = 0;
    for (unsigned t = 0; t < seconds; t++) {
        for (unsigned k = 0; k < n; k++) {
            if (fds[k] < 0) {
                continue;
            }
            if (send(fds[k], &req[t % (sizeof(req) - 1)], 1, MSG_NOSIGNAL) != 1) {
                close(fds[k]);
                fds[k] = -1;
                closed_by_server++;
            }
        }
        struct timespec ts = {.tv_sec = 1};
        nanosleep(&ts, NULL);
    }
    for (unsigned k = 0; k < n; k++) {
        if (fds[k] >= 0) {
            close(fds[k]);
        }
    }
    free(fds);
    printf("slowloris: %u of %u sockets connected, %u closed by the server within %u s\n", open_n,
           n, closed_by_server, seconds);
    return open_n == 0 ? 1 : 0;
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* stall: see the usage above. Exits 0 when every connection was made and closed by jobqd. */
static int
stall(const char *target, unsigned n, uint64_t announce, size_t send_bytes)
{
    int *fds = calloc(n, sizeof(*fds));
    size_t *sent = calloc(n, sizeof(*sent));
    char **got = calloc(n, sizeof(*got));
    size_t *ngot = calloc(n, sizeof(*ngot));
    char *body = malloc(send_bytes + 4);
    if (fds == NULL || sent == NULL || got == NULL || ngot == NULL || body == NULL) {
        return 1;
    }
    memset(body, 'x', send_bytes + 4);
    unsigned connected = 0;
    for (unsigned k = 0; k < n; k++) {
        fds[k] = ipc_connect(target);
        if (fds[k] < 0) {
            fprintf(stderr, "stall: connect %u: %s\n", k, strerror(errno));
            continue;
        }
        connected++;
        unsigned char hdr[9];
        put_all(fds[k], handshake, sizeof(handshake));
        put_all(fds[k], hdr, frame_header(hdr, announce));
        uint32_t id = 0x80000000u | k;
        unsigned char idb[4] = {(unsigned char)(id >> 24), (unsigned char)(id >> 16),
                                (unsigned char)(id >> 8), (unsigned char)id};
        put_all(fds[k], idb, sizeof(idb));
    }
    printf("stalled %u\n", connected);
    fflush(stdout);
    double t0 = now_s();
    unsigned open_n = connected, closed = 0;
    struct pollfd *pfd = calloc(n, sizeof(*pfd));
    while (open_n > 0 && now_s() - t0 < 120) {
        for (unsigned k = 0; k < n; k++) {
            /* The body as the socket takes it: jobqd may stop reading (its budget). */
            pfd[k] = (struct pollfd){
                .fd = fds[k], .events = POLLIN | (sent[k] < send_bytes ? POLLOUT : 0)};
        }
        if (poll(pfd, n, 1000) < 0 && errno != EINTR) {
            break;
        }
        for (unsigned k = 0; k < n; k++) {
            if (fds[k] < 0 || pfd[k].revents == 0) {
                continue;
            }
            if ((pfd[k].revents & POLLOUT) != 0 && sent[k] < send_bytes) {
                ssize_t w = send(fds[k], body, send_bytes - sent[k], MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w > 0) {
                    sent[k] += (size_t)w;
                }
            }
            if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
                continue;
            }
            char buf[4096];
            ssize_t r = recv(fds[k], buf, sizeof(buf), 0);
            if (r > 0) {
                char *g = realloc(got[k], ngot[k] + (size_t)r + 1);
                if (g != NULL) {
                    memcpy(g + ngot[k], buf, (size_t)r);
                    ngot[k] += (size_t)r;
                    g[ngot[k]] = '\0';
                    got[k] = g;
                }
                continue;
            }
            close(fds[k]);
            fds[k] = -1;
            open_n--;
            closed++;
        }
    }
    /* Replies by error code (the JSON after the SP handshake and frame header). */
    unsigned unauthorized = 0, too_large = 0, other = 0;
    for (unsigned k = 0; k < n; k++) {
        if (got[k] == NULL || ngot[k] <= 8) {
            free(got[k]);
            continue;
        }
        const char *json = memchr(got[k] + 8, '{', ngot[k] - 8);
        if (json == NULL) {
            other++;
        } else if (strstr(json, "\"unauthorized\"") != NULL) {
            unauthorized++;
        } else if (strstr(json, "\"too_large\"") != NULL) {
            too_large++;
        } else {
            other++;
        }
        free(got[k]);
    }
    printf("stall: %u of %u connected, %u closed by jobqd within %.1f s, replies: unauthorized=%u "
           "too_large=%u other=%u\n",
           connected, n, closed, now_s() - t0, unauthorized, too_large, other);
    for (unsigned k = 0; k < n; k++) {
        if (fds[k] >= 0) {
            close(fds[k]);
        }
    }
    free(pfd);
    free(fds);
    free(sent);
    free(got);
    free(ngot);
    free(body);
    return connected == n && closed == n ? 0 : 1;
}

/* pooled: two pings on one libjobq client, the second once stdin gives a line (the test first
 * waits for jobqd to close the idle pooled connection). */
static int
pooled(const char *url)
{
    jobq_client *c;
    if (jobq_client_open(&c, url) != JOBQ_OK) {
        fprintf(stderr, "pooled: open: %s\n", jobq_errmsg());
        return 1;
    }
    jobq_client_set_timeout(c, 5000);
    int rc = jobq_ping(c);
    printf("called %d\n", rc);
    fflush(stdout);
    char line[64];
    if (rc == JOBQ_OK && fgets(line, sizeof(line), stdin) != NULL) {
        rc = jobq_ping(c);
        printf("again %d %s\n", rc, rc == JOBQ_OK ? "" : jobq_errmsg());
    }
    jobq_client_close(c);
    return rc == JOBQ_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[1], "conns") == 0) {
        tcp_mode = strncmp(argv[2], "tcp:", 4) == 0;
        return conns(argv[2], (unsigned)strtoul(argv[3], NULL, 10));
    }
    if (argc == 6 && strcmp(argv[1], "slowloris") == 0) {
        return slowloris(argv[2], atoi(argv[3]), (unsigned)strtoul(argv[4], NULL, 10),
                         (unsigned)strtoul(argv[5], NULL, 10));
    }
    if (argc == 6 && strcmp(argv[1], "stall") == 0) {
        tcp_mode = strncmp(argv[2], "tcp:", 4) == 0;
        return stall(argv[2], (unsigned)strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10),
                     (size_t)strtoull(argv[5], NULL, 10));
    }
    if (argc == 3 && strcmp(argv[1], "pooled") == 0) {
        return pooled(argv[2]);
    }
    fprintf(stderr, "usage: jobq-hostile conns IPC_PATH N\n"
                    "       jobq-hostile slowloris HOST PORT N SECONDS\n"
                    "       jobq-hostile stall TARGET N ANNOUNCE SEND\n"
                    "       jobq-hostile pooled URL\n");
    return 2;
}
