/* jobq.c: the jobq command-line client: global options, the command table and help,
 * connecting, and reporting errors with the documented exit statuses. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define STR2(x) #x
#define STR(x) STR2(x)
#define LIB_VERSION STR(JOBQ_VERSION_MAJOR) "." STR(JOBQ_VERSION_MINOR) "." STR(JOBQ_VERSION_PATCH)

static const char common_help[] =
    "  --url URL        the daemon (default: $JOBQ_URL, else tcp://127.0.0.1:7450)\n"
    "  --json           print the daemon's reply object (one JSON line) instead of text\n"
    "  -h, --help       this help\n";

static const cli_cmd commands[] = {
    {"ping", "", "check that jobqd answers",
     "Sends a ping and prints the daemon's version and the round-trip time.\n", cmd_ping},
    {"submit",
     "QUEUE [PAYLOAD|-] [--delay DUR | --at TIME] [--priority N] [--max-attempts N]\n"
     "       [--timeout DUR] [--key K [--dedupe MODE [--debounce-max DUR]]]\n"
     "       [--expires-in DUR | --expires-at TIME] [--after ID[,ID...] [--after-policy P]]\n"
     "       [--wait]\n"
     "   or: jobq submit QUEUE --batch FILE|- [--delay DUR | --at TIME] [--priority N] ...\n"
     "   or: jobq submit QUEUE --batch FILE|- --group [--on-complete QUEUE:PAYLOAD] ...",
     "submit a job (or many, one JSON payload a line)",
     "Submits one job to QUEUE. PAYLOAD is a JSON text: an object, an array, a number, or a\n"
     "string in quotes ('\"text\"'). Without PAYLOAD, or with -, the payload is read from stdin\n"
     "when it is not a terminal; with neither the payload is null. Prints the job's id\n"
     "(followed by \"(duplicate)\" when --key matched an existing job).\n"
     "\n"
     "Options:\n"
     "  --delay DUR         run no earlier than DUR from now\n"
     "  --at TIME           run no earlier than TIME: Unix seconds, YYYY-MM-DDTHH:MM[:SS][Z]\n"
     "                      (UTC), or +DUR from now\n"
     "  --priority N        higher runs first (default 0)\n"
     "  --max-attempts N    attempts before the job is dead (default: the queue's)\n"
     "  --timeout DUR       how long one attempt may run (default: the queue's)\n"
     "  --key K             idempotency key: a second submit with the same key and payload\n"
     "                      returns the first job instead of adding one\n"
     "  --dedupe MODE       what a submit whose --key is in use does: ttl (the default: one\n"
     "                      job per key_ttl), until_done (one job until it ends), replace (a\n"
     "                      job not started yet takes the new payload and run time; prints\n"
     "                      \"(replaced)\"), debounce (replace; --delay counts from now)\n"
     "  --debounce-max DUR  with --dedupe debounce: run at most DUR after the first submit\n"
     "  --expires-in DUR    cancel the job (error \"expired\") if it has not started by then\n"
     "  --expires-at TIME   the same at TIME (as --at)\n"
     "  --wait              wait for the job to finish and print its outcome; the exit\n"
     "                      status is 0 only if it succeeded\n"
     "  --batch FILE|-      submit every line of FILE (NDJSON: one JSON payload a line; blank\n"
     "                      lines are skipped). Every line is checked first: if one is not\n"
     "                      JSON nothing is submitted. Jobs go in requests of 1000, several\n"
     "                      at once; each request is atomic (its 1000 jobs are all stored or\n"
     "                      none), the whole file is not: if a request fails, the message\n"
     "                      says which lines were submitted. The options above, except --key\n"
     "                      and --wait, apply to every job. A progress bar is drawn on stderr\n"
     "                      when it is a terminal.\n"
     "  --after ID[,ID...]  the job waits (state waiting) until every job named succeeded;\n"
     "                      if one ends dead or cancelled, it is cancelled too\n"
     "  --after-policy P    success (the default, as above) or always: run once every job\n"
     "                      named has ended, however it ended\n"
     "  --traceparent TP    the W3C trace context of the job, handed to every attempt\n"
     "                      (TRACEPARENT, a webhook header, a fetched job's field);\n"
     "                      default: $TRACEPARENT, so a handler's submits continue its trace\n"
     "  --tracestate TS     its tracestate (default: $TRACESTATE with $TRACEPARENT)\n"
     "  --group-key K       the job's fairness key (a customer, a tenant): the queue's\n"
     "                      key_concurrency and key_rate apply per key, and keys take turns\n"
     "  --group             with --batch: the jobs form a group, submitted in one atomic\n"
     "                      request (at most the daemon's max_batch jobs); prints the group\n"
     "                      id. `jobq wait --group ID` waits for all of them.\n"
     "  --on-complete QUEUE:PAYLOAD\n"
     "                      with --group: when every job of the group has ended, submit one\n"
     "                      job to QUEUE whose payload is {\"group\": ID, \"payload\": PAYLOAD,\n"
     "                      \"succeeded\": N, \"dead\": N, \"cancelled\": N, \"members\":\n"
     "                      [{\"id\": ID, \"state\": S}, ...]}, exactly once\n",
     cmd_submit},
    {"get", "ID | --group ID", "show a job, or a group's counts",
     "Prints the job's fields, one per line (with --json: the daemon's reply). With --group,\n"
     "the group's size, its jobs counted by state and its on_complete job.\n",
     cmd_get},
    {"wait", "ID... | --group ID [--any | --first-failure] [--cancel-rest] [--timeout DUR]",
     "wait until jobs finish",
     "Waits until every job has finished (succeeded, dead or cancelled) and prints each\n"
     "outcome. The exit status is 0 only if all of them succeeded. With --group, waits for\n"
     "every job of the group (--json: each with its state).\n"
     "With --any, returns as soon as the first job ends (whatever its state); with\n"
     "--first-failure, as soon as one ends dead or cancelled, or all have ended. It prints\n"
     "that job's outcome and the jobs still pending; the exit status is 0 only if that job\n"
     "succeeded. --cancel-rest cancels every job still pending when the wait is answered\n"
     "(error \"lost a race to job N\"): one not started never starts, a running one is\n"
     "stopped as by cancel. Nothing is cancelled on a timeout or if jobq is interrupted.\n"
     "\n"
     "Options:\n"
     "  --any               return when the first job ends\n"
     "  --first-failure     return when the first job fails, or all have ended\n"
     "  --cancel-rest       with --any or --first-failure: cancel the jobs still pending\n"
     "  --timeout DUR       give up after DUR (exit status 1); default: wait for ever\n",
     cmd_wait},
    {"logs", "ID [-f] [--after SEQ]", "print a job's log",
     "Prints the lines the job wrote to its log (an exec command's \"log TEXT\" control lines,\n"
     "a remote worker's jobq_lease_log), oldest first; jobqd keeps the last 1,000 lines or\n"
     "256 KiB of each job. With -f, follows the log until the job ends (each wait is held by\n"
     "jobqd: no polling). With --json, one object per line: {\"seq\", \"attempt\", \"at\",\n"
     "\"line\"}.\n"
     "\n"
     "Options:\n"
     "  -f, --follow        print new lines as they come, until the job ends\n"
     "  --after SEQ         only lines after number SEQ\n",
     cmd_logs},
    {"cancel", "ID", "cancel a job that has not finished",
     "Cancels the job; a running job has its process group killed first. Cancelling a\n"
     "finished job is an error.\n",
     cmd_cancel},
    {"retry", "ID | --state S [--queue Q]", "put dead or cancelled jobs back to ready",
     "Makes a dead or cancelled job ready again, with a fresh attempt budget. With --state\n"
     "(dead or cancelled), every job in that state, of queue Q with --queue.\n",
     cmd_retry},
    {"mutate",
     "FILTER... ACTION [--dry-run]\n"
     "   FILTER: [--queue Q] [--state S[,S...]] [--id ID[,ID...]] [--error-contains TEXT]\n"
     "           [--key-prefix P] [--created-before|--created-after|--finished-before|\n"
     "           --finished-after TIME|DUR] [--all]\n"
     "   ACTION: --cancel | --retry | --delete | --run-now | --reschedule TIME | --priority N |\n"
     "           --rerun",
     "act on every job a filter matches (bulk cancel, retry, delete, ...)",
     "Applies one action to every job the filter matches, 1,000 jobs per transaction, and\n"
     "prints how many jobs matched, how many changed and how many were skipped because the\n"
     "action does not apply to their state (by state). The filters combine (all must hold);\n"
     "a mutate without any filter is refused unless --all says so.\n"
     "\n"
     "Filters:\n"
     "  --queue Q               jobs of queue Q\n"
     "  --state S[,S...]        jobs in these states (repeatable)\n"
     "  --id ID[,ID...]         these jobs (repeatable; at most 10,000)\n"
     "  --error-contains TEXT   jobs whose last error contains TEXT (case-sensitive)\n"
     "  --key-prefix P          jobs whose idempotency key starts with P\n"
     "  --created-before T, --created-after T, --finished-before T, --finished-after T\n"
     "                          T is a time (Unix seconds, YYYY-MM-DDTHH:MM[:SS][Z]) or a\n"
     "                          duration ago (7d, 90m); after is inclusive, before is not\n"
     "  --all                   allow an empty filter: every job\n"
     "Actions (one):\n"
     "  --cancel                unfinished jobs are cancelled (running ones are stopped, their\n"
     "                          cancel is recorded when they exit); dependents cascade\n"
     "  --retry                 dead and cancelled jobs are ready again, a fresh budget\n"
     "  --delete                finished jobs are deleted with their history (others skipped:\n"
     "                          cancel them first)\n"
     "  --run-now               scheduled and retrying jobs are ready now\n"
     "  --reschedule TIME       scheduled, retrying and ready jobs run at TIME (or +DUR)\n"
     "  --priority N            pending jobs get priority N\n"
     "  --rerun                 each finished job is submitted again as a new job\n"
     "  --dry-run               count what the action would change; change nothing\n"
     "\n"
     "With stderr on a terminal, a dry run counts the jobs first and a progress bar follows\n"
     "the calls (each continues where the last stopped); jobs submitted meanwhile are left\n"
     "alone.\n",
     cmd_mutate},
    {"promote", "ID", "run a scheduled or retrying job now",
     "Makes a scheduled job, or one waiting for its backoff, ready now: it takes its turn\n"
     "after the jobs of its priority that are ready already. Its attempts stay.\n",
     cmd_promote},
    {"backup", "FILE", "write a consistent copy of the database while jobqd runs",
     "jobqd writes a consistent copy of its database to FILE (VACUUM INTO, on a connection\n"
     "of its own: jobs go on meanwhile). FILE is a path on the daemon's machine, written as\n"
     "the daemon's user; it must not exist. A relative FILE is taken from the current\n"
     "directory. To restore: stop jobqd and put the copy in place of the database file.\n",
     cmd_backup},
    {"explain", "ID", "say why a job is not running right now",
     "Prints one line: scheduled until T, waiting for its backoff until T, queue paused,\n"
     "circuit open until T, all concurrency slots busy (with the ids running), running\n"
     "since T, or how it finished.\n",
     cmd_explain},
    {"list", "[--queue Q] [--state S] [--limit N] [--after ID]", "list jobs",
     "Lists jobs in ascending id order, one page at a time.\n"
     "\n"
     "Options:\n"
     "  --queue Q           only jobs of queue Q\n"
     "  --state S           only jobs in state S: scheduled, ready, running, retrying,\n"
     "                      succeeded, dead, cancelled or waiting\n"
     "  --limit N           at most N jobs (1..1000, default 100)\n"
     "  --after ID          only jobs with an id above ID (the next page)\n",
     cmd_list},
    {"stats", "", "count jobs per queue and state",
     "Prints one line per queue: jobs in each state, whether it is paused, and the state of\n"
     "its circuit breaker.\n",
     cmd_stats},
    {"schedules", "[list | add|update NAME [OPTIONS] | pause|resume|trigger|delete NAME]",
     "list the periodic schedules, or manage them at runtime",
     "Without a subcommand (or with list), prints one line per schedule: its cron expression\n"
     "and time zone, the queue its jobs go to, what happens to ticks missed while jobqd was\n"
     "down, the last tick it fired or skipped and the next one (in local time).\n"
     "\n"
     "Schedules are [schedule.NAME] sections of jobqd's config, or added at runtime and kept\n"
     "in its database. A config schedule wins over a stored one of the same name and may\n"
     "only be paused, resumed and triggered at runtime (change the file and reload jobqd).\n"
     "\n"
     "  add NAME --cron EXPR --queue QUEUE [OPTIONS]   a new schedule (from now on)\n"
     "  update NAME [OPTIONS]   change what is given; a new cron or time zone counts from now\n"
     "  pause NAME              its ticks pass without a job until resumed (also across\n"
     "                          restarts); resume NAME: the next tick after now runs\n"
     "  trigger NAME            one job now, besides its ticks; prints its id\n"
     "  delete NAME             forget a schedule added at runtime (its jobs stay)\n"
     "\n"
     "Options of add and update:\n"
     "  --cron EXPR         five fields: minute hour day-of-month month day-of-week\n"
     "  --queue QUEUE       where its jobs go\n"
     "  --payload JSON      each job's payload (default null)\n"
     "  --timezone TZ       the zone the expression is read in (default UTC)\n"
     "  --missed P          run_once (default): one job for the ticks missed while jobqd was\n"
     "                      down; skip: none\n"
     "  --overlap P         allow (default): every tick submits its job; skip: not while the\n"
     "                      last job of the schedule is pending or running\n"
     "  --priority N        each job's priority (default 0)\n",
     cmd_schedules_main},
    {"nodes", "", "list the jobqd nodes sharing the database, and the leader",
     "Prints one line per jobqd registered in the PostgreSQL database this one uses: its\n"
     "name, host and pid, whether it is alive (heartbeat within its node_ttl), the leader\n"
     "(which runs schedules and maintenance), jobs it ran at its last heartbeat, when it\n"
     "started and its last heartbeat. A jobqd on SQLite is a node of its own.\n",
     cmd_nodes},
    {"top", "[--interval DUR] [--once]", "a live view of every queue, like top",
     "Shows one row per queue: jobs ready, running, scheduled, retrying and dead, jobs\n"
     "succeeded and attempts failed per second, the circuit breaker and the paused flag;\n"
     "redrawn every second on the terminal's alternate screen. Keys: q quits, space\n"
     "refreshes now. When stdout is not a terminal, prints one snapshot and exits.\n"
     "\n"
     "Options:\n"
     "  --interval DUR      time between refreshes (default 1s, at least 100ms)\n"
     "  --once              print one snapshot and exit, even on a terminal\n",
     cmd_top},
    {"work", "QUEUE... [--concurrency N] -- COMMAND [ARGS...]",
     "run jobs of queues served by remote workers on this machine",
     "Fetches jobs of the QUEUEs (queues without a command in jobqd's config; tried in that\n"
     "order) and runs COMMAND for each, as jobqd runs its own handlers: the payload on stdin;\n"
     "JOBQ_JOB_ID, JOBQ_QUEUE, JOBQ_ATTEMPT and JOBQ_MAX_ATTEMPTS in the environment; exit 0\n"
     "is success (stdout, up to 64 KiB, kept as the result); exit 65 a permanent failure\n"
     "(the job is dead); exit 76 snoozes the job: it runs again after the delay of the\n"
     "last \"snooze DUR\" line the command wrote to $JOBQ_CONTROL_FD (default 30s), the\n"
     "attempt not counted; any other exit or a signal a failure, retried with backoff (the\n"
     "last 4 KiB of stderr kept as the error). Each command runs in its own process group;\n"
     "past the job's timeout the group gets SIGTERM, then SIGKILL 2s later; a job cancelled\n"
     "meanwhile has its group killed. The job's lease is renewed while the command runs.\n"
     "Prints one line per job on stderr. SIGINT or SIGTERM: fetch no more jobs, let the\n"
     "running ones finish, exit 0. A daemon that goes away is waited for.\n"
     "\n"
     "Options:\n"
     "  --concurrency N     run up to N jobs at once (default 1)\n",
     cmd_work},
    {"pause", "QUEUE", "stop starting jobs of a queue",
     "Pauses QUEUE: its jobs stay queued and none starts until it is resumed.\n", cmd_pause},
    {"resume", "QUEUE", "start jobs of a paused queue again", "Resumes QUEUE.\n", cmd_resume},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
main_usage(FILE *out)
{
    fprintf(out,
            "usage: jobq [--url URL] [--json] [--timeout DUR] [--token TOKEN] [--tls-ca FILE]\n"
            "            [--tls-cert FILE] [--tls-key FILE] COMMAND [ARGS...]\n");
}

static int
main_help(void)
{
    main_usage(stdout);
    printf("\nThe command-line client of jobqd, the background job daemon.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        printf("  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    printf("\nOptions (also accepted after the command, except --timeout):\n"
           "%s"
           "  --timeout DUR    how long to wait for each reply (default 30s)\n"
           "  --token TOKEN    the daemon's auth_token (default: $JOBQ_TOKEN)\n"
           "  --tls-ca FILE    CA of the daemon's certificate, for tls+tcp:// URLs\n"
           "                   (default: $JOBQ_TLS_CA)\n"
           "  --tls-cert FILE  client certificate, --tls-key FILE its key (default:\n"
           "                   $JOBQ_TLS_CERT, $JOBQ_TLS_KEY)\n"
           "  -V, --version    print the version\n"
           "\n"
           "DUR is a number with a unit: 250ms, 10s, 5m, 1h, or combined: 1h30m (a bare\n"
           "number is milliseconds).\n"
           "Run 'jobq COMMAND --help' for a command's options.\n"
           "\n"
           "Exit status: 0 ok, 1 the operation failed, 2 usage error, 3 daemon unreachable.\n",
           common_help);
    return EXIT_OK;
}

int
cli_help(const cli_cmd *cmd)
{
    printf("usage: jobq %s %s\n\n%s.\n\n%s", cmd->name, cmd->synopsis, cmd->summary, cmd->help);
    printf("\nCommon options:\n%s", common_help);
    return EXIT_OK;
}

int
cli_usage(const cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "jobq: %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: jobq %s %s\nTry 'jobq %s --help'.\n", cmd->name, cmd->synopsis,
            cmd->name);
    return EXIT_USAGE;
}

/* cli_getopt's answer when the command must end: *exitp holds the exit status. */
#define CLI_OPT_END (-2)

/* cli_getopt: getopt_long over a command's argv that handles the common options, --help
 * and bad options itself. Returns the next command-specific option, -1 after the last one
 * (optind then indexes the first operand), or CLI_OPT_END with *exitp set. */
static int
cli_getopt(cli *c, const cli_cmd *cmd, int argc, char **argv, const struct option *longopts,
           int *exitp)
{
    for (;;) {
        int ch = getopt_long(argc, argv, ":h", longopts, NULL);
        switch (ch) {
        case CLI_OPT_URL:
            c->url = optarg;
            continue;
        case CLI_OPT_JSON:
            c->json = true;
            continue;
        case 'h':
            *exitp = cli_help(cmd);
            return CLI_OPT_END;
        case ':':
            *exitp = cli_usage(cmd, "option %s needs a value", argv[optind - 1]);
            return CLI_OPT_END;
        case '?':
            if (optopt != 0) {
                *exitp = cli_usage(cmd, "unknown option -%c", optopt);
            } else {
                *exitp = cli_usage(cmd, "unknown option %s", argv[optind - 1]);
            }
            return CLI_OPT_END;
        default:
            return ch;
        }
    }
}

int
cli_parse(cli *c, const cli_cmd *cmd, int argc, char **argv, const struct option *longopts,
          cli_opt_fn *on, void *ctx)
{
    int rc = EXIT_OK;
    int ch;
    while ((ch = cli_getopt(c, cmd, argc, argv, longopts, &rc)) != -1) {
        if (ch == CLI_OPT_END) {
            return rc;
        }
        rc = on != NULL ? on(cmd, ctx, ch, optarg) : cli_usage(cmd, "unexpected option");
        if (rc != EXIT_OK) {
            return rc;
        }
    }
    return CLI_GO;
}

int
cli_connect(cli *c)
{
    if (c->client != NULL) {
        return EXIT_OK;
    }
    jobq_client_opts opts = {
        .token = c->token, .tls_ca = c->tls_ca, .tls_cert = c->tls_cert, .tls_key = c->tls_key};
    int err = jobq_client_open_opts(&c->client, c->url, &opts);
    if (err == JOBQ_OK) {
        err = jobq_client_set_timeout(c->client, c->timeout_ms);
    }
    if (err == JOBQ_EUNREACH) {
        fprintf(stderr,
                "jobq: %s\n"
                "jobq: is jobqd running? Start it (jobqd -c jobq.conf), or point --url or "
                "JOBQ_URL at the daemon.\n",
                jobq_errmsg());
        return EXIT_UNREACH;
    }
    if (err == JOBQ_EINVAL) {
        fprintf(stderr, "jobq: %s\n", jobq_errmsg());
        return EXIT_USAGE;
    }
    if (err != JOBQ_OK) {
        return cli_fail(err, "connect");
    }
    return EXIT_OK;
}

int
cli_fail(int err, const char *what_fmt, ...)
{
    const char *detail = jobq_errmsg();
    va_list ap;
    va_start(ap, what_fmt);
    fputs("jobq: ", stderr);
    vfprintf(stderr, what_fmt, ap);
    va_end(ap);
    fprintf(stderr, ": %s\n", detail[0] != '\0' ? detail : jobq_strerror(err));
    if (err == JOBQ_EUNREACH) {
        fprintf(stderr, "jobq: is jobqd running? Start it, or point --url or JOBQ_URL at it.\n");
        return EXIT_UNREACH;
    }
    return EXIT_FAILED;
}

int
cli_call(cli *c, json_t *req, json_t **replyp, char **textp, const char *what_fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof(what), what_fmt, ap);
    va_end(ap);
    *replyp = NULL;
    if (textp != NULL) {
        *textp = NULL;
    }
    char *reqtext = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (reqtext == NULL) {
        fprintf(stderr, "jobq: %s: out of memory\n", what);
        return EXIT_FAILED;
    }
    int rc = cli_connect(c);
    if (rc != EXIT_OK) {
        free(reqtext);
        return rc;
    }
    char *text = NULL;
    int err = jobq_call(c->client, reqtext, &text);
    free(reqtext);
    if (err != JOBQ_OK) {
        return cli_fail(err, "%s", what);
    }
    json_error_t jerr;
    json_t *reply = json_loads(text, 0, &jerr);
    if (reply == NULL || !json_is_boolean(json_object_get(reply, "ok"))) {
        fprintf(stderr, "jobq: %s: the daemon's reply is not a jobq reply: %.200s\n", what, text);
        json_decref(reply);
        jobq_free(text);
        return EXIT_FAILED;
    }
    *replyp = reply;
    if (textp != NULL) {
        *textp = text;
    } else {
        jobq_free(text);
    }
    if (json_is_true(json_object_get(reply, "ok"))) {
        return EXIT_OK;
    }
    json_t *error = json_object_get(reply, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    if (message == NULL || message[0] == '\0') {
        message = code != NULL ? code : "failed (no error code in the reply)";
    }
    fprintf(stderr, "jobq: %s: %s\n", what, message);
    return EXIT_FAILED;
}

void
cli_print_reply(const char *text)
{
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    printf("%.*s\n", (int)len, text);
}

int
cli_show(cli *c, const cli_cmd *cmd, int argc, char **argv, const char *op, cli_print_fn *print,
         const char *what)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 0, "");
    if (rc != CLI_GO) {
        return rc;
    }
    return cli_request(c, json_pack("{s:s}", "op", op), print, NULL, what);
}

int
cli_request(cli *c, json_t *req, cli_print_fn *print, const void *arg, const char *what)
{
    json_t *reply;
    char *text;
    int rc = cli_call(c, req, &reply, &text, "%s", what);
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK && print != NULL) {
        rc = print(reply, arg);
    }
    json_decref(reply);
    jobq_free(text);
    return rc;
}

int
main(int argc, char **argv)
{
    cli c = {.url = NULL, .json = false, .timeout_ms = 30000, .client = NULL};
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},     {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {"token", required_argument, NULL, 'k'},
        {"tls-ca", required_argument, NULL, 'A'},  {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0},
    };
    opterr = 0;
    for (;;) {
        int ch = getopt_long(argc, argv, "+:hV", opts, NULL);
        if (ch == -1) {
            break;
        }
        switch (ch) {
        case 'u':
            c.url = optarg;
            break;
        case 'j':
            c.json = true;
            break;
        case 'k':
            c.token = optarg;
            break;
        case 'A':
            c.tls_ca = optarg;
            break;
        case 'C':
            c.tls_cert = optarg;
            break;
        case 'K':
            c.tls_key = optarg;
            break;
        case 't':
            if (!cli_parse_duration(optarg, &c.timeout_ms) || c.timeout_ms <= 0) {
                fprintf(stderr,
                        "jobq: --timeout needs a duration like 500ms, 10s or 2m, not \"%s\"\n",
                        optarg);
                main_usage(stderr);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            return main_help();
        case 'V':
            printf("jobq %s (libjobq %s)\n", JOBQ_VERSION_STRING, LIB_VERSION);
            return EXIT_OK;
        case ':':
            fprintf(stderr, "jobq: option %s needs a value\n", argv[optind - 1]);
            main_usage(stderr);
            return EXIT_USAGE;
        default:
            if (optopt != 0) {
                fprintf(stderr, "jobq: unknown option -%c\n", optopt);
            } else {
                fprintf(stderr, "jobq: unknown option %s\n", argv[optind - 1]);
            }
            main_usage(stderr);
            fprintf(stderr, "Try 'jobq --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "jobq: no command given\n");
        main_usage(stderr);
        fprintf(stderr, "Try 'jobq --help'.\n");
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    const cli_cmd *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0) {
            cmd = &commands[i];
        }
    }
    if (cmd == NULL) {
        if (strcmp(name, "help") == 0) {
            return main_help();
        }
        fprintf(stderr, "jobq: unknown command \"%s\"\n", name);
        main_usage(stderr);
        fprintf(stderr, "Try 'jobq --help'.\n");
        return EXIT_USAGE;
    }
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 0; /* GNU getopt: start afresh on the command's argv */
    int rc = cmd->run(&c, cmd, sub_argc, sub_argv);
    jobq_client_close(c.client);
    if (fflush(stdout) != 0 && rc == EXIT_OK) {
        perror("jobq: writing the output");
        rc = EXIT_FAILED;
    }
    return rc;
}
