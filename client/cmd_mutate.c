/* cmd_mutate.c: `jobq mutate`: one action on every job a filter matches (the mutate op), with
 * a progress bar on stderr when it is a terminal.
 *
 * Progress: the op answers once, with final counts; for a bar the CLI asks a dry run first
 * (the total), then walks the jobs in calls of at most MUTATE_STEP jobs, each continuing
 * where the last stopped ("after", "next") within the ids the dry run saw ("max_id"), and
 * draws the bar between calls. Without a terminal it makes one call and jobqd walks the
 * chunks itself. Either way each transaction holds at most 1,000 jobs. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Jobs one call of a walk with a progress bar matches (about: the chunk that reaches it
 * completes). */
#define MUTATE_STEP 2000

/* add_time: a filter bound: a duration ago ("7d", "90m": sent as is) or a time. */
static int
add_time(const cli_cmd *cmd, json_t *req, const char *field, const char *opt, const char *s)
{
    int64_t ms;
    bool unit = strspn(s, "0123456789") < strlen(s) && s[0] != '+' && strchr(s, '-') == NULL &&
                strchr(s, 'T') == NULL;
    if (unit && cli_parse_duration(s, &ms)) {
        json_object_set_new(req, field, json_string(s));
        return EXIT_OK;
    }
    if (!cli_parse_time(s, &ms)) {
        return cli_usage(cmd,
                         "%s takes a time (Unix seconds, YYYY-MM-DDTHH:MM[:SS][Z]) or a "
                         "duration ago (7d, 90m), not \"%s\"",
                         opt, s);
    }
    json_object_set_new(req, field, json_integer(ms));
    return EXIT_OK;
}

/* add_list: "a,b,c" appended to the array field of req, as strings or ids. */
static int
add_list(const cli_cmd *cmd, json_t *req, const char *field, const char *s, bool ids)
{
    json_t *arr = json_object_get(req, field);
    if (arr == NULL) {
        arr = json_array();
        json_object_set_new(req, field, arr);
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return cli_fail(JOBQ_ENOMEM, "mutate");
    }
    int rc = EXIT_OK;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL && rc == EXIT_OK;
         t = strtok_r(NULL, ",", &save)) {
        int64_t id;
        if (!ids) {
            if (jobq_state_parse(t) < 0) {
                rc = cli_usage(cmd, "unknown state \"%s\"", t);
            } else {
                json_array_append_new(arr, json_string(t));
            }
        } else if (!cli_parse_i64(t, 1, INT64_MAX, &id)) {
            rc = cli_usage(cmd, "--id takes job ids, not \"%s\"", t);
        } else {
            json_array_append_new(arr, json_integer(id));
        }
    }
    free(copy);
    return rc;
}

static void
draw_bar(int64_t done, int64_t total)
{
    enum { WIDTH = 30 };
    int64_t fill = total > 0 ? (done < total ? done : total) * WIDTH / total : WIDTH;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r[%s] %lld/%lld jobs %3d%%\033[K", bar, (long long)done, (long long)total,
            total > 0 ? (int)((done < total ? done : total) * 100 / total) : 100);
    fflush(stderr);
}

/* merge: adds reply r's counts into the running total t (both mutate replies). */
static void
merge(json_t *t, const json_t *r)
{
    static const char *const sums[] = {"matched", "changed", "stopping"};
    for (size_t i = 0; i < sizeof(sums) / sizeof(sums[0]); i++) {
        json_int_t v = json_integer_value(json_object_get(t, sums[i])) +
                       json_integer_value(json_object_get(r, sums[i]));
        json_object_set_new(t, sums[i], json_integer(v));
    }
    static const char *const maps[] = {"skipped", "states"};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        json_t *tm = json_object_get(t, maps[i]);
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(r, maps[i]), k, v)
        {
            json_object_set_new(
                tm, k,
                json_integer(json_integer_value(json_object_get(tm, k)) + json_integer_value(v)));
        }
    }
    json_t *ids = json_object_get(t, "ids");
    if (ids != NULL) {
        json_array_extend(ids, json_object_get(r, "ids"));
    }
    json_object_set(t, "next", json_object_get(r, "next"));
}

/* counts_text: "state n, state n" of a {state: n} object into buf. */
static const char *
counts_text(const json_t *o, char *buf, size_t len)
{
    size_t n = 0;
    const char *k;
    json_t *v;
    buf[0] = '\0';
    json_object_foreach((json_t *)o, k, v)
    {
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s %lld", n > 0 ? ", " : "", k,
                              (long long)json_integer_value(v));
    }
    return buf;
}

static void
print_text(const json_t *t, bool dry)
{
    char states[256], skipped[256];
    long long changed = (long long)json_integer_value(json_object_get(t, "changed"));
    long long matched = (long long)json_integer_value(json_object_get(t, "matched"));
    long long stopping = (long long)json_integer_value(json_object_get(t, "stopping"));
    printf("%s %lld of %lld matching job(s)", dry ? "would change" : "changed", changed, matched);
    if (stopping > 0) {
        printf("; %s %lld running job(s)", dry ? "would stop" : "stopping", stopping);
    }
    printf("\n  matched: %s\n", counts_text(json_object_get(t, "states"), states, sizeof(states)));
    if (json_object_size(json_object_get(t, "skipped")) > 0) {
        printf("  skipped (the action does not apply): %s\n",
               counts_text(json_object_get(t, "skipped"), skipped, sizeof(skipped)));
    }
    const json_t *ids = json_object_get(t, "ids");
    if (!dry && json_array_size(ids) > 0) {
        printf("  new jobs:");
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v)
        {
            printf(" %lld", (long long)json_integer_value(v));
        }
        printf("\n");
    }
}

/* The options of jobq mutate after the common ones: a filter, --dry-run, or the action. The
 * kinds up to OPT_TIME and from OPT_RESCHEDULE take a value; those from OPT_ACTION are the
 * action named field. */
typedef enum opt_kind {
    OPT_TEXT,       /* the value, as the string member field */
    OPT_STATES,     /* states separated by commas, appended to the array member field */
    OPT_IDS,        /* job ids separated by commas, likewise */
    OPT_TIME,       /* a time or a duration ago (add_time) */
    OPT_ALL,        /* field is true */
    OPT_DRY,        /* a dry run */
    OPT_ACTION,     /* an action without a value */
    OPT_RESCHEDULE, /* the value is the time to run at */
    OPT_PRIORITY    /* the value is the priority to set */
} opt_kind;

static const struct mutate_opt {
    const char *name;
    opt_kind kind;
    const char *field;
} mutate_opts[] = {
    {"queue", OPT_TEXT, "queue"},
    {"state", OPT_STATES, "state"},
    {"id", OPT_IDS, "ids"},
    {"created-before", OPT_TIME, "created_before"},
    {"created-after", OPT_TIME, "created_after"},
    {"finished-before", OPT_TIME, "finished_before"},
    {"finished-after", OPT_TIME, "finished_after"},
    {"error-contains", OPT_TEXT, "error_contains"},
    {"key-prefix", OPT_TEXT, "key_prefix"},
    {"all", OPT_ALL, "all"},
    {"dry-run", OPT_DRY, NULL},
    {"cancel", OPT_ACTION, "cancel"},
    {"retry", OPT_ACTION, "retry"},
    {"delete", OPT_ACTION, "delete"},
    {"run-now", OPT_ACTION, "run_now"},
    {"rerun", OPT_ACTION, "rerun"},
    {"reschedule", OPT_RESCHEDULE, "reschedule"},
    {"priority", OPT_PRIORITY, "set_priority"},
};
#define NMUTATE_OPTS (sizeof(mutate_opts) / sizeof(mutate_opts[0]))
#define MUTATE_OPT_BASE 0x100 /* getopt's code of mutate_opts[i]: MUTATE_OPT_BASE + i */

/* has_value: whether the option takes a value. */
static bool
has_value(const struct mutate_opt *o)
{
    return o->kind <= OPT_TIME || o->kind >= OPT_RESCHEDULE;
}

/* add_option: applies option o with its value s to req. Returns EXIT_OK or the exit status. */
static int
add_option(const cli_cmd *cmd, json_t *req, const struct mutate_opt *o, const char *s)
{
    int64_t v;
    switch (o->kind) {
    case OPT_TEXT:
        json_object_set_new(req, o->field, json_string(s));
        return EXIT_OK;
    case OPT_STATES:
    case OPT_IDS:
        return add_list(cmd, req, o->field, s, o->kind == OPT_IDS);
    case OPT_TIME: {
        char opt[40];
        snprintf(opt, sizeof(opt), "--%s", o->name);
        return add_time(cmd, req, o->field, opt, s);
    }
    case OPT_ALL:
        json_object_set_new(req, o->field, json_true());
        return EXIT_OK;
    case OPT_RESCHEDULE:
        if (!cli_parse_time(s, &v)) {
            return cli_usage(cmd, "--reschedule takes a time or +DUR, not \"%s\"", s);
        }
        json_object_set_new(req, "run_at", json_integer(v));
        return EXIT_OK;
    case OPT_PRIORITY: {
        v = 0;
        int rc = cli_opt_int(cmd, "--priority", s, INT32_MIN, INT32_MAX, "takes an integer", &v);
        json_object_set_new(req, "priority", json_integer(v));
        return rc;
    }
    default: /* OPT_DRY, OPT_ACTION: nothing in the request */
        return EXIT_OK;
    }
}

/* mutate_args: what the options of jobq mutate say. */
typedef struct mutate_args {
    json_t *req;        /* the mutate request, its filter */
    const char *action; /* NULL until an action is named */
    bool dry;
} mutate_args;

static int
mutate_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    mutate_args *m = ctx;
    const struct mutate_opt *o = &mutate_opts[ch - MUTATE_OPT_BASE];
    int rc = add_option(cmd, m->req, o, has_value(o) ? arg : NULL);
    m->dry = m->dry || o->kind == OPT_DRY;
    if (rc == EXIT_OK && o->kind >= OPT_ACTION) {
        if (m->action != NULL && strcmp(m->action, o->field) != 0) {
            return cli_usage(cmd, "one action at a time (--%s and --%s)", m->action, o->field);
        }
        m->action = o->field;
    }
    return rc;
}

int
cmd_mutate(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    struct option opts[CLI_NCOMMON_OPTIONS + NMUTATE_OPTS + 1] = {CLI_COMMON_OPTIONS};
    for (size_t i = 0; i < NMUTATE_OPTS; i++) {
        opts[CLI_NCOMMON_OPTIONS + i] = (struct option){
            mutate_opts[i].name, has_value(&mutate_opts[i]) ? required_argument : no_argument, NULL,
            MUTATE_OPT_BASE + (int)i};
    }
    mutate_args m = {.req = json_pack("{s:s}", "op", "mutate")};
    json_t *req = m.req;
    int rc = cli_parse(c, cmd, argc, argv, opts, mutate_option, &m);
    if (rc != CLI_GO) {
        json_decref(req);
        return rc;
    }
    const char *action = m.action;
    bool dry = m.dry;
    rc = EXIT_OK;
    if (action == NULL) {
        rc = cli_usage(cmd, "name an action: --cancel, --retry, --delete, --run-now, "
                            "--reschedule TIME, --priority N or --rerun");
    }
    if (rc == EXIT_OK && optind < argc) {
        rc = cli_usage(cmd, "unexpected argument \"%s\"", argv[optind]);
    }
    if (rc != EXIT_OK) {
        json_decref(req);
        return rc;
    }
    json_object_set_new(req, "action", json_string(action));
    bool bar = !dry && !c->json && isatty(STDERR_FILENO);
    json_t *total = NULL;
    char *text = NULL;
    if (dry || bar) {
        json_t *probe = json_deep_copy(req);
        json_object_set_new(probe, "dry_run", json_true());
        rc = cli_call(c, probe, &total, &text, "mutate (dry run)");
        if (rc != EXIT_OK || dry) {
            if (total != NULL && rc == EXIT_OK) {
                if (c->json) {
                    cli_print_reply(text);
                } else {
                    print_text(total, true);
                }
            }
            json_decref(total);
            jobq_free(text);
            json_decref(req);
            return rc;
        }
        jobq_free(text);
        text = NULL;
    }
    json_t *sum = NULL;
    int64_t all = total != NULL ? json_integer_value(json_object_get(total, "matched")) : 0;
    if (total != NULL) {
        json_object_set(req, "max_id", json_object_get(total, "max_id"));
        json_object_set_new(req, "limit", json_integer(MUTATE_STEP));
    }
    json_decref(total);
    for (;;) {
        json_t *reply;
        json_incref(req);
        rc = cli_call(c, req, &reply, &text, "mutate");
        if (rc != EXIT_OK) {
            json_decref(reply);
            jobq_free(text);
            break;
        }
        if (sum == NULL) {
            sum = reply;
            if (json_object_get(sum, "ids") == NULL && strcmp(action, "rerun") == 0) {
                json_object_set_new(sum, "ids", json_array());
            }
        } else {
            merge(sum, reply);
            json_decref(reply);
        }
        jobq_free(text);
        text = NULL;
        if (bar) {
            draw_bar(json_integer_value(json_object_get(sum, "matched")), all);
        }
        const json_t *next = json_object_get(sum, "next");
        if (!json_is_integer(next)) {
            break;
        }
        json_object_set(req, "after", (json_t *)next);
    }
    if (bar) {
        fputc('\n', stderr);
    }
    if (sum != NULL && rc == EXIT_OK) {
        if (c->json) {
            char *out = json_dumps(sum, JSON_COMPACT);
            cli_print_reply(out != NULL ? out : "{}");
            free(out);
        } else {
            print_text(sum, false);
        }
    }
    json_decref(sum);
    json_decref(req);
    return rc;
}
