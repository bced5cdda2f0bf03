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
cli_simple_opts(cli *c, const cli_cmd *cmd, int argc, char **argv)
{
    static const struct option opts[] = {CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    int rc = EXIT_OK;
    int ch = cli_getopt(c, cmd, argc, argv, opts, &rc);
    if (ch == CLI_OPT_END) {
        return rc;
    }
    if (ch != -1) {
        return cli_usage(cmd, "unexpected option");
    }
    return CLI_GO;
}
