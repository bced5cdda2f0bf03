/* test_spwire.c: the SP wire codec (proto/spwire.c) on fixed byte vectors. The vectors marked
 * "nng 1.5.2" were captured from libnng 1.5.2 (Debian 1.5.2-2): a REQ socket dialled a plain
 * listening socket (tcp:// and ipc://) that answered with a REP handshake, and sent "hi"; a
 * raw client sent requests to a REP socket over ipc://, which answered "ok" to each request it
 * took. The last test repeats both exchanges against the libnng the tests link, so a change of
 * nng's wire format shows here. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "spwire.h"

#define LIVE_TIMEOUT_MS 10000 /* how long a live exchange may take before the test fails */

/* nng 1.5.2: the handshakes of a REQ and of a REP socket (the same on tcp:// and ipc://). */
static const uint8_t nng_req_hs[8] = {0x00, 0x53, 0x50, 0x00, 0x00, 0x30, 0x00, 0x00};
static const uint8_t nng_rep_hs[8] = {0x00, 0x53, 0x50, 0x00, 0x00, 0x31, 0x00, 0x00};

/* nng 1.5.2: a REQ socket's request "hi" (its first request id is random). */
static const uint8_t nng_req_tcp[] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x06, 0xac, 0xe2, 0x38, 0x8a, 'h',  'i'};
static const uint8_t nng_req_ipc[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      0x06, 0xec, 0xc3, 0x09, 0x4e, 'h',  'i'};

/* A request through one device (hop word 7) with request id 0x80001234, sent to an nng 1.5.2
 * REP socket over ipc://, and the reply "ok" it sent back: the whole backtrace first. */
static const uint8_t req_two_words[] = {0x00, 0x00, 0x00, 0x07, 0x80, 0x00, 0x12, 0x34, 'h', 'i'};
static const uint8_t nng_reply_two_words[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                              0x00, 0x0a, 0x00, 0x00, 0x00, 0x07, 0x80,
                                              0x00, 0x12, 0x34, 'o',  'k'};

/* nng 1.5.2: the reply to a request with hop words 1 ... 7 and request id 0x80000008 (eight
 * words: rep0's limit, served), sent right after one with nine words (dropped: no reply, and
 * the connection stayed open). */
static const uint8_t nng_reply_eight_words[] = {
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x05, 0x00,
    0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x07, 0x80, 0x00, 0x00, 0x08, 'o',  'k'};

/* words: a message of n backtrace words (1, 2, ..., with the high bit on word end, 0: none)
 * followed by body "x"; returns its length. */
static size_t
words(uint8_t *out, int n, int end)
{
    for (int i = 1; i <= n; i++) {
        jobq__spw_put32(out + 4 * (i - 1), (uint32_t)i | (i == end ? JOBQ__SPW_ID_BIT : 0));
    }
    out[4 * n] = 'x';
    return 4 * (size_t)n + 1;
}

static void
test_integers(void **state)
{
    (void)state;
    uint8_t b[8];
    jobq__spw_put64(b, 0x0102030405060708ull);
    static const uint8_t want64[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(b, want64, 8);
    assert_true(jobq__spw_get64(b) == 0x0102030405060708ull);
    jobq__spw_put64(b, UINT64_MAX);
    assert_true(jobq__spw_get64(b) == UINT64_MAX);
    jobq__spw_put32(b, 0xa1b2c3d4u);
    static const uint8_t want32[4] = {0xa1, 0xb2, 0xc3, 0xd4};
    assert_memory_equal(b, want32, 4);
    assert_int_equal(jobq__spw_get32(b), 0xa1b2c3d4u);
}

static void
test_handshake_matches_nng(void **state)
{
    (void)state;
    uint8_t hs[JOBQ__SPW_HANDSHAKE_LEN];
    jobq__spw_handshake(hs, JOBQ__SPW_PROTO_REQ);
    assert_memory_equal(hs, nng_req_hs, sizeof(hs));
    jobq__spw_handshake(hs, JOBQ__SPW_PROTO_REP);
    assert_memory_equal(hs, nng_rep_hs, sizeof(hs));
    assert_true(jobq__spw_handshake_ok(nng_rep_hs, JOBQ__SPW_PROTO_REP));
    assert_true(jobq__spw_handshake_ok(nng_req_hs, JOBQ__SPW_PROTO_REQ));
}

/* Any one byte changed makes a handshake unacceptable: the fixed bytes, the reserved ones and
 * the protocol; so does the other side's protocol, PAIR's, or an HTTP request. */
static void
test_handshake_refused(void **state)
{
    (void)state;
    for (int i = 0; i < JOBQ__SPW_HANDSHAKE_LEN; i++) {
        for (int v = 0; v < 256; v++) {
            if (v == nng_rep_hs[i]) {
                continue;
            }
            uint8_t hs[JOBQ__SPW_HANDSHAKE_LEN];
            memcpy(hs, nng_rep_hs, sizeof(hs));
            hs[i] = (uint8_t)v;
            assert_false(jobq__spw_handshake_ok(hs, JOBQ__SPW_PROTO_REP));
        }
    }
    static const uint8_t pair[8] = {0, 'S', 'P', 0, 0x00, 0x10, 0, 0};
    assert_false(jobq__spw_handshake_ok(pair, JOBQ__SPW_PROTO_REP));
    assert_false(jobq__spw_handshake_ok(nng_req_hs, JOBQ__SPW_PROTO_REP));
    assert_false(jobq__spw_handshake_ok(nng_rep_hs, JOBQ__SPW_PROTO_REQ));
    assert_false(jobq__spw_handshake_ok((const uint8_t *)"GET / HTTP/1.1", JOBQ__SPW_PROTO_REQ));
}

static void
test_request_head_matches_nng(void **state)
{
    (void)state;
    uint8_t out[JOBQ__SPW_REQ_HEAD_MAX + 2];
    /* The id as nng chose it, read back from its frame. */
    uint32_t id = jobq__spw_get32(nng_req_tcp + JOBQ__SPW_TCP_HDR);
    assert_true((id & JOBQ__SPW_ID_BIT) != 0);
    size_t h = jobq__spw_request_head(out, false, id, 2);
    assert_int_equal(h, JOBQ__SPW_TCP_HDR + 4);
    memcpy(out + h, "hi", 2);
    assert_int_equal(h + 2, sizeof(nng_req_tcp));
    assert_memory_equal(out, nng_req_tcp, sizeof(nng_req_tcp));

    id = jobq__spw_get32(nng_req_ipc + JOBQ__SPW_IPC_HDR);
    h = jobq__spw_request_head(out, true, id, 2);
    assert_int_equal(h, JOBQ__SPW_IPC_HDR + 4);
    memcpy(out + h, "hi", 2);
    assert_int_equal(h + 2, sizeof(nng_req_ipc));
    assert_memory_equal(out, nng_req_ipc, sizeof(nng_req_ipc));
}

static void
test_request_id(void **state)
{
    (void)state;
    assert_int_equal(jobq__spw_request_id(0), 0x80000000u);
    assert_int_equal(jobq__spw_request_id(1), 0x80000001u);
    assert_int_equal(jobq__spw_request_id(0x7fffffffu), 0xffffffffu);
    assert_int_equal(jobq__spw_request_id(0x80000000u), 0x80000000u); /* wraps past 2^31 */
    assert_int_equal(jobq__spw_request_id(0xffffffffu), 0xffffffffu);
    assert_int_equal(jobq__spw_request_id(0x2ce2388au), 0xace2388au);
}

/* The REP side of the two captured exchanges: the request's backtrace is split off as rep0
 * does, and the reply built from it is byte for byte what nng sent. */
static void
test_reply_matches_nng(void **state)
{
    (void)state;
    int nbt = jobq__spw_backtrace(req_two_words, sizeof(req_two_words), JOBQ__SPW_MAX_HOPS);
    assert_int_equal(nbt, 8);
    assert_memory_equal(req_two_words + nbt, "hi", 2);
    uint8_t out[JOBQ__SPW_REPLY_HEAD_MAX + 2];
    size_t h = jobq__spw_reply_head(out, true, req_two_words, (size_t)nbt, 2);
    memcpy(out + h, "ok", 2);
    assert_int_equal(h + 2, sizeof(nng_reply_two_words));
    assert_memory_equal(out, nng_reply_two_words, sizeof(nng_reply_two_words));

    uint8_t msg[64];
    size_t len = words(msg, 8, 8);
    nbt = jobq__spw_backtrace(msg, len, JOBQ__SPW_MAX_HOPS);
    assert_int_equal(nbt, JOBQ__SPW_BT_MAX);
    h = jobq__spw_reply_head(out, true, msg, (size_t)nbt, 2);
    memcpy(out + h, "ok", 2);
    assert_int_equal(h + 2, sizeof(nng_reply_eight_words));
    assert_memory_equal(out, nng_reply_eight_words, sizeof(nng_reply_eight_words));

    /* tcp:// carries the same message without the type byte. */
    h = jobq__spw_reply_head(out, false, req_two_words, 8, 2);
    assert_int_equal(h, JOBQ__SPW_TCP_HDR + 8);
    assert_memory_equal(out, nng_reply_two_words + 1, h);
}

/* The hop limit and malformed messages, decided in rep0's order: the hop limit before the
 * length, so nine words without an id are dropped, not malformed. */
static void
test_backtrace_limits(void **state)
{
    (void)state;
    uint8_t msg[128];
    size_t len = words(msg, 9, 9); /* the nine-word request nng 1.5.2 dropped */
    assert_int_equal(jobq__spw_backtrace(msg, len, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_DROP);
    assert_int_equal(jobq__spw_backtrace(msg, len, 9), 36);
    assert_int_equal(jobq__spw_backtrace(msg, len, 15), 36);
    len = words(msg, 2, 2);
    assert_int_equal(jobq__spw_backtrace(msg, len, 1), JOBQ__SPW_BT_DROP);
    assert_int_equal(jobq__spw_backtrace(msg, len, 2), 8);
    len = words(msg, 1, 1);
    assert_int_equal(jobq__spw_backtrace(msg, len, 1), 4);
    assert_int_equal(jobq__spw_backtrace(msg, 4, 1), 4); /* an empty body */

    /* No request id before the end. */
    assert_int_equal(jobq__spw_backtrace(msg, 0, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_MALFORMED);
    assert_int_equal(jobq__spw_backtrace(msg, 3, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_MALFORMED);
    len = words(msg, 3, 0);
    assert_int_equal(jobq__spw_backtrace(msg, len, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_MALFORMED);
    assert_int_equal(jobq__spw_backtrace(msg, 12, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_MALFORMED);
    /* Eight words, none an id, and nothing after them: the ninth hop is over the limit. */
    (void)words(msg, 8, 0);
    assert_int_equal(jobq__spw_backtrace(msg, 32, JOBQ__SPW_MAX_HOPS), JOBQ__SPW_BT_DROP);
    /* Only the high bit of a word's first byte counts. */
    static const uint8_t low[] = {0x00, 0x00, 0x00, 0x80, 0x00, 0x80, 0x00, 0x00};
    assert_int_equal(jobq__spw_backtrace(low, sizeof(low), JOBQ__SPW_MAX_HOPS),
                     JOBQ__SPW_BT_MALFORMED);
}

static void
test_frame_headers(void **state)
{
    (void)state;
    uint64_t len = 0;
    /* The captured frames parse to their message lengths. */
    assert_int_equal(jobq__spw_frame_get(nng_req_tcp, sizeof(nng_req_tcp), false, &len),
                     JOBQ__SPW_FRAME_OK);
    assert_true(len == 6);
    assert_int_equal(jobq__spw_frame_get(nng_req_ipc, sizeof(nng_req_ipc), true, &len),
                     JOBQ__SPW_FRAME_OK);
    assert_true(len == 6);
    assert_int_equal(jobq__spw_frame_get(nng_reply_eight_words, 9, true, &len),
                     JOBQ__SPW_FRAME_OK);
    assert_true(len == 34);
    /* Short headers ask for more, whatever their bytes. */
    for (size_t n = 0; n < JOBQ__SPW_TCP_HDR; n++) {
        assert_int_equal(jobq__spw_frame_get(nng_req_tcp, n, false, &len), JOBQ__SPW_FRAME_SHORT);
    }
    for (size_t n = 0; n < JOBQ__SPW_IPC_HDR; n++) {
        assert_int_equal(jobq__spw_frame_get(nng_req_ipc, n, true, &len), JOBQ__SPW_FRAME_SHORT);
    }
    /* An ipc:// frame of another type is refused; tcp:// has no type byte. */
    uint8_t h[JOBQ__SPW_HDR_MAX];
    assert_int_equal(jobq__spw_frame_put(h, true, 5), JOBQ__SPW_IPC_HDR);
    for (int t = 0; t < 256; t++) {
        h[0] = (uint8_t)t;
        len = 0;
        assert_int_equal(jobq__spw_frame_get(h, sizeof(h), true, &len),
                         t == JOBQ__SPW_IPC_MSG ? JOBQ__SPW_FRAME_OK : JOBQ__SPW_FRAME_BADTYPE);
        assert_true(len == (t == JOBQ__SPW_IPC_MSG ? 5u : 0u));
    }
    /* Lengths round-trip, the largest too (a limit is the reader's). */
    static const uint64_t lens[] = {0, 1, 255, 256, (uint64_t)1 << 30, (uint64_t)2 << 30,
                                    (uint64_t)1 << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int ipc = 0; ipc < 2; ipc++) {
            size_t n = jobq__spw_frame_put(h, ipc, lens[i]);
            assert_int_equal(n, jobq__spw_frame_hdr_len(ipc));
            assert_int_equal(jobq__spw_frame_get(h, n, ipc, &len), JOBQ__SPW_FRAME_OK);
            assert_true(len == lens[i]);
        }
    }
    static const uint8_t two_gib[9] = {1, 0, 0, 0, 0, 0x80, 0, 0, 0};
    assert_int_equal(jobq__spw_frame_put(h, true, (uint64_t)2 << 30), JOBQ__SPW_IPC_HDR);
    assert_memory_equal(h, two_gib, sizeof(two_gib));
}

/* read_all: n bytes from fd (which has a receive timeout), or fails the test. */
static void
read_all(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

static void
write_all(int fd, const void *buf, size_t n)
{
    assert_int_equal(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* unix_socket: a unix socket with a receive timeout, and path's address. */
static int
unix_socket(const char *path, struct sockaddr_un *sun)
{
    *sun = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = LIVE_TIMEOUT_MS / 1000};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

/* The codec against the installed libnng over ipc://: an nng REQ socket's handshake and
 * request parse, and it takes a reply built here; an nng REP socket's handshake parses, it
 * takes a request with a hop word built here and answers with the whole backtrace. */
static void
test_live_nng(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_spwire.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[200], url[220];
    uint8_t buf[256], hs[JOBQ__SPW_HANDSHAKE_LEN];
    uint64_t len;

    /* nng's REQ against a plain listening socket speaking REP through the codec. */
    snprintf(path, sizeof(path), "%s/rep.sock", dir);
    snprintf(url, sizeof(url), "ipc://%s", path);
    struct sockaddr_un sun;
    int lfd = unix_socket(path, &sun);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    nng_socket req;
    assert_int_equal(nng_req0_open(&req), 0);
    assert_int_equal(nng_socket_set_ms(req, NNG_OPT_RECVTIMEO, LIVE_TIMEOUT_MS), 0);
    assert_int_equal(nng_socket_set_ms(req, NNG_OPT_SENDTIMEO, LIVE_TIMEOUT_MS), 0);
    assert_int_equal(nng_dial(req, url, NULL, NNG_FLAG_NONBLOCK), 0);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    jobq__spw_handshake(hs, JOBQ__SPW_PROTO_REP);
    write_all(fd, hs, sizeof(hs));
    read_all(fd, buf, JOBQ__SPW_HANDSHAKE_LEN);
    assert_true(jobq__spw_handshake_ok(buf, JOBQ__SPW_PROTO_REQ));
    assert_int_equal(nng_send(req, "hi", 2, 0), 0);
    read_all(fd, buf, JOBQ__SPW_IPC_HDR + 4 + 2);
    assert_int_equal(jobq__spw_frame_get(buf, JOBQ__SPW_IPC_HDR, true, &len), JOBQ__SPW_FRAME_OK);
    assert_true(len == 4 + 2);
    uint8_t *id = buf + JOBQ__SPW_IPC_HDR;
    assert_int_equal(jobq__spw_backtrace(id, 6, JOBQ__SPW_MAX_HOPS), 4);
    assert_memory_equal(id + 4, "hi", 2);
    uint8_t reply[JOBQ__SPW_REPLY_HEAD_MAX + 2];
    size_t h = jobq__spw_reply_head(reply, true, id, 4, 2);
    memcpy(reply + h, "ok", 2);
    write_all(fd, reply, h + 2);
    char *got = NULL;
    size_t n = 0;
    assert_int_equal(nng_recv(req, &got, &n, NNG_FLAG_ALLOC), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(got, "ok", 2);
    nng_free(got, n);
    nng_close(req);
    close(fd);
    close(lfd);
    unlink(path);

    /* nng's REP against a plain socket speaking REQ through the codec, through one device. */
    snprintf(path, sizeof(path), "%s/req.sock", dir);
    snprintf(url, sizeof(url), "ipc://%s", path);
    nng_socket rep;
    assert_int_equal(nng_rep0_open(&rep), 0);
    assert_int_equal(nng_socket_set_ms(rep, NNG_OPT_RECVTIMEO, LIVE_TIMEOUT_MS), 0);
    assert_int_equal(nng_listen(rep, url, NULL, 0), 0);
    fd = unix_socket(path, &sun);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    jobq__spw_handshake(hs, JOBQ__SPW_PROTO_REQ);
    write_all(fd, hs, sizeof(hs));
    read_all(fd, buf, JOBQ__SPW_HANDSHAKE_LEN);
    assert_true(jobq__spw_handshake_ok(buf, JOBQ__SPW_PROTO_REP));
    /* req_two_words: a device's hop word 7, then request id 0x80001234 and "hi". */
    uint8_t request[JOBQ__SPW_HDR_MAX + sizeof(req_two_words)];
    h = jobq__spw_frame_put(request, true, sizeof(req_two_words));
    memcpy(request + h, req_two_words, sizeof(req_two_words));
    write_all(fd, request, h + sizeof(req_two_words));
    assert_int_equal(nng_recv(rep, &got, &n, NNG_FLAG_ALLOC), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(got, "hi", 2);
    nng_free(got, n);
    assert_int_equal(nng_send(rep, "ok", 2, 0), 0);
    read_all(fd, buf, sizeof(nng_reply_two_words));
    assert_memory_equal(buf, nng_reply_two_words, sizeof(nng_reply_two_words));
    nng_close(rep);
    close(fd);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_handshake_matches_nng),
        cmocka_unit_test(test_handshake_refused),
        cmocka_unit_test(test_request_head_matches_nng),
        cmocka_unit_test(test_request_id),
        cmocka_unit_test(test_reply_matches_nng),
        cmocka_unit_test(test_backtrace_limits),
        cmocka_unit_test(test_frame_headers),
        cmocka_unit_test(test_live_nng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
