/* cmd_nodes.c: `jobq nodes`: the jobqd nodes that share a PostgreSQL database (the nodes op),
 * which one leads, which are alive. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* state_cell: a node's state: alive, dead (fenced) or silent. */
static const char *
state_cell(const json_t *n, char *buf, size_t size)
{
    (void)buf;
    (void)size;
    return json_is_true(json_object_get(n, "alive"))    ? "alive"
           : json_is_true(json_object_get(n, "fenced")) ? "dead (fenced)"
                                                        : "silent";
}

static int
print_nodes(const json_t *reply, const void *unused)
{
    static const cli_column cols[] = {
        CLI_COL_TEXT("NODE", "name"),
        CLI_COL_TEXT("HOST", "host"),
        CLI_COL_INT("PID", "pid"),
        CLI_COL_FN("STATE", state_cell, false),
        CLI_COL_FLAG("ROLE", "leader", "leader", NULL),
        CLI_COL_INT("RUNNING", "running"),
        CLI_COL_TIME("STARTED", "started_at", NULL),
        CLI_COL_TIME("HEARTBEAT", "heartbeat_at", NULL),
    };
    (void)unused;
    if (!json_is_true(json_object_get(reply, "shared"))) {
        printf("this jobqd has a store of its own (SQLite): it is the only node\n");
        return EXIT_OK;
    }
    return cli_print_rows("nodes", cols, sizeof(cols) / sizeof(cols[0]),
                          json_object_get(reply, "nodes"));
}

int
cmd_nodes(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    return cli_show(c, cmd, argc, argv, "nodes", print_nodes, "list the nodes");
}
