/* job.c: jobq_job, the immutable snapshot of one job as a reply carried it, and its
 * accessors. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct jobq_job {
    json_t *obj;       /* the job object of the reply (one reference owned) */
    char *json;        /* compact text of obj */
    char *payload;     /* compact text of obj.payload ("null" when absent) */
    char *result;      /* obj.result as text, NULL when absent or null */
    char *error;       /* obj.error as text, NULL when absent or null */
    const char *queue; /* borrowed from obj; "" when absent */
    const char *key;   /* borrowed from obj; NULL when absent */
    int64_t id;
    int state; /* a jobq_state, -1 when unknown */
    int32_t priority;
    int32_t attempt;
    int32_t max_attempts;
    int64_t timeout_ms;
    int64_t run_at_ms; /* ms since the epoch; 0 when null */
    int64_t created_at_ms;
    int64_t started_at_ms;
    int64_t finished_at_ms;
};

/* int_field: obj[name] as an integer, 0 when absent, null or not an integer. */
static int64_t
int_field(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* text_field: obj[name] as a malloc'd text: a string as is, any other non-null value as
 * compact JSON. Sets *textp to NULL when absent or null. Returns false on out of memory. */
static bool
text_field(const json_t *obj, const char *name, char **textp)
{
    const json_t *v = json_object_get(obj, name);
    *textp = NULL;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (json_is_string(v)) {
        *textp = strdup(json_string_value(v));
    } else {
        *textp = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    }
    return *textp != NULL;
}

int
jobq__job_from_json(json_t *obj, jobq_job **jobp)
{
    if (!json_is_object(obj) || !json_is_integer(json_object_get(obj, "id"))) {
        return jobq__fail(JOBQ_EPROTO, "the daemon's reply holds no valid job object");
    }
    jobq_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory reading a job");
    }
    job->obj = json_incref(obj);
    job->json = json_dumps(obj, JSON_COMPACT);
    const json_t *payload = json_object_get(obj, "payload");
    job->payload =
        payload != NULL ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
    if (job->json == NULL || job->payload == NULL || !text_field(obj, "result", &job->result) ||
        !text_field(obj, "error", &job->error)) {
        jobq_job_free(job);
        return jobq__fail(JOBQ_ENOMEM, "out of memory reading a job");
    }
    const char *queue = json_string_value(json_object_get(obj, "queue"));
    job->queue = queue != NULL ? queue : "";
    job->key = json_string_value(json_object_get(obj, "key"));
    job->id = int_field(obj, "id");
    job->state = jobq__state_parse(json_string_value(json_object_get(obj, "state")));
    job->priority = (int32_t)int_field(obj, "priority");
    job->attempt = (int32_t)int_field(obj, "attempt");
    job->max_attempts = (int32_t)int_field(obj, "max_attempts");
    if (!jobq__json_duration(json_object_get(obj, "timeout"), &job->timeout_ms)) {
        job->timeout_ms = 0;
    }
    job->run_at_ms = int_field(obj, "run_at");
    job->created_at_ms = int_field(obj, "created_at");
    job->started_at_ms = int_field(obj, "started_at");
    job->finished_at_ms = int_field(obj, "finished_at");
    *jobp = job;
    return JOBQ_OK;
}

JOBQ_API void
jobq_job_free(jobq_job *job)
{
    if (job == NULL) {
        return;
    }
    free(job->json);
    free(job->payload);
    free(job->result);
    free(job->error);
    json_decref(job->obj);
    free(job);
}

/* The accessors of the job's fields read once from its object: X(type, accessor, member,
 * what a NULL job gives). Declared, with their docs, in jobq.h. */
#define JOB_ACCESSORS(X)                                                                           \
    X(int64_t, id, id, 0)                                                                          \
    X(const char *, queue, queue, "")                                                              \
    X(const char *, payload, payload, "null")                                                      \
    X(int, state, state, -1)                                                                       \
    X(int32_t, priority, priority, 0)                                                              \
    X(int32_t, attempt, attempt, 0)                                                                \
    X(int32_t, max_attempts, max_attempts, 0)                                                      \
    X(int64_t, timeout_ms, timeout_ms, 0)                                                          \
    X(const char *, key, key, NULL)                                                                \
    X(const char *, result, result, NULL)                                                          \
    X(const char *, error, error, NULL)                                                            \
    X(int64_t, run_at_ms, run_at_ms, 0)                                                            \
    X(int64_t, created_at_ms, created_at_ms, 0)                                                    \
    X(int64_t, started_at_ms, started_at_ms, 0)                                                    \
    X(int64_t, finished_at_ms, finished_at_ms, 0)                                                  \
    X(const char *, json, json, "null")

#define X(type, name, member, none)                                                                \
    JOBQ_API type jobq_job_##name(const jobq_job *job)                                             \
    {                                                                                              \
        return job != NULL ? job->member : (none);                                                 \
    }
JOB_ACCESSORS(X)
#undef X

JOBQ_API const char *
jobq_job_group_key(const jobq_job *job)
{
    return job != NULL ? json_string_value(json_object_get(job->obj, "group_key")) : NULL;
}
