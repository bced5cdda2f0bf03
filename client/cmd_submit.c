/* cmd_submit.c: `jobq submit`: one job (optionally waiting for it), or an NDJSON batch
 * sent as concurrent 1000-job submit_batch requests with a progress bar. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BATCH_CHUNK 1000 /* jobs per submit_batch request */
#define BATCH_THREADS 4  /* requests in flight */

/* submit_args: the parsed command line of `jobq submit`. */
typedef struct submit_args {
    const char *queue;
    const char *payload_arg; /* the PAYLOAD operand, NULL when absent */
    const char *batch;       /* --batch FILE, NULL without */
    jobq_submit_opts opts;
    bool wait;
    bool group;           /* --group: the batch is one group */
    bool have_delay;      /* --delay was given */
    const char *oc_queue; /* --on-complete QUEUE:PAYLOAD */
    const char *oc_payload;
    int64_t after[1000]; /* --after ID[,ID...] */
} submit_args;

/* looks_unquoted: whether a bad payload looks like text that lacks its JSON quotes. */
static bool
looks_unquoted(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n') {
        s++;
    }
    return *s != '\0' && strchr("{[\"-0123456789", *s) == NULL && strncmp(s, "true", 4) != 0 &&
           strncmp(s, "false", 5) != 0 && strncmp(s, "null", 4) != 0;
}

/* json_check: whether text is one JSON value; else fills why (jansson's reason). */
static bool
json_check(const char *text, char *why, size_t size)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        snprintf(why, size, "%s (column %d)", jerr.text, jerr.column);
        return false;
    }
    json_decref(v);
    return true;
}

/* submit_request: the submit request for --json, built as libjobq builds it. */
static json_t *
submit_request(const submit_args *a, const char *payload)
{
    json_t *pv = payload != NULL ? json_loads(payload, JSON_DECODE_ANY, NULL) : json_null();
    json_t *req = json_pack("{s:s, s:s, s:o}", "op", "submit", "queue", a->queue, "payload", pv);
    if (req == NULL) {
        return NULL;
    }
    const jobq_submit_opts *o = &a->opts;
    int rv = 0;
    if (o->priority != 0) {
        rv |= json_object_set_new(req, "priority", json_integer(o->priority));
    }
    if (o->run_at_ms != 0) {
        rv |= json_object_set_new(req, "run_at", json_integer(o->run_at_ms));
    } else if (o->delay_ms != 0) {
        rv |= json_object_set_new(req, "delay", json_integer(o->delay_ms));
    }
    if (o->max_attempts != 0) {
        rv |= json_object_set_new(req, "max_attempts", json_integer(o->max_attempts));
    }
    if (o->timeout_ms != 0) {
        rv |= json_object_set_new(req, "timeout", json_integer(o->timeout_ms));
    }
    if (o->key != NULL) {
        rv |= json_object_set_new(req, "key", json_string(o->key));
    }
    if (o->nafter > 0) {
        json_t *after = json_array();
        for (size_t i = 0; i < o->nafter; i++) {
            rv |= json_array_append_new(after, json_integer(o->after[i]));
        }
        rv |= json_object_set_new(req, "after", after);
        if (o->after_always) {
            rv |= json_object_set_new(req, "after_policy", json_string("always"));
        }
    }
    if (o->traceparent != NULL) {
        rv |= json_object_set_new(req, "traceparent", json_string(o->traceparent));
        if (o->tracestate != NULL) {
            rv |= json_object_set_new(req, "tracestate", json_string(o->tracestate));
        }
    }
    if (o->group_key != NULL) {
        rv |= json_object_set_new(req, "group_key", json_string(o->group_key));
    }
    static const char *const modes[] = {"ttl", "until_done", "replace", "debounce"};
    if (o->dedupe > JOBQ_DEDUPE_TTL && o->dedupe <= JOBQ_DEDUPE_DEBOUNCE) {
        rv |= json_object_set_new(req, "dedupe", json_string(modes[o->dedupe]));
    }
    if (o->debounce_max_ms != 0) {
        rv |= json_object_set_new(req, "debounce_max", json_integer(o->debounce_max_ms));
    }
    if (o->expires_in_ms != 0) {
        rv |= json_object_set_new(req, "expires_in", json_integer(o->expires_in_ms));
    } else if (o->expires_at_ms != 0) {
        rv |= json_object_set_new(req, "expires_at", json_integer(o->expires_at_ms));
    }
    if (rv != 0) {
        json_decref(req);
        return NULL;
    }
    return req;
}

static int
submit_one(cli *c, const cli_cmd *cmd, const submit_args *a)
{
    char *stdin_text = NULL;
    const char *payload = a->payload_arg;
    const char *source = "PAYLOAD";
    bool from_stdin = (payload != NULL && strcmp(payload, "-") == 0) ||
                      (payload == NULL && !isatty(STDIN_FILENO));
    if (from_stdin) {
        stdin_text = cli_read_all(stdin);
        if (stdin_text == NULL) {
            perror("jobq: submit: reading the payload from stdin");
            return EXIT_FAILED;
        }
        source = "the payload on stdin";
        payload = stdin_text;
        if (a->payload_arg == NULL && strspn(payload, " \t\r\n") == strlen(payload)) {
            payload = NULL; /* nothing piped in (e.g. </dev/null): a null payload */
        }
    }
    char why[256];
    if (payload != NULL && !json_check(payload, why, sizeof(why))) {
        int rc;
        if (looks_unquoted(payload)) {
            rc = cli_usage(cmd,
                           "%s is not valid JSON: %s\n"
                           "hint: a string payload needs JSON quotes, inside shell quotes: "
                           "'\"text\"'",
                           source, why);
        } else {
            rc = cli_usage(cmd, "%s is not valid JSON: %s", source, why);
        }
        free(stdin_text);
        return rc;
    }
    int rc = cli_connect(c);
    if (rc != EXIT_OK) {
        free(stdin_text);
        return rc;
    }
    int64_t id = 0;
    if (c->json) {
        json_t *reply;
        char *text;
        rc = cli_call(c, submit_request(a, payload), &reply, &text, "submit to queue \"%s\"",
                      a->queue);
        free(stdin_text);
        if (reply == NULL) {
            return rc;
        }
        cli_print_reply(text);
        id = (int64_t)json_integer_value(json_object_get(reply, "id"));
        json_decref(reply);
        jobq_free(text);
        if (rc != EXIT_OK || !a->wait) {
            return rc;
        }
        fflush(stdout);
        return cli_wait_json(c, &id, 1, -1);
    }
    jobq_submitted out = {0};
    int err = jobq_submit_ex(c->client, a->queue, payload, &a->opts, &id, &out);
    free(stdin_text);
    if (err != JOBQ_OK) {
        return cli_fail(err, "submit to queue \"%s\"", a->queue);
    }
    printf("%lld%s\n", (long long)id,
           out.duplicate  ? " (duplicate)"
           : out.replaced ? " (replaced)"
                          : "");
    if (!a->wait) {
        return EXIT_OK;
    }
    fflush(stdout);
    return cli_wait_job(c, id, -1);
}

/* batch: the shared state of a batch submit's worker threads. */
typedef struct batch {
    jobq_client *client;
    const char *queue;
    const jobq_submit_opts *opts;
    char **payloads; /* n lines, the JSON texts */
    size_t *lines;   /* n line numbers (1-based) */
    int64_t *ids;    /* n ids, written by the requests */
    size_t n;
    size_t nchunks;
    unsigned char *chunk_ok; /* per chunk: 1 once stored */
    atomic_size_t next;      /* the next chunk to send */
    atomic_size_t done;      /* jobs stored */
    atomic_int running;      /* workers still running */
    atomic_bool stop;        /* a request failed: take no more chunks */
    pthread_mutex_t lock;    /* guards the first failure below */
    int err;
    size_t err_chunk;
    char errmsg[512];
} batch;

static void *
batch_worker(void *arg)
{
    batch *b = arg;
    for (;;) {
        size_t k = atomic_fetch_add(&b->next, 1);
        if (k >= b->nchunks || atomic_load(&b->stop)) {
            break;
        }
        size_t start = k * BATCH_CHUNK;
        size_t len = b->n - start < BATCH_CHUNK ? b->n - start : BATCH_CHUNK;
        int err = jobq_submit_batch(b->client, b->queue, (const char *const *)b->payloads + start,
                                    len, b->opts, b->ids + start);
        if (err == JOBQ_OK) {
            b->chunk_ok[k] = 1;
            atomic_fetch_add(&b->done, len);
            continue;
        }
        pthread_mutex_lock(&b->lock);
        if (b->err == JOBQ_OK || k < b->err_chunk) {
            b->err = err;
            b->err_chunk = k;
            snprintf(b->errmsg, sizeof(b->errmsg), "%s",
                     jobq_errmsg()[0] != '\0' ? jobq_errmsg() : jobq_strerror(err));
        }
        pthread_mutex_unlock(&b->lock);
        atomic_store(&b->stop, true);
    }
    atomic_fetch_sub(&b->running, 1);
    return NULL;
}

static void
draw_progress(size_t done, size_t total, double elapsed)
{
    enum { WIDTH = 30 };
    size_t fill = total > 0 ? done * WIDTH / total : WIDTH;
    char bar[WIDTH + 1];
    for (size_t i = 0; i < WIDTH; i++) {
        bar[i] = i < fill ? '#' : '.';
    }
    bar[WIDTH] = '\0';
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    fprintf(stderr, "\r[%s] %zu/%zu jobs %3d%%  %.0f jobs/s\033[K", bar, done, total,
            total > 0 ? (int)(done * 100 / total) : 100, rate);
    fflush(stderr);
}

/* read_batch: reads the NDJSON input into b->payloads/lines, checking every line. Returns
 * EXIT_OK or the exit status after printing why. */
static int
read_batch(const cli_cmd *cmd, const char *path, batch *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    const char *name = f == stdin ? "stdin" : path;
    if (f == NULL) {
        fprintf(stderr, "jobq: submit: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_FAILED;
    }
    size_t cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    ssize_t len;
    size_t lineno = 0;
    int rc = EXIT_OK;
    while ((len = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            line[--len] = '\0';
        }
        if (strspn(line, " \t") == (size_t)len) {
            continue;
        }
        char why[256];
        if (!json_check(line, why, sizeof(why))) {
            rc = cli_usage(
                cmd, "%s, line %zu is not valid JSON: %s; nothing was submitted%s", name, lineno,
                why, looks_unquoted(line) ? "\nhint: a string payload needs quotes: \"text\"" : "");
            break;
        }
        if (b->n == cap) {
            size_t ncap = cap == 0 ? 1024 : cap * 2;
            char **np = realloc(b->payloads, ncap * sizeof(char *));
            if (np != NULL) {
                b->payloads = np;
            }
            size_t *nl = realloc(b->lines, ncap * sizeof(size_t));
            if (nl != NULL) {
                b->lines = nl;
            }
            if (np == NULL || nl == NULL) {
                fprintf(stderr, "jobq: submit: out of memory reading %s\n", name);
                rc = EXIT_FAILED;
                break;
            }
            cap = ncap;
        }
        b->payloads[b->n] = strdup(line);
        if (b->payloads[b->n] == NULL) {
            fprintf(stderr, "jobq: submit: out of memory reading %s\n", name);
            rc = EXIT_FAILED;
            break;
        }
        b->lines[b->n++] = lineno;
    }
    if (rc == EXIT_OK && ferror(f)) {
        fprintf(stderr, "jobq: submit: error reading %s: %s\n", name, strerror(errno));
        rc = EXIT_FAILED;
    }
    free(line);
    if (f != stdin) {
        fclose(f);
    }
    return rc;
}

/* report_partial: after a failed request, says which lines were stored. */
static void
report_partial(const batch *b)
{
    size_t stored = atomic_load(&b->done);
    if (stored == 0) {
        fprintf(stderr, "jobq: nothing was submitted\n");
        return;
    }
    fprintf(stderr, "jobq: %zu of %zu jobs were submitted, from lines", stored, b->n);
    const char *sep = " ";
    for (size_t k = 0; k < b->nchunks;) {
        if (!b->chunk_ok[k]) {
            k++;
            continue;
        }
        size_t first = k;
        while (k < b->nchunks && b->chunk_ok[k]) {
            k++;
        }
        size_t last_job = k * BATCH_CHUNK < b->n ? k * BATCH_CHUNK - 1 : b->n - 1;
        fprintf(stderr, "%s%zu-%zu", sep, b->lines[first * BATCH_CHUNK], b->lines[last_job]);
        sep = ", ";
    }
    fprintf(stderr, "; the other lines were not\n");
}

/* submit_group: the whole batch as one group, in one atomic request. */
static int
submit_group(cli *c, const submit_args *a, batch *b)
{
    b->ids = malloc(b->n * sizeof(int64_t));
    if (b->ids == NULL) {
        fprintf(stderr, "jobq: submit: out of memory\n");
        return EXIT_FAILED;
    }
    int64_t group = 0;
    int err = jobq_submit_group(c->client, a->queue, (const char *const *)b->payloads, b->n,
                                &a->opts, a->oc_queue, a->oc_payload, b->ids, &group);
    if (err != JOBQ_OK) {
        int rc = cli_fail(err, "submit a group of %zu jobs to queue \"%s\"", b->n, a->queue);
        fprintf(stderr, "jobq: nothing was submitted\n");
        return rc;
    }
    if (c->json) {
        printf("{\"ok\":true,\"group\":%lld,\"count\":%zu,\"min_id\":%lld,\"max_id\":%lld}\n",
               (long long)group, b->n, (long long)b->ids[0], (long long)b->ids[b->n - 1]);
    } else {
        printf("%lld\n", (long long)group);
    }
    return EXIT_OK;
}

static int
submit_batch(cli *c, const cli_cmd *cmd, const submit_args *a)
{
    batch b = {.queue = a->queue, .opts = &a->opts, .err = JOBQ_OK};
    int rc = read_batch(cmd, a->batch, &b);
    if (rc == EXIT_OK && b.n == 0) {
        fprintf(stderr, "jobq: submit: %s holds no jobs; nothing to submit\n",
                strcmp(a->batch, "-") == 0 ? "stdin" : a->batch);
    }
    if (rc != EXIT_OK || b.n == 0 || (rc = cli_connect(c)) != EXIT_OK) {
        goto out;
    }
    if (a->group) {
        rc = submit_group(c, a, &b);
        goto out;
    }
    b.client = c->client;
    b.nchunks = (b.n + BATCH_CHUNK - 1) / BATCH_CHUNK;
    b.ids = malloc(b.n * sizeof(int64_t));
    b.chunk_ok = calloc(b.nchunks, 1);
    if (b.ids == NULL || b.chunk_ok == NULL) {
        fprintf(stderr, "jobq: submit: out of memory\n");
        rc = EXIT_FAILED;
        goto out;
    }
    pthread_mutex_init(&b.lock, NULL);
    atomic_init(&b.next, 0);
    atomic_init(&b.done, 0);
    atomic_init(&b.stop, false);
    size_t want = b.nchunks < BATCH_THREADS ? b.nchunks : BATCH_THREADS;
    pthread_t threads[BATCH_THREADS];
    size_t started = 0;
    atomic_init(&b.running, (int)want);
    for (; started < want; started++) {
        if (pthread_create(&threads[started], NULL, batch_worker, &b) != 0) {
            atomic_fetch_sub(&b.running, (int)(want - started));
            break;
        }
    }
    if (started == 0) {
        atomic_store(&b.running, 1);
        batch_worker(&b); /* no thread could start: do the work here */
    }
    bool bar = isatty(STDERR_FILENO);
    double t0 = cli_mono_s();
    while (bar && atomic_load(&b.running) > 0) {
        draw_progress(atomic_load(&b.done), b.n, cli_mono_s() - t0);
        nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }
    if (bar) {
        draw_progress(atomic_load(&b.done), b.n, cli_mono_s() - t0);
        fputc('\n', stderr);
    }
    pthread_mutex_destroy(&b.lock);
    if (b.err != JOBQ_OK) {
        size_t first = b.err_chunk * BATCH_CHUNK;
        size_t last = first + BATCH_CHUNK < b.n ? first + BATCH_CHUNK - 1 : b.n - 1;
        fprintf(stderr, "jobq: submit to queue \"%s\", lines %zu-%zu: %s\n", a->queue,
                b.lines[first], b.lines[last], b.errmsg);
        report_partial(&b);
        rc = b.err == JOBQ_EUNREACH ? EXIT_UNREACH : EXIT_FAILED;
        goto out;
    }
    int64_t min_id = b.ids[0], max_id = b.ids[0];
    for (size_t i = 1; i < b.n; i++) {
        min_id = b.ids[i] < min_id ? b.ids[i] : min_id;
        max_id = b.ids[i] > max_id ? b.ids[i] : max_id;
    }
    if (c->json) {
        printf("{\"ok\":true,\"count\":%zu,\"min_id\":%lld,\"max_id\":%lld}\n", b.n,
               (long long)min_id, (long long)max_id);
    } else {
        printf("submitted %zu job%s to queue \"%s\": ids %lld..%lld\n", b.n, b.n == 1 ? "" : "s",
               a->queue, (long long)min_id, (long long)max_id);
    }
out:
    for (size_t i = 0; i < b.n; i++) {
        free(b.payloads[i]);
    }
    free(b.payloads);
    free(b.lines);
    free(b.ids);
    free(b.chunk_ok);
    return rc;
}

/* submit_option: one option of jobq submit into a (a submit_args). */
static int
submit_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    submit_args *a = ctx;
    int64_t v = 0;
    int rc = EXIT_OK;
    switch (ch) {
    case 'd':
        rc = cli_opt_duration(cmd, "--delay", arg, true, "30s, 5m or 1h", &a->opts.delay_ms);
        a->have_delay = true;
        break;
    case 'a':
        rc = cli_opt_time(cmd, "--at", arg, &a->opts.run_at_ms);
        break;
    case 'p':
        rc = cli_opt_int(cmd, "--priority", arg, INT32_MIN, INT32_MAX, "needs an integer", &v);
        a->opts.priority = (int32_t)v;
        break;
    case 'm':
        rc = cli_opt_int(cmd, "--max-attempts", arg, 1, INT32_MAX, "needs a positive integer", &v);
        a->opts.max_attempts = (int32_t)v;
        break;
    case 't':
        rc = cli_opt_duration(cmd, "--timeout", arg, false, "30s", &a->opts.timeout_ms);
        break;
    case 'k':
        if (arg[0] == '\0') {
            return cli_usage(cmd, "--key must not be empty");
        }
        a->opts.key = arg;
        break;
    case 'w':
        a->wait = true;
        break;
    case 'A': {
        char *p = arg;
        while (*p != '\0') {
            char *comma = strchr(p, ',');
            if (comma != NULL) {
                *comma = '\0';
            }
            if (a->opts.nafter == sizeof(a->after) / sizeof(a->after[0])) {
                return cli_usage(cmd, "--after names at most %zu jobs",
                                 sizeof(a->after) / sizeof(a->after[0]));
            }
            if (!cli_parse_i64(p, 1, INT64_MAX, &a->after[a->opts.nafter])) {
                return cli_usage(cmd, "--after needs job ids separated by commas, not \"%s\"", p);
            }
            a->opts.nafter++;
            p = comma != NULL ? comma + 1 : p + strlen(p);
        }
        if (a->opts.nafter == 0) {
            return cli_usage(cmd, "--after needs at least one job id");
        }
        a->opts.after = a->after;
        break;
    }
    case 'P':
        if (strcmp(arg, "always") != 0 && strcmp(arg, "success") != 0) {
            return cli_usage(cmd, "--after-policy is success or always, not \"%s\"", arg);
        }
        a->opts.after_always = strcmp(arg, "always") == 0;
        break;
    case 'g':
        a->group = true;
        break;
    case 'T':
        a->opts.traceparent = arg;
        a->opts.tracestate = NULL;
        break;
    case 'S':
        a->opts.tracestate = arg;
        break;
    case 'G':
        if (arg[0] == '\0' || strlen(arg) > 200) {
            return cli_usage(cmd, "--group-key needs 1 to 200 bytes");
        }
        a->opts.group_key = arg;
        break;
    case 'D': {
        static const char *const modes[] = {"ttl", "until_done", "replace", "debounce"};
        int m = 0;
        while (m < 4 && strcmp(arg, modes[m]) != 0) {
            m++;
        }
        if (m == 4) {
            return cli_usage(cmd, "--dedupe is ttl, until_done, replace or debounce, not \"%s\"",
                             arg);
        }
        a->opts.dedupe = m;
        break;
    }
    case 'M':
        rc = cli_opt_duration(cmd, "--debounce-max", arg, false, "1m", &a->opts.debounce_max_ms);
        break;
    case 'E':
        rc = cli_opt_duration(cmd, "--expires-in", arg, false, "10m", &a->opts.expires_in_ms);
        break;
    case 'X':
        rc = cli_opt_time(cmd, "--expires-at", arg, &a->opts.expires_at_ms);
        break;
    case 'o': {
        char *colon = strchr(arg, ':');
        if (colon == NULL || colon == arg) {
            return cli_usage(cmd,
                             "--on-complete needs QUEUE:PAYLOAD, such as 'report:{\"to\":\"ops\"}' "
                             "or report:null, not \"%s\"",
                             arg);
        }
        *colon = '\0';
        a->oc_queue = arg;
        a->oc_payload = colon + 1;
        char why[256];
        if (!json_check(a->oc_payload, why, sizeof(why))) {
            return cli_usage(cmd, "the --on-complete payload is not valid JSON: %s", why);
        }
        break;
    }
    default: /* 'b' */
        a->batch = arg;
        break;
    }
    return rc;
}

int
cmd_submit(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"delay", required_argument, NULL, 'd'},
                                         {"at", required_argument, NULL, 'a'},
                                         {"priority", required_argument, NULL, 'p'},
                                         {"max-attempts", required_argument, NULL, 'm'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"wait", no_argument, NULL, 'w'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"after", required_argument, NULL, 'A'},
                                         {"after-policy", required_argument, NULL, 'P'},
                                         {"group", no_argument, NULL, 'g'},
                                         {"on-complete", required_argument, NULL, 'o'},
                                         {"traceparent", required_argument, NULL, 'T'},
                                         {"tracestate", required_argument, NULL, 'S'},
                                         {"group-key", required_argument, NULL, 'G'},
                                         {"dedupe", required_argument, NULL, 'D'},
                                         {"debounce-max", required_argument, NULL, 'M'},
                                         {"expires-in", required_argument, NULL, 'E'},
                                         {"expires-at", required_argument, NULL, 'X'},
                                         {NULL, 0, NULL, 0}};
    static submit_args a; /* after[] is large for a stack frame */
    memset(&a, 0, sizeof(a));
    /* A handler's own submits continue its trace: TRACEPARENT is jobqd's environment carrier. */
    a.opts.traceparent = getenv("TRACEPARENT");
    a.opts.tracestate = a.opts.traceparent != NULL ? getenv("TRACESTATE") : NULL;
    int rc = cli_parse(c, cmd, argc, argv, opts, submit_option, &a);
    if (rc != CLI_GO) {
        return rc;
    }
    if (a.have_delay && a.opts.run_at_ms != 0) {
        return cli_usage(cmd, "give --delay or --at, not both");
    }
    if ((a.group || a.oc_queue != NULL) && a.batch == NULL) {
        return cli_usage(cmd, "--group and --on-complete go with --batch FILE");
    }
    if (a.oc_queue != NULL && !a.group) {
        return cli_usage(cmd, "--on-complete needs --group");
    }
    if (a.opts.dedupe != JOBQ_DEDUPE_TTL && a.opts.key == NULL) {
        return cli_usage(cmd, "--dedupe needs --key");
    }
    if (a.opts.debounce_max_ms != 0 && a.opts.dedupe != JOBQ_DEDUPE_DEBOUNCE) {
        return cli_usage(cmd, "--debounce-max goes with --dedupe debounce");
    }
    if (a.opts.expires_in_ms != 0 && a.opts.expires_at_ms != 0) {
        return cli_usage(cmd, "give --expires-in or --expires-at, not both");
    }
    if (a.opts.after_always && a.opts.nafter == 0) {
        return cli_usage(cmd, "--after-policy needs --after");
    }
    int have = argc - optind;
    if (have < 1) {
        return cli_usage(cmd, "missing the QUEUE");
    }
    a.queue = argv[optind];
    if (a.queue[0] == '\0') {
        return cli_usage(cmd, "the QUEUE name is empty");
    }
    if (a.batch != NULL) {
        if (have > 1) {
            return cli_usage(cmd, "--batch reads the payloads from FILE: give no PAYLOAD");
        }
        if (a.opts.key != NULL || a.wait) {
            return cli_usage(cmd, "--key and --wait do not go with --batch");
        }
        return submit_batch(c, cmd, &a);
    }
    if (have > 2) {
        return cli_usage(cmd, "too many arguments (quote the PAYLOAD as one argument)");
    }
    a.payload_arg = have == 2 ? argv[optind + 1] : NULL;
    return submit_one(c, cmd, &a);
}
