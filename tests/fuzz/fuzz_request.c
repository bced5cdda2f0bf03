/* fuzz_request.c: libFuzzer target for the request decoder (proto/request.c): arbitrary bytes
 * into jobq__request_decode, checking the decoded struct or the error against its contract.
 *
 * The first input byte selects the mode and is not part of the message: bit 0 set requires
 * the token FUZZ_TOKEN (as a daemon with auth_token does); bit 1 set uses tiny limits so the
 * too_large paths are reachable with short inputs. Otherwise the limits are jobqd's
 * defaults. Seeds (tests/fuzz/corpus/request/) start with ' ' (plain) or '!' (token).
 * Every input also goes through the decoder's fast scanner alone (submits, and acks and fails
 * of many jobs with their fetch), which must decode whatever it takes exactly as its JSON
 * reader does: both run the same field table and checks, and this differential check guards
 * that they keep agreeing. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "request.h"

#define FUZZ_TOKEN "fuzz-token-0123456789"
#define ERR_SIZE 512           /* as in daemon/server.c on_request */
#define REQ_LAST (REQ_NOPS - 1) /* the last req_op; -Wswitch in check_ok flags a new one */

/* check: aborts with the failed invariant (libFuzzer then saves the input as a crash). */
#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_request: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const request_limits default_limits = {
    .max_batch = 10000,
    .max_wait_ids = 1000,
    .max_wait_ms = 3600 * 1000,
    .max_payload = 1024 * 1024,
    .max_after = 100,
    .token = NULL,
};

static const request_limits tiny_limits = {
    .max_batch = 3,
    .max_wait_ids = 2,
    .max_wait_ms = 60 * 1000,
    .max_payload = 16,
    .max_after = 2,
    .token = NULL,
};

/* known_code: the error codes jobq__request_decode may return (proto/request.h, PROTOCOL.md). */
static bool
known_code(const char *code)
{
    static const char *const codes[] = {"malformed",    "unknown_op",        "invalid_argument",
                                        "too_large",    "payload_too_large", "batch_too_large",
                                        "unauthorized", "internal"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (strcmp(code, codes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* check_name: a borrowed string that must be a valid queue name; reading it lets ASan see a
 * dangling pointer. */
static void
check_name(const char *name)
{
    check(name != NULL);
    check(jobq__valid_queue_name(name));
}

/* check_job: one decoded job of a submit or submit_batch; src is its JSON object. */
static void
check_job(const req_job *j, const json_t *src, const request_limits *lim)
{
    check_name(j->queue);
    check(j->payload != NULL);
    check(strlen(j->payload) <= lim->max_payload);
    check(j->max_attempts >= 0 && j->max_attempts <= 1000000);
    check(j->timeout_ms >= 0 && j->delay_ms >= 0);
    check(j->timeout_ms <= JOBQ__DURATION_MAX_MS && j->delay_ms <= JOBQ__DURATION_MAX_MS);
    check(!j->has_run_at || (j->run_at_ms >= 0 && j->run_at_ms <= jobq__run_at_max_ms()));
    if (j->key != NULL) {
        size_t n = strlen(j->key);
        check(n >= 1 && n <= 512);
    }
    /* The payload is JSON text that decodes back to the value that was sent. */
    json_error_t jerr;
    json_t *back = json_loads(j->payload, JSON_DECODE_ANY, &jerr);
    if (back == NULL) {
        fprintf(stderr, "fuzz_request: payload %s is not JSON: %s\n", j->payload, jerr.text);
    }
    check(back != NULL);
    json_t *sent = json_object_get(src, "payload");
    check(json_equal(back, sent != NULL ? sent : json_null()));
    if (j->key != NULL) {
        check(j->payload_hash == jobq__payload_hash(back));
    }
    json_decref(back);
    check((j->nafter == 0) == (j->after == NULL));
    check(j->nafter <= lim->max_after);
    for (size_t i = 0; i < j->nafter; i++) {
        check(j->after[i] >= 1);
    }
}

/* check_ok: the invariants of a successful decode. */
static void
check_ok(const request *req, const request_limits *lim)
{
    check(req->op >= REQ_PING && req->op <= REQ_LAST);
    check(json_is_object(req->root));
    switch (req->op) {
    case REQ_NOPS: /* not an op: excluded by the check above */
    case REQ_PING:
    case REQ_STATS:
    case REQ_SCHEDULES:
    case REQ_NODES:
        break;
    case REQ_SUBMIT:
        check(req->njobs == 1 && req->jobs != NULL);
        check_job(&req->jobs[0], req->root, lim);
        break;
    case REQ_SUBMIT_BATCH: {
        const json_t *jobs = json_object_get(req->root, "jobs");
        check(req->njobs >= 1 && req->njobs <= lim->max_batch && req->jobs != NULL);
        check(req->njobs == json_array_size(jobs));
        for (size_t i = 0; i < req->njobs; i++) {
            check_job(&req->jobs[i], json_array_get(jobs, i), lim);
        }
        check(req->on_complete == NULL || req->group);
        if (req->on_complete != NULL) {
            check_job(req->on_complete, json_object_get(req->root, "on_complete"), lim);
            check(req->on_complete->nafter == 0 && req->on_complete->key == NULL);
        }
        break;
    }
    case REQ_SCHEDULE_ADD:
        check(req->sched_cron != NULL && req->queue != NULL);
        /* fall through */
    case REQ_SCHEDULE_UPDATE:
        check(req->sched_missed >= -1 && req->sched_missed <= 1);
        check(req->sched_overlap >= -1 && req->sched_overlap <= 1);
        check(req->sched_cron == NULL || strlen(req->sched_cron) <= 256);
        check(req->queue == NULL || strlen(req->queue) <= 64);
        /* fall through */
    case REQ_SCHEDULE_PAUSE:
    case REQ_SCHEDULE_RESUME:
    case REQ_SCHEDULE_TRIGGER:
    case REQ_SCHEDULE_DELETE:
        check_name(req->sched_name);
        break;
    case REQ_RETRY:
        if (req->nids == 0) {
            check(req->state == JOBQ_DEAD || req->state == JOBQ_CANCELLED);
            check(req->queue == NULL || strlen(req->queue) <= 64);
            break;
        }
        /* fall through */
    case REQ_GET:
        if (req->group_id != 0) {
            check(req->group_id >= 1 && req->nids == 0);
            break;
        }
        /* fall through */
    case REQ_CANCEL:
    case REQ_EXPLAIN:
    case REQ_PROMOTE:
        check(req->nids == 1 && req->ids[0] >= 1);
        break;
    case REQ_WAIT:
        check(req->group_id == 0 ? req->nids >= 1 : req->nids == 0 && req->group_id >= 1);
        check(req->nids <= lim->max_wait_ids);
        for (size_t i = 0; i < req->nids; i++) {
            check(req->ids[i] >= 1);
        }
        check(req->timeout_ms >= 0 && req->timeout_ms <= lim->max_wait_ms);
        check(req->return_when >= WAIT_ALL && req->return_when <= WAIT_FIRST_FAILURE);
        break;
    case REQ_LIST:
        check(req->state >= -1 && req->state <= JOBQ_WAITING);
        check(req->after_id >= 0);
        check(req->limit >= 1 && req->limit <= 1000);
        check(req->queue == NULL || strlen(req->queue) <= 64);
        break;
    case REQ_FETCH:
        check(req->nqueues >= 1 && req->nqueues <= 64);
        for (size_t i = 0; i < req->nqueues; i++) {
            check_name(req->queues[i]);
        }
        check(req->limit >= 1 && req->limit <= 100);
        check(req->timeout_ms >= 0 && req->timeout_ms <= 5 * 60 * 1000);
        check(req->worker == NULL || strlen(req->worker) <= 128);
        break;
    case REQ_ACK:
    case REQ_FAIL:
    case REQ_HEARTBEAT:
        if (req->outcomes != NULL) { /* an ack or fail of many jobs */
            check(req->op != REQ_HEARTBEAT && req->nids == 0 && req->lease == NULL);
            check(req->noutcomes >= 1 && req->noutcomes <= REQ_OUTCOMES_MAX);
            for (size_t i = 0; i < req->noutcomes; i++) {
                const req_outcome *o = &req->outcomes[i];
                check(o->id >= 1 && o->lease != NULL);
                check(strlen(o->lease) >= 1 && strlen(o->lease) <= 64);
                check(o->text == NULL || strlen(o->text) < SIZE_MAX);
                check(o->snooze_ms >= 0 && o->snooze_ms <= JOBQ__DURATION_MAX_MS);
            }
            check(!req->then_fetch || (req->nqueues >= 1 && req->nqueues <= 64));
            for (size_t i = 0; i < req->nqueues; i++) {
                check_name(req->queues[i]);
            }
            break;
        }
        check(req->nids == 1 && req->ids[0] >= 1);
        check(req->lease != NULL && strlen(req->lease) >= 1 && strlen(req->lease) <= 64);
        check(req->text == NULL || strlen(req->text) < SIZE_MAX);
        if (req->op == REQ_HEARTBEAT) {
            check(!req->has_progress || (req->progress >= 0 && req->progress <= 100));
            check(req->note == NULL || strlen(req->note) <= REQ_NOTE_MAX);
            check(req->checkpoint == NULL || strlen(req->checkpoint) <= REQ_CHECKPOINT_MAX);
            for (size_t i = 0; i < req->nlog; i++) {
                check(strlen(req->log[i]) <= REQ_LOG_LINE_MAX);
            }
        }
        break;
    case REQ_BACKUP:
        check(req->path != NULL && req->path[0] == '/' && strlen(req->path) <= 4096);
        break;
    case REQ_PAUSE:
    case REQ_RESUME:
        check(req->queue != NULL && strlen(req->queue) >= 1 && strlen(req->queue) <= 64);
        break;
    case REQ_MUTATE: {
        bool filtered = req->queue != NULL || req->states != 0 || req->nids > 0 ||
                        req->created_after_ms != 0 || req->created_before_ms != 0 ||
                        req->finished_after_ms != 0 || req->finished_before_ms != 0 ||
                        req->error_contains != NULL || req->key_prefix != NULL;
        check(filtered || req->all);
        check(req->action >= 0 && req->action < MUT_NACTIONS);
        check(req->states < (1u << (JOBQ_WAITING + 1)));
        check(req->nids <= REQ_MUTATE_MAX_IDS);
        for (size_t i = 0; i < req->nids; i++) {
            check(req->ids[i] >= 1);
        }
        check(req->action != MUT_RESCHEDULE || req->has_run_at);
        check(req->after_id >= 0 && req->limit >= 0);
        break;
    }
    case REQ_LOGS:
        check(req->nids == 1 && req->ids[0] >= 1);
        check(req->limit >= 1 && req->limit <= 1000 && req->after_id >= 0);
        break;
    }
}

/* check_same: the fast path's decode equals the JSON decoder's, field by field. */
static void
check_same(const request *fast, const request *json)
{
    check(fast->op == json->op && fast->njobs == json->njobs && fast->root == NULL);
    check(fast->group == json->group && fast->on_complete == NULL && json->on_complete == NULL);
    check(fast->group_id == json->group_id);
    for (size_t i = 0; i < fast->njobs; i++) {
        const req_job *a = &fast->jobs[i], *b = &json->jobs[i];
        if (strcmp(a->queue, b->queue) != 0 || strcmp(a->payload, b->payload) != 0) {
            fprintf(stderr, "fuzz_request: jobs[%zu]: fast %s %s, json %s %s\n", i, a->queue,
                    a->payload, b->queue, b->payload);
        }
        check(strcmp(a->queue, b->queue) == 0);
        check(strcmp(a->payload, b->payload) == 0);
        check(a->payload_hash == b->payload_hash && a->priority == b->priority);
        check(a->has_run_at == b->has_run_at && a->run_at_ms == b->run_at_ms);
        check(a->delay_ms == b->delay_ms && a->max_attempts == b->max_attempts);
        check(a->timeout_ms == b->timeout_ms && a->key == NULL && b->key == NULL);
        check(a->after == NULL && a->nafter == 0 && b->nafter == 0);
        check(a->after_always == b->after_always);
    }
    /* ack and fail of many jobs, with or without a fetch */
    check(fast->noutcomes == json->noutcomes && (fast->outcomes == NULL) == (json->outcomes == NULL));
    for (size_t i = 0; i < fast->noutcomes; i++) {
        const req_outcome *a = &fast->outcomes[i], *b = &json->outcomes[i];
        check(a->id == b->id && strcmp(a->lease, b->lease) == 0);
        check((a->text == NULL) == (b->text == NULL));
        check(a->text == NULL || strcmp(a->text, b->text) == 0);
        check(a->retry == b->retry && a->snooze_ms == b->snooze_ms);
    }
    check(fast->then_fetch == json->then_fetch && fast->nqueues == json->nqueues);
    for (size_t i = 0; i < fast->nqueues; i++) {
        check(strcmp(fast->queues[i], json->queues[i]) == 0);
    }
    check(fast->limit == json->limit && fast->timeout_ms == json->timeout_ms);
    check((fast->worker == NULL) == (json->worker == NULL));
    check(fast->worker == NULL || strcmp(fast->worker, json->worker) == 0);
    check(fast->queue == NULL && json->queue == NULL && fast->lease == NULL);
    check(fast->text == NULL && fast->retry == json->retry && fast->nids == json->nids);
    check(fast->slow_down_ms == json->slow_down_ms && fast->snooze_ms == json->snooze_ms);
    check(fast->read_only == json->read_only);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    request_limits lim = (data[0] & 2) ? tiny_limits : default_limits;
    if (data[0] & 1) {
        lim.token = FUZZ_TOKEN;
    }
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;

    request req;
    char err[ERR_SIZE];
    memset(err, 0x5a, sizeof(err)); /* no NUL: a missing terminator shows */
    /* The fast path takes a subset of what the JSON decoder takes, and decodes it the same. */
    request fast;
    bool fast_ok = jobq__request_decode_fast(msg, len, &lim, &fast);
    if (!fast_ok) {
        check(fast.root == NULL && fast.jobs == NULL && fast.njobs == 0);
    }
    const char *code = jobq__request_decode_json(msg, len, &lim, &req, err, sizeof(err));
    if (fast_ok) {
        if (code != NULL) {
            fprintf(stderr, "fuzz_request: the fast path took what the JSON decoder refused: %s\n",
                    err);
        }
        check(code == NULL);
        check_same(&fast, &req);
        jobq__request_free(&fast);
    }
    if (code == NULL) {
        check_ok(&req, &lim);
        jobq__request_free(&req);
        check(req.root == NULL && req.jobs == NULL && req.njobs == 0);
    } else {
        check(known_code(code));
        check(memchr(err, '\0', sizeof(err)) != NULL);
        check(err[0] != '\0');
        /* "*req then holds nothing to free": freeing the zeroed struct must be harmless. */
        check(req.root == NULL && req.jobs == NULL && req.ids == NULL && req.queues == NULL);
        jobq__request_free(&req);
    }
    return 0;
}
