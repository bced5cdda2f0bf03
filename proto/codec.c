/* codec.c: error codes, state names and durations as they appear on the wire. */
#include "codec.h"

#include "clock.h"
#include "duration.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *code;
    int err;
} err_codes[] = {
    {"malformed", JOBQ_EPROTO},        {"unknown_op", JOBQ_EPROTO},
    {"invalid_argument", JOBQ_EINVAL}, {"too_large", JOBQ_ETOOBIG},
    {"unknown_queue", JOBQ_EQUEUE},    {"not_found", JOBQ_ENOENT},
    {"invalid_state", JOBQ_ESTATE},    {"key_conflict", JOBQ_ECONFLICT},
    {"store_full", JOBQ_EFULL},        {"queue_full", JOBQ_EFULL},
    {"store_error", JOBQ_ESTORE},      {"shutting_down", JOBQ_ESHUTDOWN},
    {"unauthorized", JOBQ_EUNAUTH},    {"timeout", JOBQ_ETIMEDOUT},
    {"out_of_memory", JOBQ_ENOMEM},    {"lease_expired", JOBQ_ELEASE}, {"internal", JOBQ_EINTERNAL},
    /* limits, each with its own code */
    {"payload_too_large", JOBQ_ETOOBIG},
    {"batch_too_large", JOBQ_ETOOBIG},
    {"too_many_waits", JOBQ_EBUSY},
    {"too_many_connections", JOBQ_EBUSY},
    {"too_many_queues", JOBQ_EQUEUE},
    {"forbidden", JOBQ_EFORBIDDEN},
    {"store_unavailable", JOBQ_EUNAVAIL},
};

const char *
jobq__err_code(int err)
{
    for (size_t i = 0; i < sizeof(err_codes) / sizeof(err_codes[0]); i++) {
        if (err_codes[i].err == err) {
            return err_codes[i].code;
        }
    }
    return "internal";
}

int
jobq__err_from_code(const char *code)
{
    if (code != NULL) {
        for (size_t i = 0; i < sizeof(err_codes) / sizeof(err_codes[0]); i++) {
            if (strcmp(err_codes[i].code, code) == 0) {
                return err_codes[i].err;
            }
        }
    }
    return JOBQ_EINTERNAL;
}

static const char *const state_names[] = {
    "scheduled", "ready", "running", "retrying", "succeeded", "dead", "cancelled", "waiting",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == JOBQ_WAITING + 1,
               "one name per jobq_state");

const char *
jobq__state_name(int state)
{
    if (state < 0 || state > JOBQ_WAITING) {
        return NULL;
    }
    return state_names[state];
}

int
jobq__state_parse(const char *name)
{
    if (name != NULL) {
        for (int i = 0; i <= JOBQ_WAITING; i++) {
            if (strcmp(state_names[i], name) == 0) {
                return i;
            }
        }
    }
    return -1;
}

bool
jobq__duration_parse(const char *s, int64_t *msp)
{
    return jobq__duration_scan(s, false, msp); /* one term on the wire and in the config */
}

bool
jobq__json_duration(const json_t *v, int64_t *msp)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0) {
            return false;
        }
        *msp = (int64_t)i;
        return true;
    }
    if (json_is_string(v)) {
        return jobq__duration_parse(json_string_value(v), msp);
    }
    return false;
}

int64_t
jobq__now_ms(void)
{
    return jobq__wall_ms();
}
