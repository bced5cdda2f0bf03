/* cmd_nodes.c: `jobq nodes`: the jobqd nodes that share a PostgreSQL database (the nodes op),
 * which one leads, which are alive. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cmd_nodes(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    int rc = cli_simple_opts(c, cmd, argc, argv);
    if (rc != CLI_GO) {
        return rc;
    }
    if (argc > optind) {
        return cli_usage(cmd, "too many arguments");
    }
    json_t *reply;
    char *text;
    rc = cli_call(c, json_pack("{s:s}", "op", "nodes"), &reply, &text, "list the nodes");
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
    json_t *nodes = json_object_get(reply, "nodes");
    if (!json_is_true(json_object_get(reply, "shared"))) {
        printf("this jobqd has a store of its own (SQLite): it is the only node\n");
        json_decref(reply);
        jobq_free(text);
        return EXIT_OK;
    }
    static const char *const names[] = {"NODE", "HOST", "PID", "STATE", "ROLE",
                                        "RUNNING", "STARTED", "HEARTBEAT"};
    static const bool right[] = {false, false, true, false, false, true, false, false};
    cli_table t;
    if (!cli_table_init(&t, 8, names, right)) {
        fprintf(stderr, "jobq: nodes: out of memory\n");
        json_decref(reply);
        jobq_free(text);
        return EXIT_FAILED;
    }
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n)
    {
        char pid[24], running[24], started[40], beat[40];
        snprintf(pid, sizeof(pid), "%lld", (long long)json_integer_value(json_object_get(n, "pid")));
        snprintf(running, sizeof(running), "%lld",
                 (long long)json_integer_value(json_object_get(n, "running")));
        const char *state = json_is_true(json_object_get(n, "alive")) ? "alive"
                            : json_is_true(json_object_get(n, "fenced")) ? "dead (fenced)"
                                                                          : "silent";
        const char *cells[8] = {
            json_string_value(json_object_get(n, "name")),
            json_string_value(json_object_get(n, "host")),
            pid,
            state,
            json_is_true(json_object_get(n, "leader")) ? "leader" : "-",
            running,
            cli_fmt_time(json_integer_value(json_object_get(n, "started_at")), started,
                         sizeof(started)),
            cli_fmt_time(json_integer_value(json_object_get(n, "heartbeat_at")), beat,
                         sizeof(beat)),
        };
        for (size_t k = 0; k < 8; k++) {
            cells[k] = cells[k] != NULL ? cells[k] : "-";
        }
        if (!cli_table_row(&t, cells)) {
            fprintf(stderr, "jobq: nodes: out of memory\n");
            rc = EXIT_FAILED;
            break;
        }
    }
    if (rc == EXIT_OK) {
        cli_table_print(&t);
    }
    cli_table_free(&t);
    json_decref(reply);
    jobq_free(text);
    return rc;
}
