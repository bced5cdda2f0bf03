/* webhook.c: delivers jobs of url queues as HTTP POSTs (nng's HTTP client; https:// with the
 * receiver's certificate verified), signed with the queue's secret, and maps the answer: 2xx
 * success (with a Jobq-Snooze header: snoozed); 429 or 503 with Retry-After: retry no earlier
 * than it says; other 5xx, connection errors and timeouts: failure with backoff (counted by the
 * breaker); other 4xx: dead. */
#include "webhook.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <nng/supplemental/tls/tls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attempt.h"
#include "backoff.h"
#include "clock.h"
#include "codec.h"
#include "duration.h"
#include "list.h"
#include "log.h"
#include "loopq.h"
#include "sha256.h"

/* The CA bundle of the system (Debian's ca-certificates), for https receivers without ca. */
#define SYSTEM_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

typedef struct hook {
    attempt a;
    nng_url *url;
    nng_http_client *cli;
    nng_http_req *req;
    nng_http_res *res;
    nng_aio *aio;
    enum run_kill kill;
    char stop_why[64]; /* a cancel's reason for the recorded error ("": the default) */
    int setup_err; /* the request could not be built: an nng error */
    bool rerecord; /* the store refused the outcome: aio sleeps, then the record is retried */
    uint64_t started_ns;
    loopq_node done;          /* in the completion queue, from nng's thread to the loop */
    struct hook *next, *prev; /* in s->hooks */
} hook;

/* The completion channel: nng's callbacks queue finished deliveries for the loop. */
typedef struct hookq {
    loopq *done;
    hook *all; /* loop-owned: deliveries in flight */
} hookq;

static hookq *
hq_of(server *s)
{
    return s->hooks;
}

int64_t
webhook_snooze_ms(const char *v)
{
    if (v == NULL) {
        return -1;
    }
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end != v && n >= 0 && *end == '\0' && n <= JOBQ__DURATION_MAX_MS / 1000) {
        return n * 1000; /* whole seconds, as Retry-After */
    }
    int64_t ms;
    if (v[0] >= '0' && v[0] <= '9' && jobq__duration_scan(v, false, &ms) && ms >= 0 &&
        ms <= JOBQ__DURATION_MAX_MS) {
        return ms;
    }
    return -1;
}

run_outcome
webhook_outcome(int status, bool timed_out, enum run_kill kill, int64_t retry_after_s,
                int32_t attempt_no, int32_t max_attempts, const queue_conf *qc, int64_t now_ms,
                uint64_t rnd)
{
    outcome_verdict v = VERDICT_RETRYABLE;
    outcome_kind why = status == 0 ? OUTCOME_CONNECT : OUTCOME_HTTP;
    if (timed_out) {
        why = OUTCOME_TIMEOUT;
    } else if (kill == KILL_CANCEL) {
        v = VERDICT_CANCELLED;
    } else if (kill == KILL_SHUTDOWN) {
        v = VERDICT_SHUTDOWN;
    } else if (status >= 200 && status < 300) {
        v = VERDICT_SUCCESS;
    } else if (status >= 400 && status < 500 && status != 429) {
        v = VERDICT_PERMANENT; /* the request itself is wrong: retrying cannot help */
    }
    run_outcome o = outcome_decide(v, why, attempt_no, max_attempts, qc->backoff_base_ms,
                                   qc->backoff_max_ms, now_ms, rnd);
    if (v == VERDICT_RETRYABLE && why != OUTCOME_TIMEOUT && o.state == JOBQ_RETRYING &&
        (status == 429 || status == 503) && retry_after_s >= 0) {
        int64_t not_before = now_ms + retry_after_s * 1000;
        if (o.run_at_ms < not_before) {
            o.run_at_ms = not_before;
        }
    }
    return o;
}

static void
hook_free(hook *h)
{
    if (h->aio != NULL) {
        nng_aio_free(h->aio);
    }
    if (h->req != NULL) {
        nng_http_req_free(h->req);
    }
    if (h->res != NULL) {
        nng_http_res_free(h->res);
    }
    if (h->cli != NULL) {
        nng_http_client_free(h->cli);
    }
    if (h->url != NULL) {
        nng_url_free(h->url);
    }
    attempt_clear(&h->a);
    free(h);
}

/* aio_cb: nng's thread: the transaction ended; the loop takes it from here. */
static void
aio_cb(void *arg)
{
    hook *h = arg;
    /* Refused only once the loop is ending, when no delivery is in flight any more. */
    (void)loopq_push(hq_of(h->a.s)->done, &h->done);
}

static void
unlink_hook(server *s, hook *h)
{
    JOBQ_LIST_UNLINK(hq_of(s)->all, h, next, prev);
    s->nrunning--;
    h->a.q->running--;
}

static void
recorded_cb(attempt *a, int err)
{
    hook *h = container_of(a, hook, a);
    if (err != JOBQ_OK && !a->s->draining) {
        /* The store refused the outcome (disk full, I/O error): the job stays running in the
         * database; try again in a second rather than lose the outcome. */
        log_error("record_failed", "job=%lld err=%s retry_ms=1000", (long long)a->job.id,
                  jobq__err_code(err));
        h->rerecord = true;
        return;
    }
    if (err != JOBQ_OK) {
        /* Shutting down: the job stays running in the database and the recovery at the next
         * start makes it ready again. */
        log_error("record_failed", "job=%lld err=%s next=recovered_at_start", (long long)a->job.id,
                  jobq__err_code(err));
    }
    unlink_hook(a->s, h);
}

static void
release_cb(attempt *a)
{
    hook *h = container_of(a, hook, a);
    if (h->rerecord) {
        nng_sleep_aio(1000, h->aio); /* aio_cb hands it back to the loop: async_cb retries */
        return;
    }
    hook_free(h);
}

/* finish: the delivery ended (on the loop): decide and record. */
static void
finish(server *s, hook *h)
{
    int rv = h->setup_err != 0 ? h->setup_err : nng_aio_result(h->aio);
    int status = rv == 0 ? nng_http_res_get_status(h->res) : 0;
    int64_t retry_after = -1;
    int64_t snooze_ms = -1;
    char *text = NULL;
    if (rv == 0) {
        const char *ra = nng_http_res_get_header(h->res, "Retry-After");
        if (ra != NULL && ra[0] >= '0' && ra[0] <= '9') {
            retry_after = strtoll(ra, NULL, 10);
        }
        snooze_ms = webhook_snooze_ms(nng_http_res_get_header(h->res, WEBHOOK_SNOOZE_HEADER));
        void *body;
        size_t len;
        nng_http_res_get_data(h->res, &body, &len);
        size_t cap = h->a.q->conf->output_cap;
        len = len > cap ? cap : len;
        text = malloc(len + 1);
        if (text != NULL) {
            memcpy(text, body, len);
            text[len] = '\0';
            for (size_t i = 0; i < len; i++) {
                text[i] = text[i] == '\0' ? '?' : text[i];
            }
        }
    }
    int64_t now = jobq__now_ms();
    run_outcome o = webhook_outcome(status, rv == NNG_ETIMEDOUT, h->kill, retry_after,
                                    h->a.job.attempt, h->a.job.max_attempts, h->a.q->conf, now,
                                    backoff_rand(&s->rng));
    if ((status == 429 || status == 503) && retry_after > 0 && h->kill == KILL_NONE) {
        char why[120];
        snprintf(why, sizeof(why), "its webhook answered %d with Retry-After: %lld", status,
                 (long long)retry_after);
        queue_slow_down_job(s, h->a.q, &h->a.job, now + retry_after * 1000, why);
    }
    if (o.state == JOBQ_SUCCEEDED && snooze_ms >= 0) {
        /* A 2xx with Jobq-Snooze: the receiver took the job but wants it again later. */
        o = outcome_snooze(now, snooze_ms);
        free(text);
        text = NULL;
        char msg[120];
        snprintf(msg, sizeof(msg), "snoozed for %lld ms by the webhook (HTTP %d with %s)",
                 (long long)snooze_ms, status, WEBHOOK_SNOOZE_HEADER);
        h->a.error = strdup(msg);
    }
    h->a.outcome = o;
    if (o.state == JOBQ_SCHEDULED) {
        /* snoozed: its error says so */
    } else if (o.state == JOBQ_SUCCEEDED) {
        h->a.result = text;
    } else {
        char head[300];
        if (rv == NNG_ETIMEDOUT) {
            snprintf(head, sizeof(head), "timed out after %lld ms", (long long)h->a.job.timeout_ms);
        } else if (h->kill == KILL_CANCEL) {
            snprintf(head, sizeof(head), "%s",
                     h->stop_why[0] != '\0' ? h->stop_why
                                            : "cancelled while the request was in flight");
        } else if (h->kill == KILL_SHUTDOWN) {
            snprintf(head, sizeof(head), "interrupted: jobqd shut down during the request");
        } else if (rv != 0) {
            snprintf(head, sizeof(head), "cannot deliver to %s: %s", h->a.q->conf->url,
                     nng_strerror(rv));
        } else {
            snprintf(head, sizeof(head), "HTTP %d %s", status,
                     nng_http_res_get_reason(h->res) ? nng_http_res_get_reason(h->res) : "");
        }
        size_t len = strlen(head) + (text ? strlen(text) : 0) + 4;
        h->a.error = malloc(len);
        if (h->a.error != NULL) {
            snprintf(h->a.error, len, "%s%s%s", head, text && text[0] ? ": " : "",
                     text ? text : "");
        }
        free(text);
    }
    log_info(o.state == JOBQ_SUCCEEDED   ? "job_succeeded"
             : o.state == JOBQ_SCHEDULED ? "job_snoozed"
                                         : "job_failed",
             "job=%lld queue=%s attempt=%d/%d status=%d duration_ms=%llu kind=%s next=%s",
             (long long)h->a.job.id, h->a.q->name, h->a.job.attempt, h->a.job.max_attempts, status,
             (unsigned long long)(((uint64_t)jobq__mono_ns() - h->started_ns) / 1000000), o.kind,
             jobq__state_name(o.state));
    hist_observe(&h->a.q->run_hist, HIST_SECONDS,
                 (double)((uint64_t)jobq__mono_ns() - h->started_ns) / 1e9);
    h->a.done = recorded_cb;
    h->a.release = release_cb;
    attempt_record(&h->a);
}

/* done_cb: the loop: a delivery ended, or its outcome is to be recorded again. */
static void
done_cb(void *arg, loopq_node *n)
{
    server *s = arg;
    hook *h = container_of(n, hook, done);
    if (h->rerecord) {
        h->rerecord = false;
        attempt_record(&h->a);
    } else {
        finish(s, h);
    }
}

int
webhook_init(server *s)
{
    hookq *hq = calloc(1, sizeof(*hq));
    if (hq == NULL) {
        return -1;
    }
    if (loopq_open(&hq->done, s->loop, done_cb, s) != 0) {
        free(hq);
        return -1;
    }
    s->hooks = hq;
    return 0;
}

/* tls_alloc: client TLS settings under which a receiver's certificate must verify against
 * ca (or the system's CAs) and name host. An nng error when they cannot be made (a missing or
 * bad ca file). Reads the CA file: never on the loop thread. */
static int
tls_alloc(const char *ca, const char *host, nng_tls_config **cfgp)
{
    nng_tls_config *cfg;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv != 0) {
        return rv;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (rv = nng_tls_config_ca_file(cfg, ca)) != 0 ||
        (rv = nng_tls_config_server_name(cfg, host)) != 0) {
        nng_tls_config_free(cfg);
        return rv;
    }
    *cfgp = cfg;
    return 0;
}

int
webhook_tls_make(const queue_conf *qc, nng_tls_config **cfgp, char *err, size_t errlen)
{
    nng_url *url;
    *cfgp = NULL;
    if (qc->url == NULL || strncmp(qc->url, "https://", 8) != 0 ||
        nng_url_parse(&url, qc->url) != 0) {
        return 0; /* not https, or a URL every delivery will report as unusable */
    }
    const char *ca = qc->ca != NULL ? qc->ca : SYSTEM_CA_FILE;
    int rv = tls_alloc(ca, url->u_hostname, cfgp);
    nng_url_free(url);
    if (rv != 0) {
        snprintf(err, errlen,
                 "[queue.%s] cannot verify https receivers with ca = %s: %s (check the PEM file)",
                 qc->name, ca, nng_strerror(rv));
        return -1;
    }
    return 0;
}

void
webhook_tls_free(nng_tls_config *cfg)
{
    if (cfg != NULL) {
        nng_tls_config_free(cfg);
    }
}

void
webhook_tls_set(qstate *q, nng_tls_config *cfg)
{
    if (q->hook_tls != NULL) {
        nng_tls_config_free(q->hook_tls); /* a delivery in flight keeps its own reference */
    }
    q->hook_tls = cfg;
}

/* queue_tls: q's TLS settings for https deliveries, made at start or by a reload on another
 * thread; made here, on the loop, only if that failed to leave any (out of memory). */
static int
queue_tls(qstate *q, const nng_url *url, nng_tls_config **cfgp)
{
    if (q->hook_tls == NULL) {
        int rv = tls_alloc(q->conf->ca != NULL ? q->conf->ca : SYSTEM_CA_FILE, url->u_hostname,
                           &q->hook_tls);
        if (rv != 0) {
            log_error("webhook_tls_failed", "queue=%s err=\"%s\"", q->name, nng_strerror(rv));
            return rv;
        }
    }
    *cfgp = q->hook_tls;
    return 0;
}

/* body_with_parents: the body of a job that ran `after` others and whose payload is a JSON
 * object: the payload with a "parent_results" member (its parents' results keyed by id),
 * unless it has one of its own. NULL: send the payload as it is (no parent, another kind of
 * payload, out of memory). Malloc'd. */
static char *
body_with_parents(const job_row *job)
{
    if (job->parent_results == NULL) {
        return NULL;
    }
    json_t *o = json_loads(job->payload, 0, NULL);
    json_t *pr = json_loads(job->parent_results, 0, NULL);
    char *body = NULL;
    if (json_is_object(o) && pr != NULL && json_object_get(o, "parent_results") == NULL &&
        json_object_set(o, "parent_results", pr) == 0) {
        body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    json_decref(o);
    json_decref(pr);
    return body;
}

/* sign: the Jobq-Signature header of a delivery: "t=UNIX_SECONDS,v1=HEX", v1 being
 * HMAC-SHA256 under the queue's secret of the seconds, a dot and the body. */
static void
sign(const char *secret, const char *body, int64_t now_s, char out[128])
{
    char t[24];
    int tn = snprintf(t, sizeof(t), "%lld", (long long)now_s);
    const void *parts[] = {t, ".", body};
    size_t lens[] = {(size_t)tn, 1, strlen(body)};
    uint8_t mac[32];
    char hex[65];
    hmac_sha256(secret, strlen(secret), parts, lens, 3, mac);
    hex32(mac, hex);
    snprintf(out, 128, "t=%s,v1=%s", t, hex);
}

void
webhook_start(server *s, qstate *q, job_row *row)
{
    hookq *hq = hq_of(s);
    hook *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        job_row_clear(row); /* left running: recovered at the next start */
        return;
    }
    h->a.s = s;
    h->a.q = q;
    h->a.job = *row;
    memset(row, 0, sizeof(*row));
    h->started_ns = (uint64_t)jobq__mono_ns();
    JOBQ_LIST_PUSH(hq->all, h, next, prev);
    s->nrunning++;
    q->running++;
    char num[32];
    int rv = nng_url_parse(&h->url, q->conf->url);
    if (rv == 0) {
        rv = nng_http_client_alloc(&h->cli, h->url);
    }
    if (rv == 0 && strcmp(h->url->u_scheme, "https") == 0) {
        nng_tls_config *tls;
        if ((rv = queue_tls(q, h->url, &tls)) == 0) {
            rv = nng_http_client_set_tls(h->cli, tls);
        }
    }
    if (rv == 0) {
        rv = nng_http_req_alloc(&h->req, h->url);
    }
    if (rv == 0) {
        rv = nng_http_res_alloc(&h->res);
    }
    if (rv == 0) {
        rv = nng_aio_alloc(&h->aio, aio_cb, h);
    }
    if (rv == 0) {
        nng_http_req_set_method(h->req, "POST");
        nng_http_req_set_header(h->req, "Content-Type", "application/json");
        snprintf(num, sizeof(num), "%lld", (long long)h->a.job.id);
        nng_http_req_set_header(h->req, "Jobq-Job-Id", num);
        snprintf(num, sizeof(num), "%d", h->a.job.attempt);
        nng_http_req_set_header(h->req, "Jobq-Attempt", num);
        nng_http_req_set_header(h->req, "Jobq-Queue", q->name);
        if (h->a.job.group_key != NULL) {
            nng_http_req_set_header(h->req, "Jobq-Group-Key", h->a.job.group_key);
        }
        if (h->a.job.traceparent != NULL) {
            nng_http_req_set_header(h->req, "traceparent", h->a.job.traceparent);
            if (h->a.job.tracestate != NULL) {
                nng_http_req_set_header(h->req, "tracestate", h->a.job.tracestate);
            }
        }
        char *body = body_with_parents(&h->a.job);
        const char *b = body != NULL ? body : h->a.job.payload;
        if (q->conf->secret != NULL) {
            char sig[128];
            sign(q->conf->secret, b, jobq__now_ms() / 1000, sig);
            nng_http_req_set_header(h->req, "Jobq-Signature", sig);
        }
        rv = nng_http_req_copy_data(h->req, b, strlen(b));
        free(body);
    }
    if (rv != 0) {
        log_error("webhook_failed", "job=%lld reason=%s", (long long)h->a.job.id,
                  nng_strerror(rv));
        h->setup_err = rv;
        finish(s, h);
        return;
    }
    log_debug("job_started", "job=%lld queue=%s attempt=%d", (long long)h->a.job.id, q->name,
              h->a.job.attempt);
    nng_aio_set_timeout(h->aio, (nng_duration)h->a.job.timeout_ms);
    nng_http_client_transact(h->cli, h->req, h->res, h->aio);
}

const job_row *
webhook_stop(server *s, int64_t id, enum run_kill why)
{
    for (hook *h = hq_of(s)->all; h != NULL; h = h->next) {
        if (h->a.job.id == id && h->kill == KILL_NONE && h->a.op.done == NULL) {
            h->kill = why;
            nng_aio_cancel(h->aio);
            return &h->a.job;
        }
    }
    return NULL;
}

bool
webhook_cancel(server *s, int64_t id, const char *why)
{
    for (hook *h = hq_of(s)->all; h != NULL; h = h->next) {
        if (h->a.job.id == id && h->kill == KILL_NONE && h->a.op.done == NULL) {
            snprintf(h->stop_why, sizeof(h->stop_why), "%s", why);
            h->kill = KILL_CANCEL;
            nng_aio_cancel(h->aio);
            return true;
        }
    }
    return false;
}

void
webhook_stop_all(server *s)
{
    for (hook *h = hq_of(s)->all; h != NULL; h = h->next) {
        if (h->kill == KILL_NONE && h->a.op.done == NULL) {
            h->kill = KILL_SHUTDOWN;
            nng_aio_cancel(h->aio);
        }
    }
}

void
webhook_close(server *s)
{
    for (size_t i = 0; i < s->nqueues; i++) {
        if (s->queues[i]->hook_tls != NULL) {
            nng_tls_config_free(s->queues[i]->hook_tls);
            s->queues[i]->hook_tls = NULL;
        }
    }
    hookq *hq = hq_of(s);
    if (hq != NULL) {
        loopq_close(hq->done, NULL); /* no delivery is in flight: nothing is queued */
        free(hq);
        s->hooks = NULL;
    }
}

static int
webhook_part_init(server *s, char *err, size_t errlen)
{
    if (webhook_init(s) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* The TLS settings of https queues are made now, before the loop runs: reading a CA
     * bundle is file I/O, and a bad ca file is a start-up error, not a failed delivery. */
    for (size_t i = 0; i < s->nqueues; i++) {
        nng_tls_config *tls;
        if (webhook_tls_make(s->queues[i]->conf, &tls, err, errlen) != 0) {
            return -1;
        }
        webhook_tls_set(s->queues[i], tls);
    }
    return 0;
}

const server_part webhook_part = {.name = "webhook",
                                  .init = webhook_part_init,
                                  .grace_over = webhook_stop_all,
                                  .close = webhook_close};
