/* webhook.h: one job of a url queue, delivered as an HTTP POST with nng's HTTP client: the
 * request runs on nng's threads, its completion comes back to the loop through one uv_async,
 * and the outcome is recorded like any other attempt. */
#ifndef JOBQD_WEBHOOK_H
#define JOBQD_WEBHOOK_H

#include "runner.h"
#include "server.h"

/** webhook_init: the completion channel. Before the loop runs; 0 or -1. */
int webhook_init(server *s);

/** webhook_start: POSTs row (a claimed job; taken) to q's url. Loop thread. */
void webhook_start(server *s, qstate *q, job_row *row);

/** webhook_stop: ends the delivery of job id early (KILL_CANCEL records cancelled,
 *  KILL_SHUTDOWN puts it back to ready). Returns the job as it was claimed, or NULL if no
 *  delivery of that job is in flight. */
const job_row *webhook_stop(server *s, int64_t id, enum run_kill why);

/** webhook_cancel: ends the delivery of job id early and records it cancelled with why as
 *  its error. false if no delivery of that job is in flight. Loop thread. */
bool webhook_cancel(server *s, int64_t id, const char *why);

/** webhook_stop_all: webhook_stop(KILL_SHUTDOWN) for every delivery in flight. */
void webhook_stop_all(server *s);

/** webhook_close: closes the completion channel (the loop is ending). */
void webhook_close(server *s);

/** The decision for one HTTP outcome: status (0: no response), whether the request timed
 *  out, the Retry-After seconds (-1: none). Pure; exposed for unit tests. */
run_outcome webhook_outcome(int status, bool timed_out, enum run_kill kill, int64_t retry_after_s,
                            int32_t attempt, int32_t max_attempts, const queue_conf *qc,
                            int64_t now_ms, uint64_t rnd);

/** The header of a 2xx answer that snoozes the job: whole seconds (as Retry-After) or a
 *  duration ("500ms", "2m"). */
#define WEBHOOK_SNOOZE_HEADER "Jobq-Snooze"

/** webhook_snooze_ms: the snooze a Jobq-Snooze header value asks for, in ms; -1 for none
 *  (NULL, or not a number of seconds nor a duration). Pure. */
int64_t webhook_snooze_ms(const char *value);

/** webhook_part: the deliveries' client; deliveries still in flight stop when the grace is
 *  over. */
extern const server_part webhook_part;

/** webhook_tls_make: the TLS settings of an https queue's deliveries (*cfgp NULL for another
 *  queue). Reads its CA file: any thread but the loop's. -1 with the reason in err when the
 *  file is missing or bad. */
int webhook_tls_make(const queue_conf *qc, struct nng_tls_config **cfgp, char *err,
                     size_t errlen);

/** webhook_tls_free: frees settings webhook_tls_make made (NULL: nothing). Any thread. */
void webhook_tls_free(struct nng_tls_config *cfg);

/** webhook_tls_set: q's TLS settings become cfg (owned; NULL: none), the old ones freed.
 *  Loop thread. */
void webhook_tls_set(qstate *q, struct nng_tls_config *cfg);

#endif
