/* hostile.c: jobq-hostile, a misbehaving client for tests/it_hostile.sh. It speaks nng's
 * wire format by hand so it can break it: connections opened and dropped before, during and
 * after the handshake and in the middle of a message, frames that announce more than they
 * carry or more than any limit; and slowloris clients on the HTTP port.
 *
 *   jobq-hostile conns TARGET N            N connections, each dropped at some point; TARGET
 *                                          is an ipc socket's path or tcp:PORT (127.0.0.1)
 *   jobq-hostile slowloris HOST PORT N SEC  N sockets each sending one header byte a second
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
    fprintf(stderr, "usage: jobq-hostile conns IPC_PATH N\n"
                    "       jobq-hostile slowloris HOST PORT N SECONDS\n");
    return 2;
}
