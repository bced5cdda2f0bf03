/* spwire.c: nng's SP wire format as pure functions over bytes (handshake, frame headers,
 * request and reply heads, the REP backtrace with its hop limit); see spwire.h. */
#include "spwire.h"

#include <string.h>

void
jobq__spw_handshake(uint8_t *out, uint16_t proto)
{
    out[0] = 0;
    out[1] = 'S';
    out[2] = 'P';
    out[3] = 0;
    out[4] = (uint8_t)(proto >> 8);
    out[5] = (uint8_t)proto;
    out[6] = 0;
    out[7] = 0;
}

bool
jobq__spw_handshake_ok(const uint8_t *in, uint16_t want)
{
    /* The transports' check (tcptran_pipe_nego_cb in tcp.c, ipc_pipe_neg_cb in ipc.c), then
     * the protocols' (req0_pipe_start, rep0_pipe_start: the peer must be the one they serve). */
    if (in[0] != 0 || in[1] != 'S' || in[2] != 'P' || in[3] != 0 || in[6] != 0 || in[7] != 0) {
        return false;
    }
    return ((uint16_t)in[4] << 8 | in[5]) == want;
}

size_t
jobq__spw_frame_put(uint8_t *out, bool ipc, uint64_t len)
{
    size_t h = 0;
    if (ipc) {
        out[h++] = JOBQ__SPW_IPC_MSG;
    }
    jobq__spw_put64(out + h, len);
    return h + 8;
}

jobq__spw_frame
jobq__spw_frame_get(const uint8_t *in, size_t avail, bool ipc, uint64_t *lenp)
{
    size_t h = jobq__spw_frame_hdr_len(ipc);
    if (avail < h) {
        return JOBQ__SPW_FRAME_SHORT;
    }
    if (ipc && in[0] != JOBQ__SPW_IPC_MSG) {
        return JOBQ__SPW_FRAME_BADTYPE;
    }
    *lenp = jobq__spw_get64(in + h - 8);
    return JOBQ__SPW_FRAME_OK;
}

size_t
jobq__spw_request_head(uint8_t *out, bool ipc, uint32_t id, size_t body_len)
{
    size_t h = jobq__spw_frame_put(out, ipc, (uint64_t)body_len + 4);
    jobq__spw_put32(out + h, id);
    return h + 4;
}

size_t
jobq__spw_reply_head(uint8_t *out, bool ipc, const uint8_t *bt, size_t nbt, size_t body_len)
{
    size_t h = jobq__spw_frame_put(out, ipc, (uint64_t)nbt + body_len);
    memcpy(out + h, bt, nbt);
    return h + nbt;
}

int
jobq__spw_backtrace(const uint8_t *msg, size_t len, int max_hops)
{
    /* rep0_pipe_recv_cb: for each word, first the hop limit (too many: drop, the peer may be
     * a device), then the length (no whole word left: the peer speaks garbage). */
    size_t nbt = 0;
    for (int hops = 1;; hops++) {
        if (hops > max_hops) {
            return JOBQ__SPW_BT_DROP;
        }
        if (len - nbt < 4) {
            return JOBQ__SPW_BT_MALFORMED;
        }
        bool end = (msg[nbt] & 0x80) != 0;
        nbt += 4;
        if (end) {
            return (int)nbt;
        }
    }
}
