/* spwire.h: nng's SP wire format as pure functions over bytes, shared by jobqd's REP endpoint,
 * libjobq's REQ peer and the tests: the protocol numbers, the 8-byte handshake, the tcp:// and
 * ipc:// frame headers, big-endian integers, the REQ request id and the REP backtrace with its
 * hop limit. No I/O, no allocation, no state: every function may be called from any thread.
 * Internal (jobq__ prefix): not installed.
 *
 * The format, as nng 1.5 speaks it (src/sp/transport/tcp/tcp.c, src/sp/transport/ipc/ipc.c,
 * src/sp/protocol/reqrep0/req.c and rep.c):
 *   handshake, each side:  00 'S' 'P' 00 PH PL 00 00   (PH PL: the sender's protocol)
 *   tcp:// frame:          8-byte big-endian length, then that many bytes of message
 *   ipc:// frame:          type byte 01, 8-byte big-endian length, then the message
 *   request (REQ -> REP):  32-bit big-endian request id with its high bit set, then the body
 *   reply (REP -> REQ):    the request's backtrace, then the body
 * A message that went through devices carries their 32-bit hop words (high bit clear) before
 * the request id: the backtrace is every word up to and including the first whose high bit is
 * set, and a REP peer sends it back in front of its reply. */
#ifndef JOBQ_PROTO_SPWIRE_H
#define JOBQ_PROTO_SPWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The protocol numbers of the handshake (nng's NNG_REQ0_SELF and NNG_REP0_SELF). */
#define JOBQ__SPW_PROTO_REQ 0x0030
#define JOBQ__SPW_PROTO_REP 0x0031

/** Bytes of a handshake. */
#define JOBQ__SPW_HANDSHAKE_LEN 8

/** The ipc:// frame type byte of a message (the only type nng 1.5 sends or accepts). */
#define JOBQ__SPW_IPC_MSG 1

/** Bytes of a frame header: tcp:// (the length) and ipc:// (type byte and length). */
#define JOBQ__SPW_TCP_HDR 8
#define JOBQ__SPW_IPC_HDR 9
#define JOBQ__SPW_HDR_MAX JOBQ__SPW_IPC_HDR

/** The high bit of a 32-bit word that marks the request id, the last word of a backtrace. */
#define JOBQ__SPW_ID_BIT 0x80000000u

/** rep0's default NNG_OPT_MAXTTL (rep.c sets the socket's ttl to 8): the most words a REP
 *  peer accepts in a backtrace, request id included. */
#define JOBQ__SPW_MAX_HOPS 8

/** Bytes of the longest backtrace a REP peer with JOBQ__SPW_MAX_HOPS accepts. */
#define JOBQ__SPW_BT_MAX (4 * JOBQ__SPW_MAX_HOPS)

/** Bytes of a request's head: frame header and request id. */
#define JOBQ__SPW_REQ_HEAD_MAX (JOBQ__SPW_HDR_MAX + 4)

/** Bytes of a reply's head: frame header and the longest backtrace. */
#define JOBQ__SPW_REPLY_HEAD_MAX (JOBQ__SPW_HDR_MAX + JOBQ__SPW_BT_MAX)

/** jobq__spw_get32: the big-endian 32-bit integer at p. */
static inline uint32_t
jobq__spw_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/** jobq__spw_put32: writes v big-endian at p (4 bytes). */
static inline void
jobq__spw_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/** jobq__spw_get64: the big-endian 64-bit integer at p. */
static inline uint64_t
jobq__spw_get64(const uint8_t *p)
{
    return (uint64_t)jobq__spw_get32(p) << 32 | jobq__spw_get32(p + 4);
}

/** jobq__spw_put64: writes v big-endian at p (8 bytes). */
static inline void
jobq__spw_put64(uint8_t *p, uint64_t v)
{
    jobq__spw_put32(p, (uint32_t)(v >> 32));
    jobq__spw_put32(p + 4, (uint32_t)v);
}

/** jobq__spw_handshake: writes the handshake of a peer speaking proto (JOBQ__SPW_PROTO_REQ or
 *  _REP) into out (JOBQ__SPW_HANDSHAKE_LEN bytes). */
void jobq__spw_handshake(uint8_t *out, uint16_t proto);

/** jobq__spw_handshake_ok: whether in (JOBQ__SPW_HANDSHAKE_LEN bytes) is an SP handshake of
 *  protocol want: the fixed bytes as nng's transports check them, and the protocol as nng's
 *  req0/rep0 check their peer's. */
bool jobq__spw_handshake_ok(const uint8_t *in, uint16_t want);

/** jobq__spw_frame_hdr_len: bytes of a frame header on ipc:// (true) or tcp:// (false). */
static inline size_t
jobq__spw_frame_hdr_len(bool ipc)
{
    return ipc ? JOBQ__SPW_IPC_HDR : JOBQ__SPW_TCP_HDR;
}

/** jobq__spw_frame_put: writes the header of a frame holding len bytes of message into out
 *  (JOBQ__SPW_HDR_MAX bytes). Returns the header's length (jobq__spw_frame_hdr_len). */
size_t jobq__spw_frame_put(uint8_t *out, bool ipc, uint64_t len);

/** What jobq__spw_frame_get found. */
typedef enum jobq__spw_frame {
    JOBQ__SPW_FRAME_OK,     /* a header: *lenp is the message's length */
    JOBQ__SPW_FRAME_SHORT,  /* fewer bytes than a header: read more */
    JOBQ__SPW_FRAME_BADTYPE /* ipc:// type byte other than JOBQ__SPW_IPC_MSG: close */
} jobq__spw_frame;

/** jobq__spw_frame_get: parses the frame header at the start of in (avail bytes). On
 *  JOBQ__SPW_FRAME_OK writes the message's length to *lenp (the header is
 *  jobq__spw_frame_hdr_len bytes); a limit on that length is the caller's. */
jobq__spw_frame jobq__spw_frame_get(const uint8_t *in, size_t avail, bool ipc, uint64_t *lenp);

/** jobq__spw_request_id: the wire form of a REQ peer's n-th request id: n's low 31 bits with
 *  the high bit set, as nng's req0 allocates them (0x80000000 ... 0xffffffff). */
static inline uint32_t
jobq__spw_request_id(uint32_t n)
{
    return (n & ~JOBQ__SPW_ID_BIT) | JOBQ__SPW_ID_BIT;
}

/** jobq__spw_request_head: writes the head of a request frame (frame header, then id) for a
 *  body of body_len bytes into out (JOBQ__SPW_REQ_HEAD_MAX bytes); the body follows it on the
 *  wire. Returns the head's length. */
size_t jobq__spw_request_head(uint8_t *out, bool ipc, uint32_t id, size_t body_len);

/** jobq__spw_reply_head: writes the head of a reply frame (frame header, then the backtrace bt
 *  of nbt bytes, at most JOBQ__SPW_BT_MAX) for a body of body_len bytes into out
 *  (JOBQ__SPW_REPLY_HEAD_MAX bytes). Returns the head's length. */
size_t jobq__spw_reply_head(uint8_t *out, bool ipc, const uint8_t *bt, size_t nbt,
                            size_t body_len);

/** What jobq__spw_backtrace returns besides a length, as nng's rep0 treats a message. */
enum {
    JOBQ__SPW_BT_DROP = 0,     /* more than max_hops words before the request id: drop the
                                * message and keep the connection (devices may send these) */
    JOBQ__SPW_BT_MALFORMED = -1 /* the message ends before a request id: close the connection */
};

/** jobq__spw_backtrace: the backtrace of a request message msg (len bytes, frame header
 *  removed) received by a REP peer accepting at most max_hops words (JOBQ__SPW_MAX_HOPS by
 *  default; 1 ... 15 as nng allows). Returns its length in bytes (4 ... 4 * max_hops: the
 *  words up to and including the request id; the body follows), JOBQ__SPW_BT_DROP or
 *  JOBQ__SPW_BT_MALFORMED, deciding in the order rep0_pipe_recv_cb does. */
int jobq__spw_backtrace(const uint8_t *msg, size_t len, int max_hops);

#endif
