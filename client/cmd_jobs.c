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

/* parse_id: a job id operand. */
static int
parse_id(const cli_cmd *cmd, const char *s, int64_t *idp)
{
    if (!cli_parse_i64(s, 1, INT64_MAX, idp)) {
        return cli_usage(cmd, "a job ID is a positive integer, not \"%s\"", s);
    }
    return EXIT_OK;
}

/* id_operand: the command's one operand after its options, a job ID. */
static int
id_operand(const cli_cmd *cmd, int argc, char **argv, int64_t *idp)
{
    int rc = cli_operands(cmd, argc, 1, "the job ID");
    return rc != EXIT_OK ? rc : parse_id(cmd, argv[optind], idp);
}

/* id_command: parses a command whose one operand is a job ID (and the common options). */
static int
id_command(cli *c, const cli_cmd *cmd, int argc, char **argv, int64_t *idp)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 1, "the job ID");
    if (rc != CLI_GO) {
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

/* wait_piece: how long the next held wait may last: max_ms, or less when a limit is given
 * (limit_ms >= 0) and less than that is left until deadline (cli_mono_s). */
static int64_t
wait_piece(int64_t max_ms, int64_t limit_ms, double deadline)
{
    if (limit_ms < 0) {
        return max_ms;
    }
    int64_t left = (int64_t)((deadline - cli_mono_s()) * 1000.0);
    return left < 0 ? 0 : left < max_ms ? left : max_ms;
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
        int64_t piece = wait_piece(WAIT_PIECE_MS, limit_ms, deadline);
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
        int64_t piece = wait_piece(max_piece, limit_ms, deadline);
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

/* print_pong: ping's reply; sent_at points to when the ping was sent (cli_mono_s). */
static int
print_pong(const json_t *reply, const void *sent_at)
{
    double ms = (cli_mono_s() - *(const double *)sent_at) * 1000.0;
    const char *version = json_string_value(json_object_get(reply, "version"));
    printf("pong (jobqd %s) in %.1f ms\n", version != NULL ? version : "?", ms);
    return EXIT_OK;
}

int
cmd_ping(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 0, "");
    if (rc != CLI_GO) {
        return rc;
    }
    if ((rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    double t0 = cli_mono_s();
    return cli_request(c, json_pack("{s:s}", "op", "ping"), print_pong, &t0, "ping");
}

/* print_line: prints the line (a string) for a reply that only says it was done. */
static int
print_line(const json_t *reply, const void *line)
{
    (void)reply;
    printf("%s\n", (const char *)line);
    return EXIT_OK;
}

/* raw_command: sends req; prints the reply with --json, else done_line on success. For the
 * commands that have no typed libjobq call, and for --json. */
static int
raw_command(cli *c, json_t *req, const char *what, const char *done_line)
{
    return cli_request(c, req, print_line, done_line, what);
}

/* job_command: raw_command for {"op": op, "id": id}: "VERB job ID" names it in messages; on
 * success it prints "BEFOREjob IDAFTER" ("cancelled job 7", "job 7 is ready now"). */
static int
job_command(cli *c, const char *op, int64_t id, const char *verb, const char *before,
            const char *after)
{
    char what[64], done[128];
    snprintf(what, sizeof(what), "%s job %lld", verb, (long long)id);
    snprintf(done, sizeof(done), "%sjob %lld%s", before, (long long)id, after);
    return raw_command(c, json_pack("{s:s, s:I}", "op", op, "id", (json_int_t)id), what, done);
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

/* print_group_reply: the group of a get reply. */
static int
print_group_reply(const json_t *reply, const void *unused)
{
    (void)unused;
    print_group(json_object_get(reply, "group"));
    return EXIT_OK;
}

/* A wait strategy: --any or --first-failure (the daemon's return_when), --cancel-rest. */
typedef struct wait_strategy {
    const char *when; /* NULL: all */
    bool cancel_rest;
} wait_strategy;

enum { OPT_ANY = 1000, OPT_FIRST_FAILURE, OPT_CANCEL_REST };

/* group_args: where group_options puts what the options say. */
typedef struct group_args {
    int64_t *groupp;
    int64_t *limitp;   /* NULL for get */
    wait_strategy *ws; /* NULL for get */
} group_args;

static int
group_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    group_args *g = ctx;
    if (ch == 'g') {
        return cli_opt_int(cmd, "--group", arg, 1, INT64_MAX,
                           "needs a group id (a positive integer)", g->groupp);
    }
    if (g->limitp == NULL || g->ws == NULL) {
        return cli_usage(cmd, "unexpected option");
    }
    if (ch == OPT_ANY || ch == OPT_FIRST_FAILURE) {
        const char *when = ch == OPT_ANY ? "first" : "first_failure";
        if (g->ws->when != NULL && strcmp(g->ws->when, when) != 0) {
            return cli_usage(cmd, "give --any or --first-failure, not both");
        }
        g->ws->when = when;
        return EXIT_OK;
    }
    if (ch == OPT_CANCEL_REST) {
        g->ws->cancel_rest = true;
        return EXIT_OK;
    }
    return cli_opt_duration(cmd, "--timeout", arg, true, "30s or 5m", g->limitp);
}

/* group_options: parses the options of get/wait that take --group ID; *groupp is 0 without.
 * limitp and ws (NULL for get): wait's --timeout and its strategy. Returns EXIT_OK to go on,
 * -1 after --help, else the exit status. */
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
    *groupp = 0;
    group_args g = {groupp, limitp, ws};
    int rc = cli_parse(c, cmd, argc, argv, opts, group_option, &g);
    if (rc != CLI_GO) {
        return rc == EXIT_OK ? -1 : rc;
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
        int64_t piece = wait_piece(WAIT_PIECE_MS, limit_ms, deadline);
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
        int64_t piece = wait_piece(WAIT_PIECE_MS, limit_ms, deadline);
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
        char what[64];
        snprintf(what, sizeof(what), "get group %lld", (long long)gid);
        return cli_request(c, json_pack("{s:s, s:I}", "op", "get", "group", (json_int_t)gid),
                           print_group_reply, NULL, what);
    }
    if ((rc = id_operand(cmd, argc, argv, &id)) != EXIT_OK) {
        return rc;
    }
    char what[64];
    snprintf(what, sizeof(what), "get job %lld", (long long)id);
    if (c->json) {
        return cli_request(c, json_pack("{s:s, s:I}", "op", "get", "id", (json_int_t)id), NULL,
                           NULL, what);
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

/* logs_args: the options of jobq logs. */
typedef struct logs_args {
    int64_t after; /* --after: the first line number */
    bool follow;
} logs_args;

static int
logs_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    logs_args *a = ctx;
    a->follow = a->follow || ch == 'f';
    return ch == 'a'
               ? cli_opt_int(cmd, "--after", arg, 0, INT64_MAX, "takes a line number", &a->after)
               : EXIT_OK;
}

int
cmd_logs(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"follow", no_argument, NULL, 'f'},
                                         {"after", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    logs_args a = {.after = 0, .follow = false};
    int64_t id;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "-f") == 0) {
            argv[i] = "--follow"; /* cli_parse knows long options only; -f is tail's spelling */
        }
    }
    int rc = cli_parse(c, cmd, argc, argv, opts, logs_option, &a);
    if (rc != CLI_GO || (rc = id_operand(cmd, argc, argv, &id)) != EXIT_OK) {
        return rc;
    }
    bool follow = a.follow;
    int64_t after = a.after;
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
            int64_t left = limit_ms < 0 ? -1 : wait_piece(INT64_MAX, limit_ms, deadline);
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
    if (c->json) {
        return job_command(c, "cancel", id, "cancel", "cancelled ", "");
    }
    if ((rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    int err = jobq_cancel(c->client, id);
    if (err != JOBQ_OK) {
        return cli_fail(err, "cancel job %lld", (long long)id);
    }
    printf("cancelled job %lld\n", (long long)id);
    return EXIT_OK;
}

/* filter_args: the --queue and --state of jobq retry and jobq list. */
typedef struct filter_args {
    const char *queue;
    const char *state;
} filter_args;

static int
retry_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    filter_args *f = ctx;
    if (ch == 'q') {
        f->queue = arg;
    } else if (strcmp(arg, "dead") != 0 && strcmp(arg, "cancelled") != 0) {
        return cli_usage(cmd, "--state is dead or cancelled, not \"%s\"", arg);
    } else {
        f->state = arg;
    }
    return EXIT_OK;
}

/* print_retried: how many jobs in state (a string) a retry by state made ready. */
static int
print_retried(const json_t *reply, const void *state)
{
    printf("%lld %s job(s) are ready again\n",
           (long long)json_integer_value(json_object_get(reply, "retried")), (const char *)state);
    return EXIT_OK;
}

int
cmd_retry(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"queue", required_argument, NULL, 'q'},
                                         {"state", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    filter_args f = {NULL, NULL};
    int rc = cli_parse(c, cmd, argc, argv, opts, retry_option, &f);
    if (rc != CLI_GO) {
        return rc;
    }
    const char *queue = f.queue, *state = f.state;
    if (state != NULL || queue != NULL) {
        if (state == NULL) {
            return cli_usage(cmd, "--queue needs --state dead or --state cancelled");
        }
        if ((rc = cli_operands(cmd, argc, 0, "")) != EXIT_OK) {
            return rc;
        }
        json_t *req = json_pack("{s:s, s:s}", "op", "retry", "state", state);
        if (req != NULL && queue != NULL) {
            json_object_set_new(req, "queue", json_string(queue));
        }
        char what[64];
        snprintf(what, sizeof(what), "retry %s jobs", state);
        return cli_request(c, req, print_retried, state, what);
    }
    int64_t id;
    if ((rc = id_operand(cmd, argc, argv, &id)) != EXIT_OK) {
        return rc;
    }
    return job_command(c, "retry", id, "retry", "", " is ready again");
}

int
cmd_promote(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id;
    int rc = id_command(c, cmd, argc, argv, &id);
    return rc != EXIT_OK ? rc : job_command(c, "promote", id, "promote", "", " is ready now");
}

int
cmd_backup(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 1, "the backup FILE");
    if (rc != CLI_GO) {
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

/* print_explain: why the job (its id at id) is where it is. */
static int
print_explain(const json_t *reply, const void *id)
{
    printf("job %lld: %s\n", (long long)*(const int64_t *)id,
           json_string_value(json_object_get(reply, "explain")));
    return EXIT_OK;
}

int
cmd_explain(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int64_t id;
    int rc = id_command(c, cmd, argc, argv, &id);
    if (rc != EXIT_OK) {
        return rc;
    }
    char what[64];
    snprintf(what, sizeof(what), "explain job %lld", (long long)id);
    return cli_request(c, json_pack("{s:s, s:I}", "op", "explain", "id", (json_int_t)id),
                       print_explain, &id, what);
}

static int
queue_command(cli *c, const cli_cmd *cmd, int argc, char **argv, const char *done_verb)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 1, "the QUEUE");
    if (rc != CLI_GO) {
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

/* attempt_cell: "attempt/max_attempts" of a job object. */
static const char *
attempt_cell(const json_t *job, char *buf, size_t size)
{
    snprintf(buf, size, "%lld/%lld", (long long)json_integer_value(json_object_get(job, "attempt")),
             (long long)json_integer_value(json_object_get(job, "max_attempts")));
    return buf;
}

/* print_list: a list reply as a table; hint_args (a string): the options that ask for the
 * same jobs again, for the line that says how to get the next page. */
static int
print_list(const json_t *reply, const void *hint_args)
{
    static const cli_column cols[] = {
        CLI_COL_INT("ID", "id"),
        CLI_COL_TEXT("QUEUE", "queue"),
        CLI_COL_TEXT("STATE", "state"),
        CLI_COL_FN("ATTEMPT", attempt_cell, true),
        CLI_COL_INT("PRIORITY", "priority"),
        CLI_COL_TIME("RUN_AT", "run_at", NULL),
        CLI_COL_TIME("CREATED", "created_at", NULL),
        CLI_COL_TEXT("GROUP_KEY", "group_key"),
    };
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
    if (json_array_size(jobs) == 0) {
        fprintf(stderr, "no jobs match\n");
    } else if (cli_print_rows("list", cols, ncols, jobs) != EXIT_OK) {
        return EXIT_FAILED;
    }
    const json_t *next = json_object_get(reply, "next");
    if (json_is_integer(next)) {
        fprintf(stderr, "more jobs: jobq list%s --after %lld\n", (const char *)hint_args,
                (long long)json_integer_value(next));
    }
    return EXIT_OK;
}

/* list_args: the options of jobq list. */
typedef struct list_args {
    filter_args f;
    int64_t limit; /* 0: the daemon's default */
    int64_t after; /* -1: from the first job */
} list_args;

static int
list_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    list_args *a = ctx;
    switch (ch) {
    case 'q':
        a->f.queue = arg;
        return EXIT_OK;
    case 's':
        if (jobq_state_parse(arg) < 0) {
            return cli_usage(cmd,
                             "unknown state \"%s\"; states are scheduled, ready, running, "
                             "retrying, succeeded, dead, cancelled",
                             arg);
        }
        a->f.state = arg;
        return EXIT_OK;
    case 'n':
        return cli_opt_int(cmd, "--limit", arg, 1, 1000, "needs a number from 1 to 1000",
                           &a->limit);
    default: /* 'a' */
        return cli_opt_int(cmd, "--after", arg, 0, INT64_MAX, "needs a job ID", &a->after);
    }
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
    list_args a = {.limit = 0, .after = -1};
    int rc = cli_parse(c, cmd, argc, argv, opts, list_option, &a);
    if (rc != CLI_GO || (rc = cli_operands(cmd, argc, 0, "")) != EXIT_OK) {
        return rc;
    }
    const char *queue = a.f.queue, *state = a.f.state;
    int64_t limit = a.limit, after = a.after;
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
    return cli_request(c, req, print_list, hint, "list");
}

/* paused_cell: whether a queue of a stats reply is paused: yes, no, or "-" when not said. */
static const char *
paused_cell(const json_t *q, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    const json_t *paused = json_object_get(q, "paused");
    return json_is_boolean(paused) ? (json_is_true(paused) ? "yes" : "no") : "-";
}

static int
print_stats(const json_t *reply, const void *unused)
{
    static const cli_column cols[] = {
        CLI_COL_TEXT("QUEUE", NULL),         CLI_COL_INT("SCHEDULED", "scheduled"),
        CLI_COL_INT("READY", "ready"),       CLI_COL_INT("RUNNING", "running"),
        CLI_COL_INT("RETRYING", "retrying"), CLI_COL_INT("SUCCEEDED", "succeeded"),
        CLI_COL_INT("DEAD", "dead"),         CLI_COL_INT("CANCELLED", "cancelled"),
        CLI_COL_INT("WAITING", "waiting"),   CLI_COL_FN("PAUSED", paused_cell, false),
        CLI_COL_TEXT("BREAKER", "breaker"),
    };
    (void)unused;
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
    if (json_object_size(queues) == 0) {
        fprintf(stderr, "no queues\n");
        return EXIT_OK;
    }
    return cli_print_rows("stats", cols, sizeof(cols) / sizeof(cols[0]), queues);
}

int
cmd_stats(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    return cli_show(c, cmd, argc, argv, "stats", print_stats, "stats");
}

static int
print_schedules(const json_t *reply, const void *unused)
{
    static const cli_column cols[] = {
        CLI_COL_TEXT("SCHEDULE", "name"),
        CLI_COL_TEXT("CRON", "cron"),
        CLI_COL_TEXT("TIMEZONE", "timezone"),
        CLI_COL_TEXT("QUEUE", "queue"),
        CLI_COL_TEXT("MISSED", "missed"),
        CLI_COL_TIME("LAST", "last_tick", "never"), /* null: it has not fired yet */
        CLI_COL_TIME("NEXT", "next", "never"),
        CLI_COL_TEXT("SOURCE", "source"),
        CLI_COL_FLAG("STATE", "paused", "paused", "active"),
    };
    (void)unused;
    const json_t *schedules = json_object_get(reply, "schedules");
    if (json_array_size(schedules) == 0) {
        printf("no schedules: add [schedule.NAME] sections to jobqd's config, or one with "
               "jobq schedules add\n");
        return EXIT_OK;
    }
    return cli_print_rows("schedules", cols, sizeof(cols) / sizeof(cols[0]), schedules);
}

int
cmd_schedules(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    return cli_show(c, cmd, argc, argv, "schedules", print_schedules, "list the schedules");
}
