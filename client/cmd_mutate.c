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

int
cmd_mutate(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"queue", required_argument, NULL, 'q'},
                                         {"state", required_argument, NULL, 's'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"created-before", required_argument, NULL, 'B'},
                                         {"created-after", required_argument, NULL, 'A'},
                                         {"finished-before", required_argument, NULL, 'F'},
                                         {"finished-after", required_argument, NULL, 'G'},
                                         {"error-contains", required_argument, NULL, 'e'},
                                         {"key-prefix", required_argument, NULL, 'k'},
                                         {"all", no_argument, NULL, 'a'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         {"cancel", no_argument, NULL, 'C'},
                                         {"retry", no_argument, NULL, 'R'},
                                         {"delete", no_argument, NULL, 'D'},
                                         {"run-now", no_argument, NULL, 'N'},
                                         {"rerun", no_argument, NULL, 'U'},
                                         {"reschedule", required_argument, NULL, 'S'},
                                         {"priority", required_argument, NULL, 'P'},
                                         {NULL, 0, NULL, 0}};
    json_t *req = json_pack("{s:s}", "op", "mutate");
    const char *action = NULL;
    bool dry = false;
    int rc = EXIT_OK;
    int ch;
    int64_t v;
    while (rc == EXIT_OK && (ch = cli_getopt(c, cmd, argc, argv, opts, &rc)) != -1) {
        const char *act = NULL;
        switch (ch) {
        case CLI_OPT_END:
            json_decref(req);
            return rc;
        case 'q':
            json_object_set_new(req, "queue", json_string(optarg));
            break;
        case 's':
            rc = add_list(cmd, req, "state", optarg, false);
            break;
        case 'i':
            rc = add_list(cmd, req, "ids", optarg, true);
            break;
        case 'B':
            rc = add_time(cmd, req, "created_before", "--created-before", optarg);
            break;
        case 'A':
            rc = add_time(cmd, req, "created_after", "--created-after", optarg);
            break;
        case 'F':
            rc = add_time(cmd, req, "finished_before", "--finished-before", optarg);
            break;
        case 'G':
            rc = add_time(cmd, req, "finished_after", "--finished-after", optarg);
            break;
        case 'e':
            json_object_set_new(req, "error_contains", json_string(optarg));
            break;
        case 'k':
            json_object_set_new(req, "key_prefix", json_string(optarg));
            break;
        case 'a':
            json_object_set_new(req, "all", json_true());
            break;
        case 'n':
            dry = true;
            break;
        case 'C':
            act = "cancel";
            break;
        case 'R':
            act = "retry";
            break;
        case 'D':
            act = "delete";
            break;
        case 'N':
            act = "run_now";
            break;
        case 'U':
            act = "rerun";
            break;
        case 'S':
            act = "reschedule";
            if (!cli_parse_time(optarg, &v)) {
                rc = cli_usage(cmd, "--reschedule takes a time or +DUR, not \"%s\"", optarg);
            }
            json_object_set_new(req, "run_at", json_integer(v));
            break;
        default: /* 'P' */
            act = "set_priority";
            if (!cli_parse_i64(optarg, INT32_MIN, INT32_MAX, &v)) {
                rc = cli_usage(cmd, "--priority takes an integer, not \"%s\"", optarg);
            }
            json_object_set_new(req, "priority", json_integer(v));
            break;
        }
        if (rc == EXIT_OK && act != NULL) {
            if (action != NULL && strcmp(action, act) != 0) {
                rc = cli_usage(cmd, "one action at a time (--%s and --%s)", action, act);
            }
            action = act;
        }
    }
    if (rc == EXIT_OK && action == NULL) {
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
