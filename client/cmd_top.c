/* cmd_top.c: jobq top: a live terminal view of every queue (counts, rates, breaker), redrawn
 * every interval on the alternate screen until q; one plain snapshot when not on a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define TOP_NCOLS 11
#define TOP_MAX_QUEUE_WIDTH 32
#define TOP_MAX_SERIES 1000 /* queues whose rates one refresh asks for (stats "queues") */

/* One refresh: the reply and when it came (monotonic seconds). */
typedef struct snapshot {
    json_t *reply; /* owned; NULL before the first successful call */
    double mono_s;
} snapshot;

/* The live view's terminal state, restored by term_leave. */
static struct termios saved_termios;
static bool term_active;   /* alternate screen on, termios changed */
static bool termios_saved; /* saved_termios holds the terminal's settings */
static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_quit, got_winch, got_tstp;

/* on_signal: records the signal and wakes the poll through the self-pipe (the signal may be
 * delivered to any thread, libjobq's included). */
static void
on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGWINCH) {
        got_winch = 1;
    } else if (sig == SIGTSTP) {
        got_tstp = 1;
    } else {
        got_quit = 1;
    }
    if (sig_pipe[1] >= 0) {
        ssize_t n = write(sig_pipe[1], "x", 1);
        (void)n;
    }
    errno = saved;
}

static void
set_handlers(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

/* term_enter: character-at-a-time input without echo (signals still work), the alternate
 * screen, the cursor hidden. */
static void
term_enter(void)
{
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
        termios_saved = true;
        struct termios raw = saved_termios;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw); /* keep typeahead: a q typed early still quits */
    }
    fputs("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J", stdout);
    fflush(stdout);
    term_active = true;
}

/* term_leave: undoes term_enter; safe to call twice. */
static void
term_leave(void)
{
    if (!term_active) {
        return;
    }
    term_active = false;
    fputs("\x1b[?25h\x1b[?1049l", stdout);
    fflush(stdout);
    if (termios_saved) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
    }
}

static void
term_size(int *rowsp, int *colsp)
{
    struct winsize ws;
    *rowsp = 24;
    *colsp = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        *rowsp = ws.ws_row;
        *colsp = ws.ws_col;
    }
}

/* call_stats: one stats request. Returns JOBQ_OK with *replyp set (owned by the caller), or
 * the error with a message for people in msg. */
static int
call_stats(cli *c, const char *request, json_t **replyp, char *msg, size_t msgsize)
{
    char *text = NULL;
    int err = jobq_call(c->client, request, &text);
    if (err != JOBQ_OK) {
        const char *detail = jobq_errmsg();
        snprintf(msg, msgsize, "%s", detail[0] != '\0' ? detail : jobq_strerror(err));
        return err;
    }
    json_t *reply = json_loads(text, 0, NULL);
    jobq_free(text);
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        const json_t *e = json_object_get(json_object_get(reply, "error"), "message");
        snprintf(msg, msgsize, "%s",
                 json_is_string(e) ? json_string_value(e) : "the daemon's reply is not ok");
        json_decref(reply);
        return JOBQ_EPROTO;
    }
    *replyp = reply;
    return JOBQ_OK;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* fetch: the counts of every queue (plain stats), then the totals and rates of the first
 * `want` queues by name (stats with "queues" and "series"), merged into one reply. A daemon
 * that sends totals with the counts is asked once. Returns JOBQ_OK with *replyp set (owned by
 * the caller), or the error with a message for people in msg. */
static int
fetch(cli *c, size_t want, json_t **replyp, char *msg, size_t msgsize)
{
    json_t *reply = NULL;
    int err = call_stats(c, "{\"op\":\"stats\"}", &reply, msg, msgsize);
    if (err != JOBQ_OK) {
        return err;
    }
    json_t *queues = json_object_get(reply, "queues");
    size_t n = json_object_size(queues);
    const char *key;
    json_t *q;
    bool has_totals = false;
    json_object_foreach(queues, key, q)
    {
        has_totals = json_object_get(q, "totals") != NULL;
        break;
    }
    if (n == 0 || want == 0 || has_totals) {
        *replyp = reply;
        return JOBQ_OK;
    }
    const char **keys = calloc(n, sizeof(*keys));
    json_t *names = json_array();
    if (keys == NULL || names == NULL) {
        free(keys);
        json_decref(names);
        *replyp = reply; /* counts without rates */
        return JOBQ_OK;
    }
    size_t k = 0;
    json_object_foreach(queues, key, q)
    {
        keys[k++] = key;
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (size_t i = 0; i < n && i < want && i < TOP_MAX_SERIES; i++) {
        json_array_append_new(names, json_string(keys[i]));
    }
    free(keys);
    json_t *req = json_pack("{s:s, s:o, s:b}", "op", "stats", "queues", names, "series", 1);
    char *text = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    json_t *more = NULL;
    err = text != NULL ? call_stats(c, text, &more, msg, msgsize) : JOBQ_ENOMEM;
    free(text);
    if (err != JOBQ_OK) {
        json_decref(reply);
        return err;
    }
    json_object_foreach(json_object_get(more, "queues"), key, q)
    {
        json_t *mine = json_object_get(queues, key);
        if (mine != NULL) {
            json_object_set(mine, "totals", json_object_get(q, "totals"));
            json_object_set(mine, "rates", json_object_get(q, "rates"));
        }
    }
    json_decref(more);
    *replyp = reply;
    return JOBQ_OK;
}

static void
fmt_count(const json_t *q, const char *field, char *buf, size_t size)
{
    const json_t *v = json_object_get(q, field);
    if (json_is_integer(v)) {
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
    } else {
        snprintf(buf, size, "-");
    }
}

static void
fmt_rate(double r, char *buf, size_t size)
{
    if (r < 0) {
        snprintf(buf, size, "-");
    } else if (r == 0) {
        snprintf(buf, size, "0");
    } else if (r < 100) {
        snprintf(buf, size, "%.1f", r);
    } else {
        snprintf(buf, size, "%.0f", r);
    }
}

/* rate: the reply's rates.NAME, else the change of totals.NAME since prev per second, else
 * -1 (unknown). */
static double
rate(const json_t *q, const json_t *prevq, double dt, const char *name)
{
    const json_t *r = json_object_get(json_object_get(q, "rates"), name);
    if (json_is_number(r)) {
        return json_number_value(r);
    }
    const json_t *cur = json_object_get(json_object_get(q, "totals"), name);
    const json_t *old = json_object_get(json_object_get(prevq, "totals"), name);
    if (dt <= 0 || !json_is_integer(cur) || !json_is_integer(old)) {
        return -1;
    }
    double d = (double)(json_integer_value(cur) - json_integer_value(old));
    return d >= 0 ? d / dt : -1;
}

static void
fmt_uptime(int64_t s, char *buf, size_t size)
{
    if (s >= 86400) {
        snprintf(buf, size, "%lldd %lldh", (long long)(s / 86400), (long long)(s / 3600 % 24));
    } else if (s >= 3600) {
        snprintf(buf, size, "%lldh %lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
    } else if (s >= 60) {
        snprintf(buf, size, "%lldm %llds", (long long)(s / 60), (long long)(s % 60));
    } else {
        snprintf(buf, size, "%llds", (long long)s);
    }
}

/* render: writes the view into out: the header line, an optional status line, the table.
 * color adds ANSI attributes; max_rows (> 0) and width (> 0) clip it to a screen. */
static void
render(FILE *out, const snapshot *cur, const snapshot *prev, const char *version,
       const char *status, bool color, int max_rows, int width)
{
    static const char *const names[TOP_NCOLS] = {
        "QUEUE", "READY", "RUNNING", "SCHED", "RETRY", "DEAD", "OLDEST", "SUCC/s", "FAIL/s",
        "BREAKER", "PAUSED"};
    static const bool right[TOP_NCOLS] = {false, true, true, true,  true, true,
                                          true,  true, true, false, false};
    static const char *const counts[] = {"ready", "running", "scheduled", "retrying", "dead"};
    const json_t *queues = json_object_get(cur->reply, "queues");
    const json_t *pqueues = prev->reply != NULL ? json_object_get(prev->reply, "queues") : NULL;
    double dt = prev->reply != NULL ? cur->mono_s - prev->mono_s : 0;
    size_t n = json_object_size(queues);

    /* The header line. */
    char clock[16] = "", up[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm) != NULL) {
        strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    }
    const char *v = json_string_value(json_object_get(cur->reply, "version"));
    if (v == NULL) {
        v = version;
    }
    const json_t *upj = json_object_get(cur->reply, "uptime_s");
    if (json_is_number(upj)) {
        char u[24];
        fmt_uptime((int64_t)json_number_value(upj), u, sizeof(u));
        snprintf(up, sizeof(up), "  up %s", u);
    }
    long long ready = 0, running = 0;
    const char *key;
    const json_t *q;
    json_object_foreach((json_t *)queues, key, q)
    {
        ready += json_integer_value(json_object_get(q, "ready"));
        running += json_integer_value(json_object_get(q, "running"));
    }
    char node[200] = "";
    const json_t *cl = json_object_get(cur->reply, "cluster");
    const char *nname = json_string_value(json_object_get(cl, "node"));
    if (nname != NULL) {
        /* Several nodes on PostgreSQL: the counts of unfinished jobs are the cluster's. */
        snprintf(node, sizeof(node), "  node %s (%s)", nname,
                 json_is_true(json_object_get(cl, "leader")) ? "leader" : "follower");
    }
    char line[512];
    int len = snprintf(line, sizeof(line), "jobqd %s%s%s  %s  %zu queue%s, %lld ready, %lld running",
                       v != NULL ? v : "?", up, node, clock, n, n == 1 ? "" : "s", ready, running);
    if (width > 0 && len > width) {
        len = width;
    }
    fprintf(out, "%s%.*s%s%s\n", color ? "\x1b[1m" : "", len, line, color ? "\x1b[m" : "",
            color ? "\x1b[K" : "");
    if (status != NULL) {
        fprintf(out, "%s%.*s%s%s\n", color ? "\x1b[31m" : "", width > 0 ? width : 400, status,
                color ? "\x1b[m" : "", color ? "\x1b[K" : "");
    } else if (color) {
        fputs("\x1b[2mq quit\x1b[m\x1b[K\n", out);
    }
    if (color) {
        fputs("\x1b[K\n", out);
    }

    /* The table's cells, queues sorted by name. */
    const char **keys = calloc(n + 1, sizeof(char *));
    char(*cells)[TOP_NCOLS][40] = calloc(n + 1, sizeof(*cells));
    if (keys == NULL || cells == NULL) {
        free(keys);
        free(cells);
        fputs("out of memory\n", out);
        return;
    }
    size_t k = 0;
    json_object_foreach((json_t *)queues, key, q)
    {
        keys[k++] = key;
    }
    qsort(keys, n, sizeof(char *), cmp_str);
    for (size_t c = 0; c < TOP_NCOLS; c++) {
        snprintf(cells[0][c], sizeof(cells[0][c]), "%s", names[c]);
    }
    for (size_t i = 0; i < n; i++) {
        q = json_object_get(queues, keys[i]);
        const json_t *pq = json_object_get(pqueues, keys[i]);
        char(*row)[40] = cells[i + 1];
        snprintf(row[0], sizeof(row[0]), "%.*s", TOP_MAX_QUEUE_WIDTH, keys[i]);
        for (size_t f = 0; f < 5; f++) {
            fmt_count(q, counts[f], row[1 + f], sizeof(row[1 + f]));
        }
        /* How long its oldest ready job has waited (the queue's latency). */
        const json_t *age = json_object_get(q, "oldest_ready_s");
        if (json_is_integer(age) && json_integer_value(age) > 0) {
            fmt_uptime(json_integer_value(age), row[6], sizeof(row[6]));
        } else {
            snprintf(row[6], sizeof(row[6]), "-");
        }
        fmt_rate(rate(q, pq, dt, "succeeded"), row[7], sizeof(row[7]));
        fmt_rate(rate(q, pq, dt, "failed"), row[8], sizeof(row[8]));
        const char *b = json_string_value(json_object_get(q, "breaker"));
        snprintf(row[9], sizeof(row[9]), "%s", b != NULL ? b : "-");
        const json_t *p = json_object_get(q, "paused");
        snprintf(row[10], sizeof(row[10]), "%s",
                 json_is_boolean(p) ? (json_is_true(p) ? "yes" : "no") : "-");
    }
    size_t w[TOP_NCOLS] = {0};
    for (size_t i = 0; i <= n; i++) {
        for (size_t c = 0; c < TOP_NCOLS; c++) {
            size_t l = strlen(cells[i][c]);
            w[c] = l > w[c] ? l : w[c];
        }
    }
    int lines_left = max_rows > 0 ? max_rows - (color ? 3 : 1) : (int)n + 1;
    for (size_t i = 0; i <= n; i++) {
        if (max_rows > 0 && lines_left <= 1 && i < n) {
            size_t more = i == 0 ? n : n + 1 - i;
            fprintf(out, "... %zu more queue%s (enlarge the window)%s\n", more,
                    more == 1 ? "" : "s", color ? "\x1b[K" : "");
            break;
        }
        lines_left--;
        char buf[1024];
        size_t pos = 0;
        for (size_t c = 0; c < TOP_NCOLS && pos < sizeof(buf) - 1; c++) {
            int m = snprintf(buf + pos, sizeof(buf) - pos, right[c] ? "%s%*s" : "%s%-*s",
                             c == 0 ? "" : "  ", (int)w[c], cells[i][c]);
            pos += m > 0 ? (size_t)m : 0;
        }
        if (pos >= sizeof(buf)) {
            pos = sizeof(buf) - 1;
        }
        while (pos > 0 && buf[pos - 1] == ' ') {
            pos--;
        }
        int shown = width > 0 && (int)pos > width ? width : (int)pos;
        const char *on = "", *off = "";
        if (color && i == 0) {
            on = "\x1b[7m";
            off = "\x1b[m";
            shown = width > 0 ? width : shown;
            /* The header bar spans the screen. */
            while ((int)pos < shown && pos < sizeof(buf) - 1) {
                buf[pos++] = ' ';
            }
        } else if (color && strcmp(cells[i][8], "open") == 0) {
            on = "\x1b[31m";
            off = "\x1b[m";
        } else if (color &&
                   (strcmp(cells[i][8], "half_open") == 0 || strcmp(cells[i][9], "yes") == 0)) {
            on = "\x1b[33m";
            off = "\x1b[m";
        }
        fprintf(out, "%s%.*s%s%s\n", on, shown, buf, off, color ? "\x1b[K" : "");
    }
    if (n == 0) {
        fprintf(out, "(no queues)%s\n", color ? "\x1b[K" : "");
    }
    free(keys);
    free(cells);
}

/* draw: renders the live view off-screen, then writes it in one go (no flicker). */
static void
draw(const snapshot *cur, const snapshot *prev, const char *version, const char *status)
{
    int rows, cols;
    term_size(&rows, &cols);
    char *buf = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&buf, &size);
    if (mem == NULL) {
        return;
    }
    fputs("\x1b[H", mem);
    if (cur->reply != NULL) {
        render(mem, cur, prev, version, status, true, rows, cols);
    } else {
        fprintf(mem, "\x1b[31m%.*s\x1b[m\x1b[K\n", cols, status != NULL ? status : "connecting");
    }
    fputs("\x1b[J", mem);
    fclose(mem);
    /* The last line must not end in a newline, or a full screen scrolls by one. */
    if (size >= 4 && buf[size - 4] == '\n') {
        memmove(buf + size - 4, buf + size - 3, 3);
        size--;
    }
    fwrite(buf, 1, size, stdout);
    fflush(stdout);
    free(buf);
}

/* live: the interactive loop. Returns the exit status. */
static int
live(cli *c, int64_t interval_ms, const char *version)
{
    if (pipe(sig_pipe) != 0) {
        perror("jobq: top: pipe");
        return EXIT_FAILED;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    set_handlers(on_signal);
    term_enter();
    snapshot cur = {NULL, 0}, prev = {NULL, 0};
    char status[512];
    bool have_status = false;
    double next_s = cli_mono_s();
    while (!got_quit) {
        double now_s = cli_mono_s();
        if (now_s >= next_s) {
            json_t *reply = NULL;
            char msg[400];
            int rows, cols;
            term_size(&rows, &cols);
            int err = fetch(c, rows > 0 ? (size_t)rows : 0, &reply, msg, sizeof(msg));
            if (err == JOBQ_OK) {
                json_decref(prev.reply);
                prev = cur;
                cur.reply = reply;
                cur.mono_s = cli_mono_s();
                have_status = false;
            } else {
                char at[16] = "";
                time_t t = time(NULL);
                struct tm tm;
                if (localtime_r(&t, &tm) != NULL) {
                    strftime(at, sizeof(at), "%H:%M:%S", &tm);
                }
                snprintf(status, sizeof(status), "%s stats failed: %s (retrying)", at, msg);
                have_status = true;
            }
            draw(&cur, &prev, version, have_status ? status : NULL);
            next_s += (double)interval_ms / 1000.0;
            if (next_s < cli_mono_s()) {
                next_s = cli_mono_s() + (double)interval_ms / 1000.0;
            }
        }
        int wait_ms = (int)((next_s - cli_mono_s()) * 1000.0) + 1;
        struct pollfd fds[2] = {{sig_pipe[0], POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        nfds_t nfds = termios_saved ? 2 : 1;
        int r = poll(fds, nfds, wait_ms > 0 ? wait_ms : 0);
        if (r < 0 && errno != EINTR) {
            break;
        }
        char ch[64];
        while (read(sig_pipe[0], ch, sizeof(ch)) > 0) {
        }
        if (nfds == 2 && (fds[1].revents & (POLLIN | POLLHUP)) != 0) {
            ssize_t m = read(STDIN_FILENO, ch, sizeof(ch));
            if (m == 0 && (fds[1].revents & POLLHUP) != 0) {
                break; /* the terminal went away */
            }
            for (ssize_t i = 0; i < m; i++) {
                if (ch[i] == 'q' || ch[i] == 'Q' || ch[i] == 3 /* ^C */) {
                    got_quit = 1;
                } else if (ch[i] == ' ' || ch[i] == '\f') {
                    next_s = cli_mono_s(); /* refresh now */
                }
            }
        }
        if (got_tstp) {
            got_tstp = 0;
            term_leave();
            signal(SIGTSTP, SIG_DFL);
            raise(SIGTSTP); /* stops here until SIGCONT */
            set_handlers(on_signal);
            term_enter();
            got_winch = 1;
        }
        if (got_winch) {
            got_winch = 0;
            fputs("\x1b[2J", stdout);
            draw(&cur, &prev, version, have_status ? status : NULL);
        }
    }
    term_leave();
    set_handlers(SIG_DFL);
    json_decref(cur.reply);
    json_decref(prev.reply);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    return EXIT_OK;
}

enum { OPT_INTERVAL = 1, OPT_ONCE };

/* top_args: the options of jobq top. */
typedef struct top_args {
    int64_t interval_ms;
    bool once;
} top_args;

static int
top_option(const cli_cmd *cmd, void *ctx, int ch, char *arg)
{
    top_args *a = ctx;
    if (ch == OPT_ONCE) {
        a->once = true;
    } else if (!cli_parse_duration(arg, &a->interval_ms) || a->interval_ms < 100) {
        return cli_usage(cmd, "--interval needs a duration of at least 100ms, not \"%s\"", arg);
    }
    return EXIT_OK;
}

int
cmd_top(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS,
                                         {"interval", required_argument, NULL, OPT_INTERVAL},
                                         {"once", no_argument, NULL, OPT_ONCE},
                                         {NULL, 0, NULL, 0}};
    top_args a = {.interval_ms = 1000, .once = false};
    int rc = cli_parse(c, cmd, argc, argv, opts, top_option, &a);
    if (rc != CLI_GO || (rc = cli_operands(cmd, argc, 0, "")) != EXIT_OK ||
        (rc = cli_connect(c)) != EXIT_OK) {
        return rc;
    }
    int64_t interval_ms = a.interval_ms;
    bool once = a.once;
    /* The version, for daemons whose stats reply does not carry it. */
    char version[32] = "?";
    char *text = NULL;
    if (!c->json && jobq_call(c->client, "{\"op\":\"ping\"}", &text) == JOBQ_OK) {
        json_t *pong = json_loads(text, 0, NULL);
        const char *v = json_string_value(json_object_get(pong, "version"));
        if (v != NULL) {
            snprintf(version, sizeof(version), "%s", v);
        }
        json_decref(pong);
    }
    jobq_free(text);
    if (c->json || once || !isatty(STDOUT_FILENO)) {
        json_t *reply = NULL;
        char msg[400];
        int err = fetch(c, TOP_MAX_SERIES, &reply, msg, sizeof(msg));
        if (err != JOBQ_OK) {
            fprintf(stderr, "jobq: top: %s\n", msg);
            return err == JOBQ_EUNREACH ? EXIT_UNREACH : EXIT_FAILED;
        }
        if (c->json) {
            char *out = json_dumps(reply, JSON_COMPACT);
            if (out != NULL) {
                cli_print_reply(out);
            }
            free(out);
        } else {
            snapshot cur = {reply, cli_mono_s()}, none = {NULL, 0};
            render(stdout, &cur, &none, version, NULL, false, 0, 0);
        }
        json_decref(reply);
        return EXIT_OK;
    }
    /* A call must not hold the screen (and q) for the whole default timeout. */
    int64_t call_ms = interval_ms * 3 > 5000 ? interval_ms * 3 : 5000;
    if (call_ms < c->timeout_ms) {
        jobq_client_set_timeout(c->client, call_ms);
    }
    return live(c, interval_ms, version);
}
