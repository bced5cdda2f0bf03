/* sp.h: the SP (nng/nanomsg) wire protocol of a REQ peer over plain tcp:// and ipc://
 * sockets: address parsing, dialling with the handshake, and request/reply framing. Not
 * installed. Functions return 0 or an nng error code (NNG_E...), which client.c translates. */
#ifndef JOBQ_LIB_SP_H
#define JOBQ_LIB_SP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h" /* jobq__mono_ms: the clock of every deadline here */

/** Replies larger than this (bytes, request id included) are refused as malformed. */
#define JOBQ__SP_MAX_REPLY ((uint64_t)1 << 30)

/** jobq__sp_target: where to dial, parsed once from a tcp:// or ipc:// URL. */
typedef struct jobq__sp_target jobq__sp_target;

/** jobq__sp_conn: one connection to a REP peer, used by one call at a time. */
typedef struct jobq__sp_conn {
    int fd;
    bool ipc;         /* ipc:// framing (a type byte before the length) */
    uint32_t next_id; /* the next request id, without its high bit */
    size_t rbeg;      /* unread bytes of rbuf are rbuf[rbeg..rend) */
    size_t rend;
    unsigned char rbuf[4096]; /* bytes read past a frame boundary and small frames */
} jobq__sp_conn;

/** jobq__sp_native_url: whether url has a scheme this file speaks (tcp://, ipc://). */
bool jobq__sp_native_url(const char *url);

/** jobq__sp_target_parse: parses a tcp://HOST:PORT ([IPv6] too) or ipc://PATH URL. Returns 0,
 *  NNG_EINVAL (not such a URL), NNG_EADDRINVAL (no host or port, a path too long for a unix
 *  socket) or NNG_ENOMEM; on success *tp owns the target (jobq__sp_target_free). */
int jobq__sp_target_parse(const char *url, jobq__sp_target **tp);

/** jobq__sp_target_free: frees a target. Accepts NULL. */
void jobq__sp_target_free(jobq__sp_target *t);

/** jobq__sp_track_cb: called by jobq__sp_dial with each socket it creates, before connecting
 *  it, and with -1 before it closes one that failed; the owner stores it as the connection's
 *  fd (jobq__sp_dial does not write c->fd then), so that another thread can shutdown() it. A
 *  non-zero return (an nng error code) abandons the dial with that error. */
typedef int (*jobq__sp_track_cb)(void *arg, int fd);

/** jobq__sp_dial: connects to t (every address a host name resolves to, in order), sends the
 *  REQ handshake and checks that the peer is REP, by deadline_ms (CLOCK_MONOTONIC ms). On
 *  success c is ready with a random first request id. Errors: NNG_ETIMEDOUT, NNG_EPROTO (the
 *  peer is not an SP REP peer), NNG_ECONNREFUSED, NNG_ENOENT, NNG_EAGAIN, NNG_EADDRINVAL (an
 *  unknown host), NNG_ECONNSHUT (closed during the handshake), ... . Without track, c->fd is
 *  written on success only. */
int jobq__sp_dial(const jobq__sp_target *t, int64_t deadline_ms, jobq__sp_track_cb track, void *arg,
                  jobq__sp_conn *c);

/** jobq__sp_alive: whether an idle connection can carry a request: the peer has neither
 *  closed it nor sent anything unasked. Never blocks. */
bool jobq__sp_alive(const jobq__sp_conn *c);

/** jobq__sp_call: sends body (len bytes) as one request and waits for the reply with its id
 *  until deadline_ms; replies to other ids are skipped. On success *replyp owns a malloc'd
 *  buffer of *lenp bytes plus a NUL. Errors: NNG_ETIMEDOUT, NNG_ECONNSHUT (EOF or reset before
 *  the reply), NNG_EPROTO (a malformed frame), NNG_EMSGSIZE (a reply over
 *  JOBQ__SP_MAX_REPLY), NNG_ENOMEM. *sentp tells whether any byte of the request left (false:
 *  the request was surely not received). After an error the connection must be closed. */
int jobq__sp_call(jobq__sp_conn *c, const void *body, size_t len, int64_t deadline_ms, bool *sentp,
                  char **replyp, size_t *lenp);

#endif
