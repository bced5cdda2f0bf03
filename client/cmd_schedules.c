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

/* run_op: sends req and prints its reply: --json as is, else how kind says. */
static int
run_op(cli *c, json_t *req, const char *name, const char *what)
{
    json_t *reply;
    char *text;
    int rc = cli_call(c, req, &reply, &text, "%s %s", what, name);
    if (reply == NULL) {
        return rc;
    }
    if (c->json) {
        cli_print_reply(text);
    } else if (rc == EXIT_OK) {
        const json_t *sc = json_object_get(reply, "schedule");
        if (sc != NULL) {
            print_schedule(sc);
        } else if (json_object_get(reply, "id") != NULL) {
            printf("%lld\n", (long long)json_integer_value(json_object_get(reply, "id")));
        } else {
            printf("deleted %s\n", name);
        }
    }
    json_decref(reply);
    jobq_free(text);
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
    int rc = EXIT_OK;
    int ch;
    int64_t v;
    while (rc == EXIT_OK && (ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        json_error_t jerr;
        json_t *payload;
        switch (ch) {
        case CLI_OPT_END:
            json_decref(req);
            return rc;
        case 'c':
            json_object_set_new(req, "cron", json_string(optarg));
            break;
        case 'q':
            json_object_set_new(req, "queue", json_string(optarg));
            break;
        case 'p':
            payload = json_loads(optarg, JSON_DECODE_ANY, &jerr);
            if (payload == NULL) {
                rc = cli_usage(cmd, "--payload is not JSON: %s", jerr.text);
                break;
            }
            json_object_set_new(req, "payload", payload);
            break;
        case 't':
            json_object_set_new(req, "timezone", json_string(optarg));
            break;
        case 'm':
            json_object_set_new(req, "missed", json_string(optarg));
            break;
        case 'o':
            json_object_set_new(req, "overlap", json_string(optarg));
            break;
        default: /* 'P' */
            if (!cli_parse_i64(optarg, INT32_MIN, INT32_MAX, &v)) {
                rc = cli_usage(cmd, "--priority takes an integer, not \"%s\"", optarg);
                break;
            }
            json_object_set_new(req, "priority", json_integer(v));
            break;
        }
    }
    if (rc == EXIT_OK && argc - optind != 1) {
        rc = cli_usage(cmd,
                       argc - optind < 1 ? "missing the schedule's NAME" : "too many arguments");
    }
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
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO) {
        return rc;
    }
    if (argc - optind != 1) {
        return cli_usage(cmd,
                         argc - optind < 1 ? "missing the schedule's NAME" : "too many arguments");
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
