/* cmd_schedules.c: `jobq schedules [list|add|update|pause|resume|trigger|delete]`: the
 * schedules of jobqd, listed (cmd_schedules in cmd_jobs.c) and managed at runtime with the
 * schedule_* ops. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* print_schedule: one schedule of a reply, as a line. */
static void
print_schedule(const json_t *sc)
{
    char next[40] = "never";
    const json_t *nx = json_object_get(sc, "next");
    if (json_is_integer(nx)) {
        cli_fmt_time(json_integer_value(nx), next, sizeof(next));
    }
    bool paused = json_is_true(json_object_get(sc, "paused"));
    printf("%s: %s (%s) -> %s, %s%s, overlap %s, from the %s\n",
           json_string_value(json_object_get(sc, "name")),
           json_string_value(json_object_get(sc, "cron")),
           json_string_value(json_object_get(sc, "timezone")),
           json_string_value(json_object_get(sc, "queue")), paused ? "paused" : "next ",
           paused ? "" : next, json_string_value(json_object_get(sc, "overlap")),
           strcmp(json_string_value(json_object_get(sc, "source")), "config") == 0 ? "config"
                                                                                   : "database");
}

/* print_reply: a schedule op's reply: the schedule, the id of the job a trigger made, or that
 * the schedule (name, a string) is deleted. */
static int
print_reply(const json_t *reply, const void *name)
{
    const json_t *sc = json_object_get(reply, "schedule");
    if (sc != NULL) {
        print_schedule(sc);
    } else if (json_object_get(reply, "id") != NULL) {
        printf("%lld\n", (long long)json_integer_value(json_object_get(reply, "id")));
    } else {
        printf("deleted %s\n", (const char *)name);
    }
    return EXIT_OK;
}

/* run_op: sends req and prints its reply: --json as is, else with print_reply. */
static int
run_op(cli *c, json_t *req, const char *name, const char *what)
{
    char what_name[256];
    snprintf(what_name, sizeof(what_name), "%s %s", what, name);
    return cli_request(c, req, print_reply, name, what_name);
}

/* define_option: one option of add and update into req (the request). */
static int
define_option(const cli_cmd *cmd, void *req, int ch, char *arg)
{
    /* The options whose value is the request's member as is. */
    static const struct {
        int ch;
        const char *field;
    } texts[] = {
        {'c', "cron"}, {'q', "queue"}, {'t', "timezone"}, {'m', "missed"}, {'o', "overlap"}};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (ch == texts[i].ch) {
            json_object_set_new(req, texts[i].field, json_string(arg));
            return EXIT_OK;
        }
    }
    if (ch == 'p') {
        json_error_t jerr;
        json_t *payload = json_loads(arg, JSON_DECODE_ANY, &jerr);
        if (payload == NULL) {
            return cli_usage(cmd, "--payload is not JSON: %s", jerr.text);
        }
        json_object_set_new(req, "payload", payload);
        return EXIT_OK;
    }
    int64_t v = 0; /* 'P' */
    int rc = cli_opt_int(cmd, "--priority", arg, INT32_MIN, INT32_MAX, "takes an integer", &v);
    if (rc == EXIT_OK) {
        json_object_set_new(req, "priority", json_integer(v));
    }
    return rc;
}

/* define: add and update: NAME and the options that say what the schedule is. */
static int
define(cli *c, const cli_cmd *cmd, int argc, char **argv, bool add)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"cron", required_argument, NULL, 'c'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"payload", required_argument, NULL, 'p'},
                                         {"timezone", required_argument, NULL, 't'},
                                         {"missed", required_argument, NULL, 'm'},
                                         {"overlap", required_argument, NULL, 'o'},
                                         {"priority", required_argument, NULL, 'P'},
                                         {NULL, 0, NULL, 0}};
    json_t *req = json_pack("{s:s}", "op", add ? "schedule_add" : "schedule_update");
    int rc = cli_parse(c, cmd, argc, argv, opts, define_option, req);
    if (rc != CLI_GO) {
        json_decref(req);
        return rc;
    }
    rc = cli_operands(cmd, argc, 1, "the schedule's NAME");
    if (rc == EXIT_OK && add &&
        (json_object_get(req, "cron") == NULL || json_object_get(req, "queue") == NULL)) {
        rc = cli_usage(cmd, "add needs --cron EXPR and --queue QUEUE");
    }
    if (rc != EXIT_OK) {
        json_decref(req);
        return rc;
    }
    const char *name = argv[optind];
    json_object_set_new(req, "name", json_string(name));
    return run_op(c, req, name, add ? "add schedule" : "update schedule");
}

/* by_name: pause, resume, trigger and delete: NAME only. */
static int
by_name(cli *c, const cli_cmd *cmd, int argc, char **argv, const char *op, const char *what)
{
    int rc = cli_simple_opts(c, cmd, argc, argv, 1, "the schedule's NAME");
    if (rc != CLI_GO) {
        return rc;
    }
    const char *name = argv[optind];
    return run_op(c, json_pack("{s:s, s:s}", "op", op, "name", name), name, what);
}

int
cmd_schedules_main(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        return cmd_schedules(c, cmd, argc, argv);
    }
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "list") == 0) {
        return cmd_schedules(c, cmd, argc, argv);
    }
    if (strcmp(sub, "add") == 0 || strcmp(sub, "update") == 0) {
        return define(c, cmd, argc, argv, sub[0] == 'a');
    }
    static const struct {
        const char *sub, *op, *what;
    } simple[] = {{"pause", "schedule_pause", "pause schedule"},
                  {"resume", "schedule_resume", "resume schedule"},
                  {"trigger", "schedule_trigger", "trigger schedule"},
                  {"delete", "schedule_delete", "delete schedule"}};
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcmp(sub, simple[i].sub) == 0) {
            return by_name(c, cmd, argc, argv, simple[i].op, simple[i].what);
        }
    }
    return cli_usage(cmd,
                     "unknown subcommand \"%s\": list, add, update, pause, resume, trigger "
                     "or delete",
                     sub);
}
