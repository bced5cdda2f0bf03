/* ops.h: every op of the protocol, listed once. JOBQ_OPS(X) calls X(NAME, name, fields, flags)
 * for each, in the order of the req_op enum:
 *   NAME    the suffix of its req_op (REQ_NAME);
 *   name    its wire name, and the name of its handler in jobqd (op_name, daemon/ops.h);
 *   fields  its field table in proto/request.c (FIELDS(table)) or NO_FIELDS;
 *   flags   what jobqd's dispatcher checks before the handler runs (OPF_*).
 * Adding an op: a line here, its fields in request.c, its handler in the daemon module of its
 * subject (and its tests and docs). */
#ifndef JOBQ_PROTO_OPS_H
#define JOBQ_PROTO_OPS_H

/** What the dispatcher (daemon/dispatch.c) applies once for every op that carries the flag. */
enum op_flags {
    OPF_WRITES = 1 << 0,       /* its store operation writes (a wop with writes set) */
    OPF_NOT_DRAINING = 1 << 1, /* refused with shutting_down while jobqd drains */
    OPF_QUEUE = 1 << 2,        /* req.queue must name a queue that exists or may be created */
    OPF_HOLD_WAIT = 1 << 3,    /* held until jobs end when timeout > 0: takes a wait slot */
    OPF_HOLD_FETCH = 1 << 4,   /* held until jobs are ready when timeout > 0: takes a slot */
    OPF_READ = 1 << 5,         /* changes nothing: allowed with [server] read_token (an op
                                * without it is refused "forbidden" to that token) */
};

#define JOBQ_OPS(X)                                                                                \
    X(PING, ping, NO_FIELDS, OPF_READ)                                                             \
    X(SUBMIT, submit, FIELDS(submit_fields), OPF_WRITES | OPF_NOT_DRAINING)                        \
    X(SUBMIT_BATCH, submit_batch, FIELDS(submit_batch_fields), OPF_WRITES | OPF_NOT_DRAINING)      \
    X(GET, get, FIELDS(get_fields), OPF_READ)                                                      \
    X(WAIT, wait, FIELDS(wait_fields), OPF_HOLD_WAIT | OPF_READ)                                   \
    X(CANCEL, cancel, FIELDS(id_fields), OPF_WRITES)                                               \
    X(LIST, list, FIELDS(list_fields), OPF_READ)                                                   \
    X(STATS, stats, FIELDS(stats_fields), OPF_READ)                                                \
    X(PAUSE, pause, FIELDS(queue_fields), OPF_WRITES | OPF_QUEUE)                                  \
    X(RESUME, resume, FIELDS(queue_fields), OPF_WRITES | OPF_QUEUE)                                \
    X(RETRY, retry, FIELDS(retry_fields), OPF_WRITES)                                              \
    X(EXPLAIN, explain, FIELDS(id_fields), OPF_READ)                                               \
    X(FETCH, fetch, FIELDS(fetch_fields), OPF_WRITES | OPF_HOLD_FETCH)                             \
    X(ACK, ack, FIELDS(ack_fields), OPF_WRITES | OPF_HOLD_FETCH)                                   \
    X(FAIL, fail, FIELDS(fail_fields), OPF_WRITES | OPF_HOLD_FETCH)                                \
    X(HEARTBEAT, heartbeat, FIELDS(heartbeat_fields), 0)                                           \
    X(BACKUP, backup, FIELDS(backup_fields), 0)                                                    \
    X(SCHEDULES, schedules, NO_FIELDS, OPF_READ)                                                   \
    X(PROMOTE, promote, FIELDS(id_fields), OPF_WRITES)                                             \
    X(MUTATE, mutate, FIELDS(mutate_fields), OPF_WRITES)                                           \
    X(LOGS, logs, FIELDS(logs_fields), OPF_HOLD_WAIT | OPF_READ)                                   \
    X(SCHEDULE_ADD, schedule_add, FIELDS(schedule_add_fields), OPF_WRITES | OPF_NOT_DRAINING)      \
    X(SCHEDULE_UPDATE, schedule_update, FIELDS(schedule_update_fields),                            \
      OPF_WRITES | OPF_NOT_DRAINING)                                                               \
    X(SCHEDULE_PAUSE, schedule_pause, FIELDS(schedule_name_fields), OPF_WRITES)                    \
    X(SCHEDULE_RESUME, schedule_resume, FIELDS(schedule_name_fields), OPF_WRITES)                  \
    X(SCHEDULE_TRIGGER, schedule_trigger, FIELDS(schedule_name_fields),                            \
      OPF_WRITES | OPF_NOT_DRAINING)                                                               \
    X(SCHEDULE_DELETE, schedule_delete, FIELDS(schedule_name_fields), OPF_WRITES)              \
    X(NODES, nodes, NO_FIELDS, OPF_READ)

#endif
