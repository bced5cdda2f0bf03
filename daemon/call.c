/* call.c: one request in progress on the loop: its replies, its store operation, its end. */
#include "call.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "hold.h"
#include "log.h"

void
send_json(call *c, json_t *obj)
{
    if (hold_gone(c)) {
        json_decref(obj);
        call_drop(c);
        return;
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (text == NULL) {
        static const char oom[] =
            "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        intake_reply(c->ic, oom, sizeof(oom) - 1);
    } else {
        intake_reply(c->ic, text, strlen(text));
        free(text);
    }
    call_free(c);
}

/* reply_error: sends {"ok":false,"error":{code,message}} and logs it. */
void
reply_error(call *c, const char *code, const char *message)
{
    char q[300];
    log_info("request_error", "code=%s msg=%s", code, log_quote(q, sizeof(q), message));
    send_json(c,
              json_pack("{s:b, s:{s:s, s:s}}", "ok", 0, "error", "code", code, "message", message));
}

void
reply_err(call *c, int err, const char *message)
{
    reply_error(c, jobq__err_code(err), message);
}

json_t *
ok_object(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "ok", json_true());
    return o;
}

json_t *
nullable_str(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static json_t *
nullable_time(int64_t ms)
{
    return ms != 0 ? json_integer(ms) : json_null();
}

/* job_json: the job object of proto/PROTOCOL.md. */
json_t *
job_json(const job_row *r)
{
    json_t *payload = json_loads(r->payload, JSON_DECODE_ANY, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(r->id));
    json_object_set_new(o, "queue", json_string(r->queue));
    json_object_set_new(o, "payload", payload != NULL ? payload : json_string(r->payload));
    json_object_set_new(o, "priority", json_integer(r->priority));
    json_object_set_new(o, "state", json_string(jobq__state_name(r->state)));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    json_object_set_new(o, "max_attempts", json_integer(r->max_attempts));
    json_object_set_new(o, "timeout", json_integer(r->timeout_ms));
    json_object_set_new(o, "key", nullable_str(r->key));
    json_object_set_new(o, "run_at", json_integer(r->run_at_ms));
    json_object_set_new(o, "created_at", json_integer(r->created_at_ms));
    json_object_set_new(o, "started_at", nullable_time(r->started_at_ms));
    json_object_set_new(o, "finished_at", nullable_time(r->finished_at_ms));
    json_object_set_new(o, "result", nullable_str(r->result));
    json_object_set_new(o, "error", nullable_str(r->error));
    if (r->group_id != 0) {
        json_object_set_new(o, "group", json_integer(r->group_id));
    }
    if (r->traceparent != NULL) {
        json_object_set_new(o, "traceparent", json_string(r->traceparent));
        if (r->tracestate != NULL) {
            json_object_set_new(o, "tracestate", json_string(r->tracestate));
        }
    }
    json_object_set_new(o, "progress", r->has_progress ? json_real(r->progress) : json_null());
    json_object_set_new(o, "note", nullable_str(r->note));
    json_t *cp = r->checkpoint != NULL ? json_loads(r->checkpoint, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(o, "checkpoint", cp != NULL ? cp : json_null());
    if (r->group_key != NULL) {
        json_object_set_new(o, "group_key", json_string(r->group_key));
    }
    return o;
}

void
call_free(call *c)
{
    if (c == NULL) {
        return;
    }
    hold_release(c);
    job_row_clear(&c->row);
    for (size_t i = 0; i < c->nattempts; i++) {
        attempt_row_clear(&c->attempts[i]);
    }
    free(c->attempts);
    for (size_t i = 0; i < c->nlogs; i++) {
        log_row_clear(&c->logs[i]);
    }
    free(c->logs);
    for (size_t i = 0; i < c->nnames; i++) {
        free(c->names[i]);
    }
    free(c->names);
    for (size_t i = 0; i < c->nrows; i++) {
        job_row_clear(&c->rows[i]);
    }
    free(c->rows);
    free(c->sub.specs);
    free(c->states);
    group_info_clear(&c->grp);
    json_decref(c->extra);
    json_decref(c->fetched);
    jobq__request_free(&c->req);
    free(c);
}

void
call_drop(call *c)
{
    intake_drop(c->ic);
    call_free(c);
}

void
call_store(call *c, int (*exec)(store *, wop *, int64_t), void (*done)(wop *))
{
    c->op.exec = exec;
    c->op.done = done;
    c->op.writes = (jobq__op_flags(c->req.op) & OPF_WRITES) != 0;
    writer_push(&c->srv->w, &c->op);
}

void
call_hold_ended(call *c, int why)
{
    if (why == HOLD_DROPPED) {
        call_drop(c);
    } else {
        reply_error(c, "shutting_down", "jobqd is shutting down; wait again when it is back");
    }
}
