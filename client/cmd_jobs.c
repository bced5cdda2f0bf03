/* cmd_jobs.c: the jobq commands that read or change existing jobs and queues: ping, get,
 * wait, cancel, retry, explain, list, stats, pause, resume. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* The server holds one wait for at most 1 h; the CLI waits in shorter pieces so a daemon
 * that went away is noticed within about a minute. */
#define WAIT_PIECE_MS 25000

/* operands: checks that a command got exactly want operands after its options. */
static int
operands(const cli_cmd *cmd, int argc, int want, const char *what)
{
    int have = argc - optind;
    if (have < want) {
        return cli_usage(cmd, "missing %s", what);
    }
    if (have > want) {
        return cli_usage(cmd, "too many arguments");
    }
    return EXIT_OK;
}

/* parse_id: a job id operand. */
static int
parse_id(const cli_cmd *cmd, const char *s, int64_t *idp)
{
    if (!cli_parse_i64(s, 1, INT64_MAX, idp)) {
        return cli_usage(cmd, "a job ID is a positive integer, not \"%s\"", s);
    }
    return EXIT_OK;
}

/* id_command: parses a command whose one operand is a job ID (and the common options). */
static int
id_command(cli *c, const cli_cmd *cmd, int argc, char **argv, int64_t *idp)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 1, "the job ID")) != EXIT_OK) {
        return rc;
    }
    return parse_id(cmd, argv[optind], idp);
}

/* print_field: one "key  value" line; later lines of a multi-line value are indented. */
static void
print_field(const char *key, const char *value)
{
    if (value == NULL) {
        value = "-";
    }
    size_t len = strlen(value);
    while (len > 0 && value[len - 1] == '\n') {
        len--;
    }
    printf("%-12s ", key);
    for (size_t i = 0; i < len; i++) {
        putchar(value[i]);
        if (value[i] == '\n') {
            printf("%-12s ", "");
        }
    }
    putchar('\n');
}

/* print_indented: prints text with every line indented by two spaces. */
static void
print_indented(const char *text)
{
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n') {
        len--;
    }
    if (len == 0) {
        return;
    }
    fputs("  ", stdout);
    for (size_t i = 0; i < len; i++) {
        putchar(text[i]);
        if (text[i] == '\n') {
            fputs("  ", stdout);
        }
    }
    putchar('\n');
}

static void
print_job(const jobq_job *j)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%lld", (long long)jobq_job_id(j));
    print_field("id", buf);
    print_field("queue", jobq_job_queue(j));
    print_field("state", jobq_state_name(jobq_job_state(j)));
    snprintf(buf, sizeof(buf), "%d of %d", (int)jobq_job_attempt(j), (int)jobq_job_max_attempts(j));
    print_field("attempt", buf);
    snprintf(buf, sizeof(buf), "%d", (int)jobq_job_priority(j));
    print_field("priority", buf);
    print_field("timeout", cli_fmt_duration(jobq_job_timeout_ms(j), buf, sizeof(buf)));
    print_field("key", jobq_job_key(j));
    print_field("group_key", jobq_job_group_key(j));
    print_field("run_at", cli_fmt_time(jobq_job_run_at_ms(j), buf, sizeof(buf)));
    print_field("created_at", cli_fmt_time(jobq_job_created_at_ms(j), buf, sizeof(buf)));
    print_field("started_at", cli_fmt_time(jobq_job_started_at_ms(j), buf, sizeof(buf)));
    print_field("finished_at", cli_fmt_time(jobq_job_finished_at_ms(j), buf, sizeof(buf)));
    print_field("payload", jobq_job_payload(j));
    print_field("result", jobq_job_result(j));
    print_field("error", jobq_job_error(j));
}

/* print_progress: the job's last progress, note and checkpoint (from its JSON), if any. */
static void
print_progress(const char *job_json)
{
    json_t *o = json_loads(job_json, 0, NULL);
    json_t *job = json_object_get(o, "job") != NULL ? json_object_get(o, "job") : o;
    json_t *p = json_object_get(job, "progress");
    if (json_is_number(p)) {
        char buf[300];
        const char *note = json_string_value(json_object_get(job, "note"));
        snprintf(buf, sizeof(buf), "%g%%%s%s", json_number_value(p), note != NULL ? " " : "",
                 note != NULL ? note : "");
        print_field("progress", buf);
    }
    json_t *cp = json_object_get(job, "checkpoint");
    if (cp != NULL && !json_is_null(cp)) {
        char *text = json_dumps(cp, JSON_COMPACT | JSON_ENCODE_ANY);
        print_field("checkpoint", text);
        free(text);
    }
    json_decref(o);
}

/* print_outcome: one line saying how a finished job ended, then its result or error. */
/* print_attempts: the job's attempt history (from its JSON) as an aligned table. */
static void
print_attempts(const char *job_json)
{
    json_t *job = json_loads(job_json, 0, NULL);
    json_t *attempts = json_object_get(job, "attempts");
    if (json_array_size(attempts) > 0) {
        printf("\n%-7s  %-19s  %9s  %-9s  %s\n", "ATTEMPT", "STARTED", "DURATION", "KIND", "ERROR");
        size_t i;
        json_t *a;
        json_array_foreach(attempts, i, a)
        {
            char when[32], dur[32], err[120];
            const char *e = json_string_value(json_object_get(a, "error"));
            snprintf(err, sizeof(err), "%s", e != NULL ? e : "-");
            err[strcspn(err, "\n")] = '\0';
            printf("%7lld  %-19s  %9s  %-9s  %s\n",
                   (long long)json_integer_value(json_object_get(a, "attempt")),
                   cli_fmt_time(json_integer_value(json_object_get(a, "started_at")), when,
                                sizeof(when)),
                   cli_fmt_duration(json_integer_value(json_object_get(a, "duration_ms")), dur,
                                    sizeof(dur)),
                   json_string_value(json_object_get(a, "kind")), err);
        }
    }
    json_decref(job);
}

static void
print_outcome(const jobq_job *j)
{
    int attempt = (int)jobq_job_attempt(j);
    printf("job %lld %s", (long long)jobq_job_id(j), jobq_state_name(jobq_job_state(j)));
    if (attempt > 0) {
        printf(" after %d attempt%s", attempt, attempt == 1 ? "" : "s");
    }
    int64_t created = jobq_job_created_at_ms(j), finished = jobq_job_finished_at_ms(j);
    if (created > 0 && finished >= created) {
        char buf[32];
        printf(", %s after submit", cli_fmt_duration(finished - created, buf, sizeof(buf)));
    }
    putchar('\n');
    const char *detail =
        jobq_job_state(j) == JOBQ_SUCCEEDED ? jobq_job_result(j) : jobq_job_error(j);
    if (detail != NULL) {
        print_indented(detail);
    }
}

/* print_outcome_json: print_outcome of a job object of a reply. */
static void
print_outcome_json(const json_t *j)
{
    const char *st = json_string_value(json_object_get(j, "state"));
    long long attempt = json_integer_value(json_object_get(j, "attempt"));
    printf("job %lld %s", (long long)json_integer_value(json_object_get(j, "id")),
           st != NULL ? st : "?");
    if (attempt > 0) {
        printf(" after %lld attempt%s", attempt, attempt == 1 ? "" : "s");
    }
    int64_t created = json_integer_value(json_object_get(j, "created_at"));
    int64_t finished = json_integer_value(json_object_get(j, "finished_at"));
    if (created > 0 && finished >= created) {
        char buf[32];
        printf(", %s after submit", cli_fmt_duration(finished - created, buf, sizeof(buf)));
    }
    putchar('\n');
    const char *detail = json_string_value(
        json_object_get(j, st != NULL && strcmp(st, "succeeded") == 0 ? "result" : "error"));
    if (detail != NULL) {
        print_indented(detail);
    }
}

/* pace: after a wait piece that came back unfinished well before its time (a daemon that
 * does not hold waits), sleeps a little so the loop does not spin. */
static void
pace(double started, int64_t piece_ms)
{
    if ((cli_mono_s() - started) * 1000.0 < (double)piece_ms / 2) {
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000}, NULL);
    }
}

int
cli_wait_job(cli *c, int64_t id, int64_t limit_ms)
{
    int rc = cli_connect(c);
    if (rc != EXIT_OK) {
        return rc;
    }
    double deadline = cli_mono_s() + (double)limit_ms / 1000.0;
    jobq_job *job = NULL;
    for (;;) {
        int64_t piece = WAIT_PIECE_MS;
        if (limit_ms >= 0) {
            int64_t left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
            piece = left < 0 ? 0 : (left < piece ? left : piece);
        }
        double t0 = cli_mono_s();
        int err = jobq_wait(c->client, id, piece, &job);
        if (err == JOBQ_OK) {
            break;
        }
        pace(t0, piece);
        if (err != JOBQ_ETIMEDOUT && err != JOBQ_EUNREACH) {
            return cli_fail(err, "wait for job %lld", (long long)id);
        }
        if (limit_ms >= 0 && cli_mono_s() >= deadline) {
            fprintf(stderr, "jobq: wait for job %lld: not finished when --timeout ran out\n",
                    (long long)id);
            return EXIT_FAILED;
        }
        /* The piece ended with the job unfinished, no reply came, or the connection dropped
         * (a daemon restart): go on waiting if the daemon answers a ping. */
        int perr = jobq_ping(c->client);
        if (perr != JOBQ_OK) {
            return cli_fail(perr, "wait for job %lld", (long long)id);
        }
    }
    print_outcome(job);
    rc = jobq_job_state(job) == JOBQ_SUCCEEDED ? EXIT_OK : EXIT_FAILED;
    jobq_job_free(job);
    return rc;
}

int
cli_wait_json(cli *c, const int64_t *ids, size_t n, int64_t limit_ms)
{
    /* Each piece must end on the daemon before this call's timeout ends here. */
    int64_t margin = c->timeout_ms / 4 < 5000 ? c->timeout_ms / 4 : 5000;
    int64_t max_piece = c->timeout_ms - margin;
    if (max_piece > 3600 * 1000) {
        max_piece = 3600 * 1000;
    }
    double deadline = cli_mono_s() + (double)limit_ms / 1000.0;
    for (;;) {
        int64_t piece = max_piece;
        if (limit_ms >= 0) {
            int64_t left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
            piece = left < 0 ? 0 : (left < piece ? left : piece);
        }
        json_t *jids = json_array();
        for (size_t i = 0; i < n && jids != NULL; i++) {
            if (json_array_append_new(jids, json_integer(ids[i])) != 0) {
                json_decref(jids);
                jids = NULL;
            }
        }
        json_t *req =
            json_pack("{s:s, s:o, s:I}", "op", "wait", "ids", jids, "timeout", (json_int_t)piece);
        json_t *reply;
        char *text;
        double t0 = cli_mono_s();
        int rc = cli_call(c, req, &reply, &text, "wait");
        if (reply == NULL) {
            return rc;
        }
        bool done = json_is_true(json_object_get(reply, "done"));
        bool last = rc != EXIT_OK || done || (limit_ms >= 0 && cli_mono_s() >= deadline);
        if (last) {
            cli_print_reply(text);
            if (rc == EXIT_OK) {
                size_t i;
                json_t *job;
                json_array_foreach(json_object_get(reply, "jobs"), i, job)
                {
                    const char *st = json_string_value(json_object_get(job, "state"));
                    if (st == NULL || strcmp(st, "succeeded") != 0) {
                        rc = EXIT_FAILED;
                    }
                }
                if (!done) {
                    rc = EXIT_FAILED;
                }
            }
        }
        json_decref(reply);
        jobq_free(text);
        if (last) {
            return rc;
        }
        pace(t0, piece);
    }
}

int
cmd_ping(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 0, "")) != EXIT_OK) {
        return rc;
    }
    if ((rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    json_t *reply;
    char *text;
    double t0 = cli_mono_s();
    rc = cli_call(c, json_pack("{s:s}", "op", "ping"), &reply, &text, "ping");
    double ms = (cli_mono_s() - t0) * 1000.0;
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        const char *version = json_string_value(json_object_get(reply, "version"));
        printf("pong (jobqd %s) in %.1f ms\n", version != NULL ? version : "?", ms);
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

/* raw_command: sends req; prints the reply with --json, else done_line on success. For the
 * commands that have no typed libjobq call, and for --json. */
static int
raw_command(cli *c, json_t *req, const char *what, const char *done_line)
{
    json_t *reply;
    char *text;
    int rc = cli_call(c, req, &reply, &text, "%s", what);
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        printf("%s\n", done_line);
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

/* print_group: a group object of a get or wait reply, as text. */
static void
print_group(const json_t *g)
{
    char buf[64];
    json_t *completed = json_object_get(g, "completed_at");
    printf("group %lld: %lld jobs, %s", (long long)json_integer_value(json_object_get(g, "id")),
           (long long)json_integer_value(json_object_get(g, "size")),
           json_is_integer(completed) ? "done at " : "not done");
    if (json_is_integer(completed)) {
        printf("%s", cli_fmt_time(json_integer_value(completed), buf, sizeof(buf)));
    }
    printf("\n ");
    const char *key;
    json_t *n;
    json_object_foreach(json_object_get(g, "counts"), key, n)
    {
        if (json_integer_value(n) != 0) {
            printf(" %s %lld", key, (long long)json_integer_value(n));
        }
    }
    printf("\n");
    json_t *oc = json_object_get(g, "on_complete");
    if (json_is_object(oc)) {
        json_t *ocid = json_object_get(oc, "id");
        printf("  on_complete: queue %s, ", json_string_value(json_object_get(oc, "queue")));
        if (json_is_integer(ocid)) {
            printf("job %lld\n", (long long)json_integer_value(ocid));
        } else {
            printf("submitted when the group is done\n");
        }
    }
}

/* A wait strategy: --any or --first-failure (the daemon's return_when), --cancel-rest. */
typedef struct wait_strategy {
    const char *when; /* NULL: all */
    bool cancel_rest;
} wait_strategy;

enum { OPT_ANY = 1000, OPT_FIRST_FAILURE, OPT_CANCEL_REST };

/* group_option: parses the options of get/wait that take --group ID; *groupp is 0 without.
 * limitp and ws (NULL for get): wait's --timeout and its strategy. */
static int
group_options(cli *c, const cli_cmd *cmd, int argc, char **argv, int64_t *groupp, int64_t *limitp,
              wait_strategy *ws)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"group", required_argument, NULL, 'g'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"any", no_argument, NULL, OPT_ANY},
                                         {"first-failure", no_argument, NULL, OPT_FIRST_FAILURE},
                                         {"cancel-rest", no_argument, NULL, OPT_CANCEL_REST},
                                         {NULL, 0, NULL, 0}};
    int rc = EXIT_OK;
    int ch;
    *groupp = 0;
    while ((ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        if (ch == CLI_OPT_END) {
            return rc == EXIT_OK ? -1 : rc;
        }
        if (ch == 'g') {
            if (!cli_parse_i64(optarg, 1, INT64_MAX, groupp)) {
                return cli_usage(cmd, "--group needs a group id (a positive integer), not \"%s\"",
                                 optarg);
            }
        } else if (limitp == NULL || ws == NULL) {
            return cli_usage(cmd, "unexpected option");
        } else if (ch == OPT_ANY || ch == OPT_FIRST_FAILURE) {
            const char *when = ch == OPT_ANY ? "first" : "first_failure";
            if (ws->when != NULL && strcmp(ws->when, when) != 0) {
                return cli_usage(cmd, "give --any or --first-failure, not both");
            }
            ws->when = when;
        } else if (ch == OPT_CANCEL_REST) {
            ws->cancel_rest = true;
        } else if (!cli_parse_duration(optarg, limitp)) {
            return cli_usage(cmd, "--timeout needs a duration like 30s or 5m, not \"%s\"", optarg);
        }
    }
    if (*groupp != 0 && optind < argc) {
        return cli_usage(cmd, "give --group ID or job IDs, not both");
    }
    if (ws != NULL && ws->cancel_rest && ws->when == NULL) {
        return cli_usage(cmd, "--cancel-rest goes with --any or --first-failure");
    }
    return EXIT_OK;
}

/* print_states: "  LABEL: job N (state), ..." for a list of {id, state}, if not empty. */
static void
print_states(const char *label, const json_t *list)
{
    if (json_array_size(list) == 0) {
        return;
    }
    printf("  %s:", label);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        printf("%s job %lld (%s)", i > 0 ? "," : "",
               (long long)json_integer_value(json_object_get(e, "id")),
               json_string_value(json_object_get(e, "state")));
    }
    printf("\n");
}

/* strategy_wait: waits on ids (or group gid) until the first job ends (--any) or fails
 * (--first-failure), optionally cancelling the rest, and prints the job that answered the
 * wait and the others' states. Exit status 0 only if that job succeeded. */
static int
strategy_wait(cli *c, const int64_t *ids, size_t n, int64_t gid, int64_t limit_ms,
              const wait_strategy *ws)
{
    int rc = cli_connect(c);
    if (rc != EXIT_OK) {
        return rc;
    }
    double deadline = cli_mono_s() + (double)limit_ms / 1000.0;
    for (;;) {
        int64_t piece = WAIT_PIECE_MS;
        if (limit_ms >= 0) {
            int64_t left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
            piece = left < 0 ? 0 : left < piece ? left : piece;
        }
        json_t *req = json_pack("{s:s, s:I, s:s, s:b}", "op", "wait", "timeout", (json_int_t)piece,
                                "return_when", ws->when, "cancel_pending", ws->cancel_rest);
        if (gid != 0) {
            json_object_set_new(req, "group", json_integer(gid));
        } else {
            json_t *jids = json_array();
            for (size_t i = 0; i < n; i++) {
                json_array_append_new(jids, json_integer(ids[i]));
            }
            json_object_set_new(req, "ids", jids);
        }
        json_t *reply;
        char *text;
        double t0 = cli_mono_s();
        rc = cli_call(c, req, &reply, &text, "wait");
        if (reply == NULL) {
            return rc;
        }
        json_t *first = json_object_get(reply, "first");
        bool answered = json_is_integer(first);
        bool last = rc != EXIT_OK || answered || (limit_ms >= 0 && cli_mono_s() >= deadline);
        if (!last) {
            json_decref(reply);
            jobq_free(text);
            pace(t0, piece);
            continue;
        }
        bool ok = false;
        json_t *winner = NULL;
        size_t i;
        json_t *j;
        json_array_foreach(json_object_get(reply, "jobs"), i, j)
        {
            if (answered && json_equal(json_object_get(j, "id"), first)) {
                winner = j;
            }
        }
        if (winner != NULL) {
            const char *st = json_string_value(json_object_get(winner, "state"));
            ok = st != NULL && strcmp(st, "succeeded") == 0;
        }
        if (c->json) {
            cli_print_reply(text);
        } else if (rc == EXIT_OK && winner != NULL) {
            print_outcome_json(winner);
            print_states("pending", json_object_get(reply, "pending"));
            json_t *cancelled = json_object_get(reply, "cancelled");
            if (json_array_size(cancelled) > 0) {
                printf("  cancelled:");
                json_t *id;
                json_array_foreach(cancelled, i, id)
                {
                    printf("%s job %lld", i > 0 ? "," : "", (long long)json_integer_value(id));
                }
                printf("\n");
            }
        }
        if (rc == EXIT_OK && !answered) {
            fprintf(stderr, "jobq: wait: no job %s when --timeout ran out\n",
                    strcmp(ws->when, "first") == 0 ? "ended" : "failed");
        }
        json_decref(reply);
        jobq_free(text);
        return rc != EXIT_OK ? rc : ok ? EXIT_OK : EXIT_FAILED;
    }
}

/* group_wait: waits for group gid (limit_ms < 0: for ever) and prints its outcome. */
static int
group_wait(cli *c, int64_t gid, int64_t limit_ms)
{
    int rc = cli_connect(c);
    if (rc != EXIT_OK) {
        return rc;
    }
    double deadline = cli_mono_s() + (double)limit_ms / 1000.0;
    char what[64];
    snprintf(what, sizeof(what), "wait for group %lld", (long long)gid);
    for (;;) {
        int64_t piece = WAIT_PIECE_MS;
        if (limit_ms >= 0) {
            int64_t left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
            piece = left < 0 ? 0 : left < piece ? left : piece;
        }
        json_t *reply;
        char *text;
        rc = cli_call(c,
                      json_pack("{s:s, s:I, s:I}", "op", "wait", "group", (json_int_t)gid,
                                "timeout", (json_int_t)piece),
                      &reply, &text, "%s", what);
        if (reply == NULL) {
            return rc;
        }
        bool done = json_is_true(json_object_get(reply, "done"));
        bool last = rc != EXIT_OK || done || (limit_ms >= 0 && cli_mono_s() >= deadline);
        if (!last) {
            json_decref(reply);
            jobq_free(text);
            continue;
        }
        json_t *g = json_object_get(reply, "group");
        if (c->json) {
            cli_print_reply(text);
        } else if (rc == EXIT_OK) {
            print_group(g);
        }
        json_t *counts = json_object_get(g, "counts");
        bool all_ok = done && json_integer_value(json_object_get(counts, "succeeded")) ==
                                  json_integer_value(json_object_get(g, "size"));
        if (rc == EXIT_OK && !done) {
            fprintf(stderr, "jobq: group %lld is not done yet (timed out)\n", (long long)gid);
        }
        json_decref(reply);
        jobq_free(text);
        return rc != EXIT_OK ? rc : all_ok ? EXIT_OK : EXIT_FAILED;
    }
}

int
cmd_get(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id, gid;
    int rc = group_options(c, cmd, argc, argv, &gid, NULL, NULL);
    if (rc != EXIT_OK) {
        return rc < 0 ? EXIT_OK : rc;
    }
    if (gid != 0) {
        json_t *reply;
        char *text;
        rc = cli_call(c, json_pack("{s:s, s:I}", "op", "get", "group", (json_int_t)gid), &reply,
                      &text, "get group %lld", (long long)gid);
        if (reply == NULL) {
            return rc;
        }
        if (c->json) {
            cli_print_reply(text);
        } else if (rc == EXIT_OK) {
            print_group(json_object_get(reply, "group"));
        }
        json_decref(reply);
        jobq_free(text);
        return rc;
    }
    if ((rc = operands(cmd, argc, 1, "the job ID")) != EXIT_OK ||
        (rc = parse_id(cmd, argv[optind], &id)) != EXIT_OK) {
        return rc;
    }
    char what[64];
    snprintf(what, sizeof(what), "get job %lld", (long long)id);
    if (c->json) {
        return raw_command(c, json_pack("{s:s, s:I}", "op", "get", "id", (json_int_t)id), what, "");
    }
    if ((rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    jobq_job *job;
    int err = jobq_get(c->client, id, &job);
    if (err != JOBQ_OK) {
        return cli_fail(err, "%s", what);
    }
    print_job(job);
    print_progress(jobq_job_json(job));
    print_attempts(jobq_job_json(job));
    jobq_job_free(job);
    return EXIT_OK;
}

int
cmd_logs(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"follow", no_argument, NULL, 'f'},
                                         {"after", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    bool follow = false;
    int64_t after = 0, id;
    int rc = EXIT_OK;
    int ch;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-f") == 0) {
            argv[i] = "--follow"; /* cli_getopt knows long options only; -f is tail's spelling */
        }
    }
    while ((ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        switch (ch) {
        case CLI_OPT_END:
            return rc;
        case 'f':
            follow = true;
            break;
        default: /* 'a' */
            if (!cli_parse_i64(optarg, 0, INT64_MAX, &after)) {
                return cli_usage(cmd, "--after takes a line number, not \"%s\"", optarg);
            }
            break;
        }
    }
    if ((rc = operands(cmd, argc, 1, "the job ID")) != EXIT_OK ||
        (rc = parse_id(cmd, argv[optind], &id)) != EXIT_OK) {
        return rc;
    }
    /* Each held request ends well within the client's own timeout. */
    int64_t piece = c->timeout_ms > WAIT_PIECE_MS + 5000 ? WAIT_PIECE_MS : c->timeout_ms / 2;
    for (;;) {
        json_t *reply;
        rc = cli_call(c,
                      json_pack("{s:s, s:I, s:I, s:I}", "op", "logs", "id", (json_int_t)id, "after",
                                (json_int_t)after, "timeout", (json_int_t)(follow ? piece : 0)),
                      &reply, NULL, "logs of job %lld", (long long)id);
        if (reply == NULL || rc != EXIT_OK) {
            json_decref(reply);
            return rc;
        }
        size_t i;
        json_t *l;
        json_t *lines = json_object_get(reply, "lines");
        json_array_foreach(lines, i, l)
        {
            if (c->json) {
                char *text = json_dumps(l, JSON_COMPACT);
                printf("%s\n", text != NULL ? text : "{}");
                free(text);
            } else {
                printf("%s\n", json_string_value(json_object_get(l, "line")));
            }
        }
        fflush(stdout);
        after = json_integer_value(json_object_get(reply, "next"));
        bool done = json_is_true(json_object_get(reply, "done"));
        bool more = json_array_size(lines) > 0;
        json_decref(reply);
        if (done || (!follow && !more)) {
            return EXIT_OK;
        }
    }
}

int
cmd_wait(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t limit_ms = -1, gid;
    wait_strategy ws = {0};
    int rc = group_options(c, cmd, argc, argv, &gid, &limit_ms, &ws);
    if (rc != EXIT_OK) {
        return rc < 0 ? EXIT_OK : rc;
    }
    if (gid != 0 && ws.when != NULL) {
        return strategy_wait(c, NULL, 0, gid, limit_ms, &ws);
    }
    if (gid != 0) {
        return group_wait(c, gid, limit_ms);
    }
    if (optind >= argc) {
        return cli_usage(cmd, "missing the job ID");
    }
    size_t n = (size_t)(argc - optind);
    int64_t *ids = calloc(n, sizeof(int64_t));
    if (ids == NULL) {
        fprintf(stderr, "jobq: wait: out of memory\n");
        return EXIT_FAILED;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = parse_id(cmd, argv[optind + (int)i], &ids[i])) != EXIT_OK) {
            free(ids);
            return rc;
        }
    }
    if (ws.when != NULL) {
        rc = strategy_wait(c, ids, n, 0, limit_ms, &ws);
    } else if (c->json) {
        rc = cli_wait_json(c, ids, n, limit_ms);
    } else {
        double deadline = cli_mono_s() + (double)limit_ms / 1000.0;
        rc = EXIT_OK;
        for (size_t i = 0; i < n; i++) {
            int64_t left = -1;
            if (limit_ms >= 0) {
                left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
                left = left < 0 ? 0 : left;
            }
            int one = cli_wait_job(c, ids[i], left);
            if (one == EXIT_UNREACH) {
                rc = one;
                break;
            }
            rc = one != EXIT_OK ? one : rc;
        }
    }
    free(ids);
    return rc;
}

int
cmd_cancel(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id;
    int rc = id_command(c, cmd, argc, argv, &id);
    if (rc != EXIT_OK) {
        return rc;
    }
    char what[64], done[64];
    snprintf(what, sizeof(what), "cancel job %lld", (long long)id);
    snprintf(done, sizeof(done), "cancelled job %lld", (long long)id);
    if (c->json) {
        return raw_command(c, json_pack("{s:s, s:I}", "op", "cancel", "id", (json_int_t)id), what,
                           done);
    }
    if ((rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    int err = jobq_cancel(c->client, id);
    if (err != JOBQ_OK) {
        return cli_fail(err, "%s", what);
    }
    printf("%s\n", done);
    return EXIT_OK;
}

int
cmd_retry(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"queue", required_argument, NULL, 'q'},
                                         {"state", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    const char *queue = NULL, *state = NULL;
    int rc = EXIT_OK;
    int ch;
    while ((ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        switch (ch) {
        case CLI_OPT_END:
            return rc;
        case 'q':
            queue = optarg;
            break;
        default: /* 's' */
            if (strcmp(optarg, "dead") != 0 && strcmp(optarg, "cancelled") != 0) {
                return cli_usage(cmd, "--state is dead or cancelled, not \"%s\"", optarg);
            }
            state = optarg;
            break;
        }
    }
    if (state != NULL || queue != NULL) {
        if (state == NULL) {
            return cli_usage(cmd, "--queue needs --state dead or --state cancelled");
        }
        if ((rc = operands(cmd, argc, 0, "")) != EXIT_OK) {
            return rc;
        }
        json_t *req = json_pack("{s:s, s:s}", "op", "retry", "state", state);
        if (req != NULL && queue != NULL) {
            json_object_set_new(req, "queue", json_string(queue));
        }
        json_t *reply;
        char *text;
        rc = cli_call(c, req, &reply, &text, "retry %s jobs", state);
        if (reply == NULL) {
            return rc;
        }
        if (c->json) {
            cli_print_reply(text);
        } else if (rc == EXIT_OK) {
            printf("%lld %s job(s) are ready again\n",
                   (long long)json_integer_value(json_object_get(reply, "retried")), state);
        }
        json_decref(reply);
        jobq_free(text);
        return rc;
    }
    int64_t id;
    if ((rc = operands(cmd, argc, 1, "the job ID")) != EXIT_OK ||
        (rc = parse_id(cmd, argv[optind], &id)) != EXIT_OK) {
        return rc;
    }
    char what[64], done[64];
    snprintf(what, sizeof(what), "retry job %lld", (long long)id);
    snprintf(done, sizeof(done), "job %lld is ready again", (long long)id);
    return raw_command(c, json_pack("{s:s, s:I}", "op", "retry", "id", (json_int_t)id), what, done);
}

int
cmd_promote(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id;
    int rc = id_command(c, cmd, argc, argv, &id);
    if (rc != EXIT_OK) {
        return rc;
    }
    char what[64], done[64];
    snprintf(what, sizeof(what), "promote job %lld", (long long)id);
    snprintf(done, sizeof(done), "job %lld is ready now", (long long)id);
    return raw_command(c, json_pack("{s:s, s:I}", "op", "promote", "id", (json_int_t)id), what, done);
}

int
cmd_backup(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 1, "the backup FILE")) != EXIT_OK) {
        return rc;
    }
    const char *file = argv[optind];
    char path[4096];
    if (file[0] == '/') {
        snprintf(path, sizeof(path), "%s", file);
    } else {
        char cwd[3000];
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            return cli_usage(cmd, "cannot resolve \"%s\": give an absolute path", file);
        }
        snprintf(path, sizeof(path), "%s/%s", cwd, file);
    }
    char what[64], done[4200];
    snprintf(what, sizeof(what), "back up the database");
    snprintf(done, sizeof(done), "backup written to %s", path);
    return raw_command(c, json_pack("{s:s, s:s}", "op", "backup", "path", path), what, done);
}

int
cmd_explain(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id;
    int rc = id_command(c, cmd, argc, argv, &id);
    if (rc != EXIT_OK) {
        return rc;
    }
    json_t *reply;
    char *text;
    rc = cli_call(c, json_pack("{s:s, s:I}", "op", "explain", "id", (json_int_t)id), &reply, &text,
                  "explain job %lld", (long long)id);
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        printf("job %lld: %s\n", (long long)id,
               json_string_value(json_object_get(reply, "explain")));
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

static int
queue_command(cli *c, const cli_cmd *cmd, int argc, char **argv, const char *done_verb)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 1, "the QUEUE")) != EXIT_OK) {
        return rc;
    }
    const char *queue = argv[optind];
    char what[300], done[300];
    snprintf(what, sizeof(what), "%s queue \"%s\"", cmd->name, queue);
    snprintf(done, sizeof(done), "%s queue \"%s\"", done_verb, queue);
    return raw_command(c, json_pack("{s:s, s:s}", "op", cmd->name, "queue", queue), what, done);
}

int
cmd_pause(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    return queue_command(c, cmd, argc, argv, "paused");
}

int
cmd_resume(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    return queue_command(c, cmd, argc, argv, "resumed");
}

/* json_int_cell: obj[name] as decimal text, "-" when not an integer. */
static const char *
json_int_cell(const json_t *obj, const char *name, char *buf, size_t size)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v)) {
        return "-";
    }
    snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    return buf;
}

static int
print_list(const json_t *reply, const char *hint_args)
{
    static const char *const names[] = {"ID",       "QUEUE",  "STATE",   "ATTEMPT",
                                        "PRIORITY", "RUN_AT", "CREATED", "GROUP_KEY"};
    static const bool right[] = {true, false, false, true, true, false, false, false};
    const json_t *jobs = json_object_get(reply, "jobs");
    /* The GROUP_KEY column only when a job of the page has one. */
    size_t ncols = 7;
    size_t i;
    const json_t *job;
    json_array_foreach(jobs, i, job)
    {
        if (json_is_string(json_object_get(job, "group_key"))) {
            ncols = 8;
        }
    }
    cli_table t;
    if (!cli_table_init(&t, ncols, names, right)) {
        fprintf(stderr, "jobq: list: out of memory\n");
        return EXIT_FAILED;
    }
    json_array_foreach(jobs, i, job)
    {
        char id[32], attempt[48], prio[32], run_at[32], created[32];
        const json_t *ra = json_object_get(job, "run_at");
        const json_t *ca = json_object_get(job, "created_at");
        snprintf(attempt, sizeof(attempt), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(job, "attempt")),
                 (long long)json_integer_value(json_object_get(job, "max_attempts")));
        const char *queue = json_string_value(json_object_get(job, "queue"));
        const char *state = json_string_value(json_object_get(job, "state"));
        const char *cells[] = {
            json_int_cell(job, "id", id, sizeof(id)),
            queue != NULL ? queue : "-",
            state != NULL ? state : "-",
            attempt,
            json_int_cell(job, "priority", prio, sizeof(prio)),
            cli_fmt_time(json_integer_value(ra), run_at, sizeof(run_at)),
            cli_fmt_time(json_integer_value(ca), created, sizeof(created)),
            json_is_string(json_object_get(job, "group_key"))
                ? json_string_value(json_object_get(job, "group_key"))
                : "-",
        };
        if (!cli_table_row(&t, cells)) {
            cli_table_free(&t);
            fprintf(stderr, "jobq: list: out of memory\n");
            return EXIT_FAILED;
        }
    }
    if (json_array_size(jobs) == 0) {
        fprintf(stderr, "no jobs match\n");
    } else {
        cli_table_print(&t);
    }
    cli_table_free(&t);
    const json_t *next = json_object_get(reply, "next");
    if (json_is_integer(next)) {
        fprintf(stderr, "more jobs: jobq list%s --after %lld\n", hint_args,
                (long long)json_integer_value(next));
    }
    return EXIT_OK;
}

int
cmd_list(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"queue", required_argument, NULL, 'q'},
                                         {"state", required_argument, NULL, 's'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"after", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *queue = NULL, *state = NULL;
    int64_t limit = 0, after = -1;
    int rc = EXIT_OK;
    int ch;
    while ((ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        switch (ch) {
        case CLI_OPT_END:
            return rc;
        case 'q':
            queue = optarg;
            break;
        case 's':
            if (jobq_state_parse(optarg) < 0) {
                return cli_usage(cmd,
                                 "unknown state \"%s\"; states are scheduled, ready, running, "
                                 "retrying, succeeded, dead, cancelled",
                                 optarg);
            }
            state = optarg;
            break;
        case 'n':
            if (!cli_parse_i64(optarg, 1, 1000, &limit)) {
                return cli_usage(cmd, "--limit needs a number from 1 to 1000, not \"%s\"", optarg);
            }
            break;
        default: /* 'a' */
            if (!cli_parse_i64(optarg, 0, INT64_MAX, &after)) {
                return cli_usage(cmd, "--after needs a job ID, not \"%s\"", optarg);
            }
            break;
        }
    }
    if ((rc = operands(cmd, argc, 0, "")) != EXIT_OK) {
        return rc;
    }
    json_t *req = json_pack("{s:s}", "op", "list");
    char hint[600] = "";
    size_t hl = 0;
    if (req != NULL && queue != NULL) {
        json_object_set_new(req, "queue", json_string(queue));
        hl += (size_t)snprintf(hint + hl, sizeof(hint) - hl, " --queue '%s'", queue);
    }
    if (req != NULL && state != NULL) {
        json_object_set_new(req, "state", json_string(state));
        hl += (size_t)snprintf(hint + hl, sizeof(hint) - hl, " --state %s", state);
    }
    if (req != NULL && limit > 0) {
        json_object_set_new(req, "limit", json_integer(limit));
        snprintf(hint + hl, sizeof(hint) - hl, " --limit %lld", (long long)limit);
    }
    if (req != NULL && after >= 0) {
        json_object_set_new(req, "after", json_integer(after));
    }
    json_t *reply;
    char *text;
    rc = cli_call(c, req, &reply, &text, "list");
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        rc = print_list(reply, hint);
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
print_stats(const json_t *reply)
{
    static const char *const names[] = {"QUEUE",    "SCHEDULED", "READY",  "RUNNING",
                                        "RETRYING", "SUCCEEDED", "DEAD",   "CANCELLED",
                                        "WAITING",  "PAUSED",    "BREAKER"};
    static const char *const fields[] = {"scheduled", "ready", "running",   "retrying",
                                         "succeeded", "dead",  "cancelled", "waiting"};
    static const bool right[] = {false, true, true, true,  true, true,
                                 true,  true, true, false, false};
    const json_t *queues = json_object_get(reply, "queues");
    const json_t *cl = json_object_get(reply, "cluster");
    if (json_is_object(cl)) {
        /* Several nodes on PostgreSQL: which node answered, its role and the leader. */
        const char *node = json_string_value(json_object_get(cl, "node"));
        const char *leader = json_string_value(json_object_get(cl, "leader_node"));
        const char *store = json_string_value(json_object_get(cl, "store"));
        printf("node %s (%s; leader %s), store %s\n", node != NULL ? node : "?",
               json_is_true(json_object_get(cl, "leader")) ? "leader" : "follower",
               leader != NULL && leader[0] != '\0' ? leader : "none known",
               store != NULL ? store : "?");
    }
    size_t n = json_object_size(queues);
    if (n == 0) {
        fprintf(stderr, "no queues\n");
        return EXIT_OK;
    }
    const char **keys = calloc(n, sizeof(char *));
    cli_table t;
    if (keys == NULL || !cli_table_init(&t, 11, names, right)) {
        free(keys);
        fprintf(stderr, "jobq: stats: out of memory\n");
        return EXIT_FAILED;
    }
    size_t k = 0;
    const char *key;
    const json_t *q;
    json_object_foreach((json_t *)queues, key, q)
    {
        keys[k++] = key;
    }
    qsort(keys, n, sizeof(char *), cmp_str);
    int rc = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        q = json_object_get(queues, keys[i]);
        char num[8][32];
        const char *cells[11];
        cells[0] = keys[i];
        for (size_t f = 0; f < 8; f++) {
            cells[1 + f] = json_int_cell(q, fields[f], num[f], sizeof(num[f]));
        }
        const json_t *paused = json_object_get(q, "paused");
        cells[9] = json_is_boolean(paused) ? (json_is_true(paused) ? "yes" : "no") : "-";
        const char *breaker = json_string_value(json_object_get(q, "breaker"));
        cells[10] = breaker != NULL ? breaker : "-";
        if (!cli_table_row(&t, cells)) {
            fprintf(stderr, "jobq: stats: out of memory\n");
            rc = EXIT_FAILED;
            break;
        }
    }
    if (rc == EXIT_OK) {
        cli_table_print(&t);
    }
    cli_table_free(&t);
    free(keys);
    return rc;
}

int
cmd_stats(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 0, "")) != EXIT_OK) {
        return rc;
    }
    json_t *reply;
    char *text;
    rc = cli_call(c, json_pack("{s:s}", "op", "stats"), &reply, &text, "stats");
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        rc = print_stats(reply);
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

int
cmd_schedules(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO || (rc = operands(cmd, argc, 0, "")) != EXIT_OK) {
        return rc;
    }
    json_t *reply;
    char *text;
    rc = cli_call(c, json_pack("{s:s}", "op", "schedules"), &reply, &text, "list the schedules");
    if (reply == NULL) {
        return rc;
    }
    if (c->json || rc != EXIT_OK) {
        if (c->json) {
            cli_print_reply(text);
        }
        json_decref(reply);
        jobq_free(text);
        return rc;
    }
    static const char *const names[] = {"SCHEDULE", "CRON", "TIMEZONE", "QUEUE", "MISSED",
                                        "LAST",     "NEXT", "SOURCE",   "STATE"};
    cli_table t;
    if (!cli_table_init(&t, 9, names, NULL)) {
        fprintf(stderr, "jobq: schedules: out of memory\n");
        rc = EXIT_FAILED;
    }
    size_t i;
    json_t *sc;
    json_array_foreach(json_object_get(reply, "schedules"), i, sc)
    {
        if (rc != EXIT_OK) {
            break;
        }
        char last[40], next[40];
        json_t *nx = json_object_get(sc, "next");
        json_t *lt = json_object_get(sc, "last_tick"); /* null: it has not fired yet */
        const char *cells[9] = {
            json_string_value(json_object_get(sc, "name")),
            json_string_value(json_object_get(sc, "cron")),
            json_string_value(json_object_get(sc, "timezone")),
            json_string_value(json_object_get(sc, "queue")),
            json_string_value(json_object_get(sc, "missed")),
            json_is_integer(lt) ? cli_fmt_time(json_integer_value(lt), last, sizeof(last))
                                : "never",
            json_is_integer(nx) ? cli_fmt_time(json_integer_value(nx), next, sizeof(next))
                                : "never",
            json_string_value(json_object_get(sc, "source")),
            json_is_true(json_object_get(sc, "paused")) ? "paused" : "active",
        };
        for (size_t k = 0; k < 9; k++) {
            cells[k] = cells[k] != NULL ? cells[k] : "-";
        }
        if (!cli_table_row(&t, cells)) {
            fprintf(stderr, "jobq: schedules: out of memory\n");
            rc = EXIT_FAILED;
        }
    }
    if (rc == EXIT_OK) {
        if (json_array_size(json_object_get(reply, "schedules")) == 0) {
            printf("no schedules: add [schedule.NAME] sections to jobqd's config, or one with "
                   "jobq schedules add\n");
        } else {
            cli_table_print(&t);
        }
    }
    cli_table_free(&t);
    json_decref(reply);
    jobq_free(text);
    return rc;
}
