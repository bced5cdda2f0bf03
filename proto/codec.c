/* codec.c: error codes, state names and durations as they appear on the wire. */
#include "codec.h"

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
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0) {
        return false;
    }
    int64_t mult;
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        mult = 1;
    } else if (strcmp(end, "s") == 0) {
        mult = 1000;
    } else if (strcmp(end, "m") == 0) {
        mult = 60 * 1000;
    } else if (strcmp(end, "h") == 0) {
        mult = 3600 * 1000;
    } else if (strcmp(end, "d") == 0) {
        mult = 24 * 3600 * 1000;
    } else {
        return false;
    }
    if (v > INT64_MAX / mult) {
        return false;
    }
    *msp = (int64_t)v * mult;
    return true;
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
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
