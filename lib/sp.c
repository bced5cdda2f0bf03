/* sp.c: a REQ peer on plain sockets (tcp:// and ipc://): dialling, the handshake, sending a
 * request and reading its reply with blocking waits; the bytes on the wire (handshake, frames,
 * request id) are proto/spwire.h's. */
#define _GNU_SOURCE
#include "sp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "spwire.h"

struct jobq__sp_target {
    bool ipc;
    char *host;             /* tcp: the host name or address, without brackets */
    char *port;             /* tcp: the port (or a service name) */
    struct sockaddr_un sun; /* ipc: the socket's path */
    socklen_t sun_len;
};

bool
jobq__sp_native_url(const char *url)
{
    return strncmp(url, "tcp://", 6) == 0 || strncmp(url, "ipc://", 6) == 0;
}

int
jobq__sp_target_parse(const char *url, jobq__sp_target **tp)
{
    if (!jobq__sp_native_url(url)) {
        return NNG_EINVAL;
    }
    nng_url *u = NULL;
    int rv = nng_url_parse(&u, url);
    if (rv != 0) {
        return rv;
    }
    jobq__sp_target *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        nng_url_free(u);
        return NNG_ENOMEM;
    }
    t->ipc = strcmp(u->u_scheme, "ipc") == 0;
    if (t->ipc) {
        size_t n = strlen(u->u_path);
        if (n == 0 || n >= sizeof(t->sun.sun_path)) {
            rv = NNG_EADDRINVAL;
        } else {
            t->sun.sun_family = AF_UNIX;
            memcpy(t->sun.sun_path, u->u_path, n + 1);
            t->sun_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        }
    } else if (u->u_hostname[0] == '\0' || u->u_port[0] == '\0') {
        rv = NNG_EADDRINVAL;
    } else if ((t->host = strdup(u->u_hostname)) == NULL || (t->port = strdup(u->u_port)) == NULL) {
        rv = NNG_ENOMEM;
    }
    nng_url_free(u);
    if (rv != 0) {
        jobq__sp_target_free(t);
        return rv;
    }
    *tp = t;
    return 0;
}

void
jobq__sp_target_free(jobq__sp_target *t)
{
    if (t == NULL) {
        return;
    }
    free(t->host);
    free(t->port);
    free(t);
}

/* from_errno: the nng error code for a socket call's errno (as nng's own platform layer
 * translates it; others as NNG_ESYSERR + errno, which nng_strerror spells out). */
static int
from_errno(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return NNG_ECONNREFUSED;
    case ENOENT:
    case ENOTDIR:
        return NNG_ENOENT;
    case EAGAIN:
        return NNG_EAGAIN;
    case ETIMEDOUT:
        return NNG_ETIMEDOUT;
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
        return NNG_ECONNSHUT;
    case ECONNABORTED:
        return NNG_ECONNABORTED;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN:
        return NNG_EUNREACHABLE;
    case EACCES:
    case EPERM:
        return NNG_EPERM;
    case ENOMEM:
    case ENOBUFS:
        return NNG_ENOMEM;
    case EADDRNOTAVAIL:
    case EAFNOSUPPORT:
        return NNG_EADDRINVAL;
    default:
        return NNG_ESYSERR + e;
    }
}

/* wait_fd: polls fd for events until deadline_ms. Returns 0 when ready (or hung up: the next
 * read or write says how), NNG_ETIMEDOUT. */
static int
wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - jobq__mono_ms();
        int ms = left <= 0 ? 0 : (left > 1000000000 ? 1000000000 : (int)left);
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms);
        if (r > 0) {
            return 0;
        }
        if (r == 0) {
            return NNG_ETIMEDOUT;
        }
        if (errno != EINTR) {
            return from_errno(errno);
        }
    }
}

/* connect_one: a new socket of family connected to addr by deadline_ms, announced to track
 * (and withdrawn before it is closed on failure). On success *fdp is the socket. */
static int
connect_one(int family, const struct sockaddr *addr, socklen_t len, int64_t deadline_ms,
            jobq__sp_track_cb track, void *arg, int *fdp)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return from_errno(errno);
    }
    int rv = track != NULL ? track(arg, fd) : 0;
    if (rv != 0) {
        close(fd);
        return rv;
    }
    if (connect(fd, addr, len) != 0) {
        if (errno == EINPROGRESS || errno == EINTR) {
            rv = wait_fd(fd, POLLOUT, deadline_ms);
            int soerr = 0;
            socklen_t sl = sizeof(soerr);
            if (rv == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
                soerr = errno;
            }
            if (rv == 0 && soerr != 0) {
                rv = from_errno(soerr);
            }
        } else {
            rv = from_errno(errno);
        }
    }
    if (rv != 0) {
        if (track != NULL) {
            track(arg, -1);
        }
        close(fd);
        return rv;
    }
    if (family != AF_UNIX) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    *fdp = fd;
    return 0;
}

/* recv_some: waits until fd is readable (by deadline_ms), then reads what is there, at most
 * len bytes, into buf. Returns 0 with *np > 0, NNG_ECONNSHUT at the end of the stream, or
 * an error. */
static int
recv_some(int fd, void *buf, size_t len, int64_t deadline_ms, size_t *np)
{
    for (;;) {
        int rv = wait_fd(fd, POLLIN, deadline_ms);
        if (rv != 0) {
            return rv;
        }
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n > 0) {
            *np = (size_t)n;
            return 0;
        }
        if (n == 0) {
            return NNG_ECONNSHUT;
        }
        if (errno != EINTR && errno != EAGAIN) {
            return from_errno(errno);
        }
    }
}

/* handshake: sends the REQ header and reads the peer's, which must be a REP one. */
static int
handshake(int fd, int64_t deadline_ms)
{
    uint8_t mine[JOBQ__SPW_HANDSHAKE_LEN];
    jobq__spw_handshake(mine, JOBQ__SPW_PROTO_REQ);
    ssize_t n;
    while ((n = send(fd, mine, sizeof(mine), MSG_NOSIGNAL | MSG_DONTWAIT)) < 0 && errno == EINTR) {
    }
    if (n < 0) {
        return from_errno(errno);
    }
    if (n != (ssize_t)sizeof(mine)) {
        return NNG_ECONNSHUT; /* a fresh socket's buffer holds 8 bytes: the peer is gone */
    }
    uint8_t peer[JOBQ__SPW_HANDSHAKE_LEN];
    size_t got = 0;
    while (got < sizeof(peer)) {
        size_t k;
        int rv = recv_some(fd, peer + got, sizeof(peer) - got, deadline_ms, &k);
        if (rv != 0) {
            return rv;
        }
        got += k;
    }
    if (!jobq__spw_handshake_ok(peer, JOBQ__SPW_PROTO_REP)) {
        return NNG_EPROTO; /* not an SP peer, or not a REP one */
    }
    return 0;
}

int
jobq__sp_dial(const jobq__sp_target *t, int64_t deadline_ms, jobq__sp_track_cb track, void *arg,
              jobq__sp_conn *c)
{
    int fd = -1;
    int rv;
    if (t->ipc) {
        rv = connect_one(AF_UNIX, (const struct sockaddr *)&t->sun, t->sun_len, deadline_ms, track,
                         arg, &fd);
    } else {
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        struct addrinfo *ais = NULL;
        int gr = getaddrinfo(t->host, t->port, &hints, &ais);
        if (gr != 0) {
            return gr == EAI_MEMORY ? NNG_ENOMEM
                                    : (gr == EAI_SYSTEM ? from_errno(errno) : NNG_EADDRINVAL);
        }
        rv = NNG_EADDRINVAL;
        for (struct addrinfo *ai = ais; ai != NULL; ai = ai->ai_next) {
            rv = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline_ms, track, arg,
                             &fd);
            /* The next address only when this one refused or was unreachable. */
            if (rv == 0 ||
                (rv != NNG_ECONNREFUSED && rv != NNG_EUNREACHABLE && rv != NNG_EADDRINVAL)) {
                break;
            }
        }
        freeaddrinfo(ais);
    }
    if (rv == 0 && (rv = handshake(fd, deadline_ms)) != 0) {
        if (track != NULL) {
            track(arg, -1);
        }
        close(fd);
    }
    if (rv != 0) {
        return rv;
    }
    if (track == NULL) {
        c->fd = fd;
    }
    c->ipc = t->ipc;
    c->next_id = nng_random();
    c->rbeg = c->rend = 0;
    return 0;
}

bool
jobq__sp_alive(const jobq__sp_conn *c)
{
    if (c->rbeg != c->rend) {
        return false; /* bytes nobody asked for */
    }
    char b;
    ssize_t n;
    while ((n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT)) < 0 && errno == EINTR) {
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* fill: reads until at least need (<= sizeof rbuf) bytes are buffered. */
static int
fill(jobq__sp_conn *c, size_t need, int64_t deadline_ms)
{
    if (c->rend - c->rbeg >= need) {
        return 0;
    }
    if (c->rbeg > 0) {
        memmove(c->rbuf, c->rbuf + c->rbeg, c->rend - c->rbeg);
        c->rend -= c->rbeg;
        c->rbeg = 0;
    }
    while (c->rend < need) {
        size_t k;
        int rv = recv_some(c->fd, c->rbuf + c->rend, sizeof(c->rbuf) - c->rend, deadline_ms, &k);
        if (rv != 0) {
            return rv;
        }
        c->rend += k;
    }
    return 0;
}

/* take: moves n bytes of the frame being read into dst (NULL: drops them), first from the
 * buffer, then from the socket (large parts straight into dst). */
static int
take(jobq__sp_conn *c, unsigned char *dst, uint64_t n, int64_t deadline_ms)
{
    while (n > 0) {
        size_t have = c->rend - c->rbeg;
        if (have > 0) {
            size_t k = have < n ? have : (size_t)n;
            if (dst != NULL) {
                memcpy(dst, c->rbuf + c->rbeg, k);
                dst += k;
            }
            c->rbeg += k;
            n -= k;
            continue;
        }
        c->rbeg = c->rend = 0;
        if (dst == NULL || n < sizeof(c->rbuf)) {
            int rv = fill(c, 1, deadline_ms);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        size_t got;
        int rv =
            recv_some(c->fd, dst, n > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)n, deadline_ms, &got);
        if (rv != 0) {
            return rv;
        }
        dst += got;
        n -= (uint64_t)got;
    }
    return 0;
}

/* send_request: writes the whole frame of id and body. */
static int
send_request(jobq__sp_conn *c, uint32_t id, const void *body, size_t len, int64_t deadline_ms,
             bool *sentp)
{
    uint8_t hdr[JOBQ__SPW_REQ_HEAD_MAX];
    size_t h = jobq__spw_request_head(hdr, c->ipc, id, len);
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = h},
                           {.iov_base = (void *)body, .iov_len = len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    while (mh.msg_iovlen > 0) {
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rv = wait_fd(c->fd, POLLOUT, deadline_ms);
                if (rv != 0) {
                    return rv;
                }
                continue;
            }
            return from_errno(errno);
        }
        *sentp = true;
        size_t k = (size_t)n;
        while (mh.msg_iovlen > 0 && k >= mh.msg_iov[0].iov_len) {
            k -= mh.msg_iov[0].iov_len;
            mh.msg_iov++;
            mh.msg_iovlen--;
        }
        if (mh.msg_iovlen > 0) {
            mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + k;
            mh.msg_iov[0].iov_len -= k;
        }
    }
    return 0;
}

int
jobq__sp_call(jobq__sp_conn *c, const void *body, size_t len, int64_t deadline_ms, bool *sentp,
              char **replyp, size_t *lenp)
{
    *sentp = false;
    uint32_t id = jobq__spw_request_id(c->next_id++);
    int rv = send_request(c, id, body, len, deadline_ms, sentp);
    if (rv != 0) {
        return rv;
    }
    size_t lhead = jobq__spw_frame_hdr_len(c->ipc);
    for (;;) {
        if ((rv = fill(c, lhead, deadline_ms)) != 0) {
            return rv;
        }
        uint64_t flen;
        if (jobq__spw_frame_get(c->rbuf + c->rbeg, c->rend - c->rbeg, c->ipc, &flen) !=
            JOBQ__SPW_FRAME_OK) {
            return NNG_EPROTO; /* an ipc:// frame of another type */
        }
        if (flen < 4) {
            return NNG_EPROTO; /* shorter than a request id */
        }
        if (flen > JOBQ__SP_MAX_REPLY) {
            return NNG_EMSGSIZE;
        }
        if ((rv = fill(c, lhead + 4, deadline_ms)) != 0) {
            return rv;
        }
        uint32_t rid = jobq__spw_get32(c->rbuf + c->rbeg + lhead);
        size_t hlen = lhead + 4;
        c->rbeg += hlen;
        uint64_t blen = flen - 4;
        if (rid != id) {
            /* A reply to an earlier request of this connection: skipped, as nng's REQ does. */
            if ((rv = take(c, NULL, blen, deadline_ms)) != 0) {
                return rv;
            }
            continue;
        }
        char *buf = malloc((size_t)blen + 1);
        if (buf == NULL) {
            return NNG_ENOMEM;
        }
        if ((rv = take(c, (unsigned char *)buf, blen, deadline_ms)) != 0) {
            free(buf);
            return rv;
        }
        buf[blen] = '\0';
        *replyp = buf;
        *lenp = (size_t)blen;
        return 0;
    }
}
