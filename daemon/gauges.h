/* gauges.h: how long each queue's oldest waiting job has waited, sampled every 5 s
 * (qstate.oldest_ready_ms, qstate.oldest_overdue_ms). Loop thread. */
#ifndef JOBQD_GAUGES_H
#define JOBQD_GAUGES_H

#include <stdint.h>

#include "server.h"

/** gauges_part: the sampling timer (started with jobqd, closed once drained). */
extern const server_part gauges_part;

/** gauges_age_s: whole seconds from since_ms (0: none) to now_ms; 0 when none. */
int64_t gauges_age_s(int64_t since_ms, int64_t now_ms);

#endif
