/* cli.h: what the jobq CLI's files share: the invocation's settings, error and usage
 * reporting, argument parsing, and output helpers. Built only on the public jobq.h. */
#ifndef JOBQ_CLI_H
#define JOBQ_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jobq.h"

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Exit statuses (DESIGN.md, "CLI"). */
enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACH = 3 };

/* cli: one invocation's settings and its connection. */
typedef struct cli {
    const char *url;    /* --url; NULL: $JOBQ_URL, else the library's default */
    bool json;          /* --json: print the daemon's reply objects */
    int64_t timeout_ms; /* --timeout: per call, ms */
    const char *token;  /* --token; NULL: $JOBQ_TOKEN (read by the library) */
    const char *tls_ca; /* --tls-ca, --tls-cert, --tls-key; NULL: $JOBQ_TLS_CA, ... */
    const char *tls_cert;
    const char *tls_key;
    jobq_client *client; /* NULL until cli_connect */
} cli;

/* cli_cmd: one command: its name, usage line, one-line summary, help text and runner.
 * run gets the command's own argv (argv[0] is the command name). */
typedef struct cli_cmd {
    const char *name;
    const char *synopsis; /* what follows "jobq NAME" in a usage line */
    const char *summary;
    const char *help;
    int (*run)(cli *c, const struct cli_cmd *cmd, int argc, char **argv);
} cli_cmd;

/* Options every command accepts after its name too (the short codes are internal). */
#define CLI_OPT_URL 0x1001
#define CLI_OPT_JSON 0x1002
#define CLI_COMMON_OPTIONS                                                                         \
    {"url", required_argument, NULL, CLI_OPT_URL}, {"json", no_argument, NULL, CLI_OPT_JSON},      \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define CLI_NCOMMON_OPTIONS 3 /* the entries of CLI_COMMON_OPTIONS */

/* cli_parse's answer when the command goes on (no exit status uses it). */
#define CLI_GO (-1)

/* cli_opt_fn: applies the command-specific option ch, with its value arg (for an option that
 * takes one), to the command's ctx. Returns EXIT_OK, else (after a usage message) the exit
 * status. */
typedef int cli_opt_fn(const cli_cmd *cmd, void *ctx, int ch, char *arg);

/* cli_parse: parses the options of a command's argv with getopt_long: the common ones, --help
 * and bad options itself, each of longopts with on (NULL: there are none). Returns CLI_GO when
 * all were good (optind then indexes the first operand), else the exit status (0 after --help,
 * on's status when it refused one). */
int cli_parse(cli *c, const cli_cmd *cmd, int argc, char **argv, const struct option *longopts,
              cli_opt_fn *on, void *ctx);

/* cli_operands: checks that the command got exactly want operands after its options ("missing
 * WHAT" when fewer). Returns EXIT_OK, else (after the usage message) EXIT_USAGE. */
int cli_operands(const cli_cmd *cmd, int argc, int want, const char *what);

/* cli_simple_opts: parses a command that has only the common options and exactly want operands
 * (cli_operands): CLI_GO to go on (optind indexes the first operand), else the exit status (0
 * after --help). */
int cli_simple_opts(cli *c, const cli_cmd *cmd, int argc, char **argv, int want, const char *what);

/* Option values: each parses s, the value of option opt (such as "--delay"), into *vp; on
 * anything malformed prints the usage message "OPT needs ..., not \"S\"" and returns
 * EXIT_USAGE, else EXIT_OK. */
/** cli_opt_int: an integer from min to max; need says what the message asks for, e.g. "needs
 *  an integer" (the message: "OPT NEED, not \"S\""). */
int cli_opt_int(const cli_cmd *cmd, const char *opt, const char *s, int64_t min, int64_t max,
                const char *need, int64_t *vp);
/** cli_opt_duration: a duration (cli_parse_duration), above 0 unless zero_ok; like gives
 *  examples, e.g. "30s or 5m". */
int cli_opt_duration(const cli_cmd *cmd, const char *opt, const char *s, bool zero_ok,
                     const char *like, int64_t *msp);
/** cli_opt_time: a time (cli_parse_time). */
int cli_opt_time(const cli_cmd *cmd, const char *opt, const char *s, int64_t *msp);

/* cli_usage: prints "jobq: CMD: message", the command's usage line and a --help hint on
 * stderr. Returns EXIT_USAGE. */
int cli_usage(const cli_cmd *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* cli_help: prints the command's full help on stdout. Returns EXIT_OK. */
int cli_help(const cli_cmd *cmd);

/* cli_connect: opens c->client (once). Returns EXIT_OK or, after printing why, the exit
 * status (EXIT_UNREACH when no daemon answers at the URL). */
int cli_connect(cli *c);

/* cli_fail: prints "jobq: WHAT: detail" for a failed libjobq call, the detail being
 * jobq_errmsg() (or jobq_strerror(err)). Returns the exit status for err. */
int cli_fail(int err, const char *what_fmt, ...) CLI_PRINTF(2, 3);

/* cli_call: sends req (a JSON object; the reference is taken) with jobq_call. On a reply
 * sets *replyp (owned by the caller) and, if textp is not NULL, *textp (free with
 * jobq_free), and returns EXIT_OK if the reply is {"ok": true}; on {"ok": false} prints
 * "jobq: WHAT: message" and returns EXIT_FAILED (the reply is still handed over). On a
 * transport failure prints it and returns its status, with *replyp and *textp NULL. */
int cli_call(cli *c, json_t *req, json_t **replyp, char **textp, const char *what_fmt, ...)
    CLI_PRINTF(5, 6);

/* cli_print_reply: prints a reply text on one line of stdout (for --json). */
void cli_print_reply(const char *text);

/* cli_print_fn: prints a successful reply as text; arg is the caller's. Returns the exit
 * status. */
typedef int cli_print_fn(const json_t *reply, const void *arg);

/* cli_request: sends req (the reference is taken) with cli_call, what naming it in messages.
 * With --json prints the reply as it came; else, when it succeeded, calls print (if not NULL).
 * Returns cli_call's exit status, or print's. */
int cli_request(cli *c, json_t *req, cli_print_fn *print, const void *arg, const char *what);

/* cli_show: runs a command that has only the common options and no operands: sends {"op": op}
 * and prints the reply with print (cli_request). Returns the exit status. */
int cli_show(cli *c, const cli_cmd *cmd, int argc, char **argv, const char *op, cli_print_fn *print,
             const char *what);

/* Parsing command-line values. Each returns false on anything malformed or out of range. */
bool cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *vp);
/** cli_parse_duration: "250ms", "10s", "5m", "1h", "7d", terms in a row ("1h30m"), or a bare
 *  number of ms (common/duration.h). */
bool cli_parse_duration(const char *s, int64_t *msp);
/** cli_parse_time: Unix seconds, YYYY-MM-DDTHH:MM[:SS][Z] (UTC), or +DUR from now; into ms
 *  since the epoch. */
bool cli_parse_time(const char *s, int64_t *msp);

/* cli_now_ms: wall-clock time, ms since the epoch. cli_mono_s: monotonic seconds. */
int64_t cli_now_ms(void);
double cli_mono_s(void);

/* Formatting into a caller's buffer; each returns buf. */
char *cli_fmt_time(int64_t ms, char *buf, size_t size); /* local time, "-" for 0 */
char *cli_fmt_duration(int64_t ms, char *buf, size_t size);

/* cli_read_all: reads a whole stream into a NUL-terminated malloc'd buffer, or NULL. */
char *cli_read_all(FILE *f);

/* cli_table: a text table printed with aligned columns. */
typedef struct cli_table {
    size_t ncols;
    size_t nrows; /* rows added, the header included */
    size_t cap;   /* cells allocated */
    char **cells; /* nrows * ncols strings, row-major */
    bool *right;  /* per column: right-aligned (numbers) */
} cli_table;

/** cli_table_init: a table whose header row is the ncols names; right[i] right-aligns
 *  column i. Returns false on out of memory. */
bool cli_table_init(cli_table *t, size_t ncols, const char *const *names, const bool *right);
/** cli_table_row: appends one row of ncols cells (copied). Returns false on out of memory. */
bool cli_table_row(cli_table *t, const char *const *cells);
/** cli_table_print: prints the table on stdout. */
void cli_table_print(const cli_table *t);
void cli_table_free(cli_table *t);

/* cli_cell_kind: how a column's cell is made from a reply object's member. */
typedef enum cli_cell_kind {
    CELL_TEXT, /* a string; "-" when not one */
    CELL_INT,  /* an integer in decimal; "-" when not one */
    CELL_TIME, /* ms since the epoch as local time (cli_fmt_time); none when not an integer */
    CELL_FLAG, /* on when true, else none */
    CELL_FN    /* made by fn */
} cli_cell_kind;

/* cli_column: one column of a table of reply objects. */
typedef struct cli_column {
    const char *name;  /* the header */
    const char *field; /* the member shown; NULL: the row's key (rows given as an object) */
    cli_cell_kind kind;
    bool right;       /* right-aligned (numbers) */
    const char *on;   /* CELL_FLAG: the text when the member is true */
    const char *none; /* CELL_TIME, CELL_FLAG: the text otherwise; NULL: "-" */
    /* CELL_FN: the cell of row, written into buf if it needs one */
    const char *(*fn)(const json_t *row, char *buf, size_t size);
} cli_column;

/* Column specs: a text, an integer (right-aligned), a time (none when not set: NULL for "-"),
 * a flag (on when true, else none) and a computed cell (right: right-aligned). */
#define CLI_COL_TEXT(h, f)                                                                         \
    {                                                                                              \
        .name = (h), .field = (f), .kind = CELL_TEXT                                               \
    }
#define CLI_COL_INT(h, f)                                                                          \
    {                                                                                              \
        .name = (h), .field = (f), .kind = CELL_INT, .right = true                                 \
    }
#define CLI_COL_TIME(h, f, n)                                                                      \
    {                                                                                              \
        .name = (h), .field = (f), .kind = CELL_TIME, .none = (n)                                  \
    }
#define CLI_COL_FLAG(h, f, y, n)                                                                   \
    {                                                                                              \
        .name = (h), .field = (f), .kind = CELL_FLAG, .on = (y), .none = (n)                       \
    }
#define CLI_COL_FN(h, func, r)                                                                     \
    {                                                                                              \
        .name = (h), .kind = CELL_FN, .right = (r), .fn = (func)                                   \
    }

/* The most columns a table of reply objects has. */
#define CLI_MAX_COLS 16

/** cli_print_rows: prints rows (an array of objects, or an object whose members are printed
 *  in the order of their keys) as an aligned table of the ncols columns, header first.
 *  Returns EXIT_OK, or EXIT_FAILED after printing "jobq: WHAT: out of memory". */
int cli_print_rows(const char *what, const cli_column *cols, size_t ncols, const json_t *rows);

/* The commands (cmd_submit.c, cmd_jobs.c, cmd_top.c). */
int cmd_submit(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_ping(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_get(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_wait(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_logs(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_cancel(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_promote(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_mutate(cli *c, const cli_cmd *cmd, int argc, char **argv); /* cmd_mutate.c */
int cmd_retry(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_explain(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_backup(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_list(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_stats(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_schedules_main(cli *c, const cli_cmd *cmd, int argc, char **argv); /* cmd_schedules.c */
int cmd_schedules(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_pause(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_resume(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_top(cli *c, const cli_cmd *cmd, int argc, char **argv);
int cmd_work(cli *c, const cli_cmd *cmd, int argc, char **argv);  /* cmd_work.c */
int cmd_nodes(cli *c, const cli_cmd *cmd, int argc, char **argv); /* cmd_nodes.c */

/* Helpers shared by the commands (cmd_jobs.c). */
/** cli_wait_job: waits until job id finished (no limit when limit_ms < 0), then prints
 *  its outcome. Returns EXIT_OK if it succeeded, else the exit status. */
int cli_wait_job(cli *c, int64_t id, int64_t limit_ms);
/** cli_wait_json: waits with raw "wait" calls for the ids and prints the final reply. */
int cli_wait_json(cli *c, const int64_t *ids, size_t n, int64_t limit_ms);

#endif
