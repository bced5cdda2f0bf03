/* util.c: the CLI's value parsing (integers, durations, times), formatting, input reading
 * and aligned text tables. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "clock.h"
#include "duration.h"

bool
cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *vp)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
        return false;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return false;
    }
    *vp = (int64_t)v;
    return true;
}

bool
cli_parse_duration(const char *s, int64_t *msp)
{
    return jobq__duration_scan(s, true, msp); /* terms in a row: "1h30m" */
}

bool
cli_parse_time(const char *s, int64_t *msp)
{
    if (s == NULL) {
        return false;
    }
    if (s[0] == '+') {
        int64_t d;
        if (!cli_parse_duration(s + 1, &d) || d > INT64_MAX - cli_now_ms()) {
            return false;
        }
        *msp = cli_now_ms() + d;
        return true;
    }
    int64_t secs;
    if (cli_parse_i64(s, 0, INT64_MAX / 1000, &secs)) {
        *msp = secs * 1000;
        return true;
    }
    int y, mo, d, h, mi, sec = 0, n = 0;
    char sep;
    if (sscanf(s, "%4d-%2d-%2d%c%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &n) != 6 ||
        (sep != 'T' && sep != ' ')) {
        return false;
    }
    const char *rest = s + n;
    if (rest[0] == ':') {
        int m = 0;
        if (!isdigit((unsigned char)rest[1]) || !isdigit((unsigned char)rest[2]) ||
            sscanf(rest + 1, "%2d%n", &sec, &m) != 1 || m != 2) {
            return false;
        }
        rest += 3;
    }
    if (rest[0] == 'Z') {
        rest++;
    }
    if (rest[0] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
        h < 0 || mi < 0 || sec < 0) {
        return false;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d || t < 0) {
        return false; /* timegm normalised it: the day does not exist in that month */
    }
    *msp = (int64_t)t * 1000;
    return true;
}

int64_t
cli_now_ms(void)
{
    return jobq__wall_ms();
}

double
cli_mono_s(void)
{
    return (double)jobq__mono_ns() / 1e9;
}

char *
cli_fmt_time(int64_t ms, char *buf, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || localtime_r(&t, &tm) == NULL ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(buf, size, "-");
    }
    return buf;
}

char *
cli_fmt_duration(int64_t ms, char *buf, size_t size)
{
    if (ms < 1000) {
        snprintf(buf, size, "%lldms", (long long)ms);
    } else if (ms < 60 * 1000) {
        snprintf(buf, size, "%.3gs", (double)ms / 1000.0);
    } else if (ms < 3600 * 1000) {
        snprintf(buf, size, "%lldm%llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    } else {
        snprintf(buf, size, "%lldh%lldm", (long long)(ms / 3600000), (long long)(ms / 60000 % 60));
    }
    return buf;
}

char *
cli_read_all(FILE *f)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    for (;;) {
        if (cap - len < 2) {
            char *nbuf = realloc(buf, cap * 2);
            if (nbuf == NULL) {
                free(buf);
                return NULL;
            }
            buf = nbuf;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

bool
cli_table_init(cli_table *t, size_t ncols, const char *const *names, const bool *right)
{
    *t = (cli_table){.ncols = ncols};
    t->right = calloc(ncols, sizeof(bool));
    if (t->right == NULL) {
        return false;
    }
    if (right != NULL) {
        memcpy(t->right, right, ncols * sizeof(bool));
    }
    return cli_table_row(t, names);
}

bool
cli_table_row(cli_table *t, const char *const *cells)
{
    if ((t->nrows + 1) * t->ncols > t->cap) {
        size_t ncap = t->cap == 0 ? t->ncols * 16 : t->cap * 2;
        char **ncells = realloc(t->cells, ncap * sizeof(char *));
        if (ncells == NULL) {
            return false;
        }
        t->cells = ncells;
        t->cap = ncap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = strdup(cells[i] != NULL ? cells[i] : "");
        if (row[i] == NULL) {
            while (i-- > 0) {
                free(row[i]);
            }
            return false;
        }
    }
    t->nrows++;
    return true;
}

void
cli_table_print(const cli_table *t)
{
    size_t *width = calloc(t->ncols, sizeof(size_t));
    if (width == NULL) {
        return;
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            size_t w = strlen(t->cells[r * t->ncols + i]);
            width[i] = w > width[i] ? w : width[i];
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *cell = t->cells[r * t->ncols + i];
            bool last = i + 1 == t->ncols;
            if (t->right[i]) {
                printf("%*s%s", (int)width[i], cell, last ? "" : "  ");
            } else if (last) {
                printf("%s", cell);
            } else {
                printf("%-*s  ", (int)width[i], cell);
            }
        }
        putchar('\n');
    }
    free(width);
}

void
cli_table_free(cli_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t->right);
    *t = (cli_table){0};
}

int
cli_operands(const cli_cmd *cmd, int argc, int want, const char *what)
{
    int have = argc - optind;
    if (have < want) {
        return cli_usage(cmd, "missing %s", what);
    }
    if (have > want) {
        return cli_usage(cmd, "too many arguments");
    }
    return EXIT_OK;
}

int
cli_simple_opts(cli *c, const cli_cmd *cmd, int argc, char **argv, int want, const char *what)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int rc = cli_parse(c, cmd, argc, argv, opts, NULL, NULL);
    if (rc != CLI_GO) {
        return rc;
    }
    rc = cli_operands(cmd, argc, want, what);
    return rc == EXIT_OK ? CLI_GO : rc;
}

int
cli_opt_int(const cli_cmd *cmd, const char *opt, const char *s, int64_t min, int64_t max,
            const char *need, int64_t *vp)
{
    if (!cli_parse_i64(s, min, max, vp)) {
        return cli_usage(cmd, "%s %s, not \"%s\"", opt, need, s);
    }
    return EXIT_OK;
}

int
cli_opt_duration(const cli_cmd *cmd, const char *opt, const char *s, bool zero_ok, const char *like,
                 int64_t *msp)
{
    int64_t ms;
    if (!cli_parse_duration(s, &ms) || (ms == 0 && !zero_ok)) {
        return cli_usage(cmd, "%s needs a duration%s like %s, not \"%s\"", opt,
                         zero_ok ? "" : " above 0", like, s);
    }
    *msp = ms;
    return EXIT_OK;
}

int
cli_opt_time(const cli_cmd *cmd, const char *opt, const char *s, int64_t *msp)
{
    if (!cli_parse_time(s, msp)) {
        return cli_usage(cmd,
                         "%s needs Unix seconds, YYYY-MM-DDTHH:MM[:SS][Z] (UTC) or +DURATION, "
                         "not \"%s\"",
                         opt, s);
    }
    return EXIT_OK;
}

/* cell: the text of column col for row (whose key is key when rows are an object). */
static const char *
cell(const cli_column *col, const char *key, const json_t *row, char *buf, size_t size)
{
    const json_t *v = col->field != NULL ? json_object_get(row, col->field) : NULL;
    const char *none = col->none != NULL ? col->none : "-";
    switch (col->kind) {
    case CELL_TEXT:
        if (col->field == NULL) {
            return key != NULL ? key : "-";
        }
        return json_is_string(v) ? json_string_value(v) : "-";
    case CELL_INT:
        if (!json_is_integer(v)) {
            return "-";
        }
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
    case CELL_TIME:
        return json_is_integer(v) ? cli_fmt_time(json_integer_value(v), buf, size) : none;
    case CELL_FLAG:
        return json_is_true(v) ? col->on : none;
    default: /* CELL_FN */
        return col->fn(row, buf, size);
    }
}

static int
cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int
cli_print_rows(const char *what, const cli_column *cols, size_t ncols, const json_t *rows)
{
    const char *names[CLI_MAX_COLS];
    bool right[CLI_MAX_COLS];
    if (ncols > CLI_MAX_COLS) {
        return EXIT_FAILED;
    }
    for (size_t k = 0; k < ncols; k++) {
        names[k] = cols[k].name;
        right[k] = cols[k].right;
    }
    /* An object's rows go in the order of their keys. */
    size_t n = json_is_object(rows) ? json_object_size(rows) : json_array_size(rows);
    const char **keys = json_is_object(rows) ? calloc(n + 1, sizeof(char *)) : NULL;
    cli_table t;
    if ((json_is_object(rows) && keys == NULL) || !cli_table_init(&t, ncols, names, right)) {
        free(keys);
        fprintf(stderr, "jobq: %s: out of memory\n", what);
        return EXIT_FAILED;
    }
    if (keys != NULL) {
        size_t i = 0;
        const char *key;
        json_t *row;
        json_object_foreach((json_t *)rows, key, row)
        {
            keys[i++] = key;
        }
        qsort(keys, n, sizeof(char *), cmp_key);
    }
    int rc = EXIT_OK;
    for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
        const char *key = keys != NULL ? keys[i] : NULL;
        const json_t *row = key != NULL ? json_object_get(rows, key) : json_array_get(rows, i);
        char buf[CLI_MAX_COLS][64];
        const char *cells[CLI_MAX_COLS];
        for (size_t k = 0; k < ncols; k++) {
            cells[k] = cell(&cols[k], key, row, buf[k], sizeof(buf[k]));
        }
        if (!cli_table_row(&t, cells)) {
            fprintf(stderr, "jobq: %s: out of memory\n", what);
            rc = EXIT_FAILED;
        }
    }
    if (rc == EXIT_OK) {
        cli_table_print(&t);
    }
    cli_table_free(&t);
    free(keys);
    return rc;
}
