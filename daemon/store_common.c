/* store_common.c: what the store backends share, backend-neutral (store_common.h). */
#include "store_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
store_grow(void *arrp, size_t *capp, size_t n, size_t elem, size_t first)
{
    if (n < *capp) {
        return JOBQ_OK;
    }
    /* The array's pointer is read and written through memcpy: arrp points at a T *. */
    void *arr;
    memcpy(&arr, arrp, sizeof(arr));
    size_t cap = *capp ? *capp * 2 : first;
    void *grown = realloc(arr, cap * elem);
    if (grown == NULL) {
        return JOBQ_ENOMEM;
    }
    memcpy(arrp, &grown, sizeof(grown));
    *capp = cap;
    return JOBQ_OK;
}

char *
store_ids_text(const int64_t *ids, size_t n, char open, char close)
{
    size_t cap = 3 + n * 21; /* the brackets, the NUL; each id with its comma */
    char *buf = malloc(cap);
    if (buf == NULL) {
        return NULL;
    }
    size_t len = 0;
    buf[len++] = open;
    for (size_t i = 0; i < n; i++) {
        len +=
            (size_t)snprintf(buf + len, cap - len, "%s%lld", i > 0 ? "," : "", (long long)ids[i]);
    }
    snprintf(buf + len, cap - len, "%c", close);
    return buf;
}

unsigned
store_filter_states(const job_filter *f)
{
    return f->states != 0 ? f->states : (1u << (JOBQ_WAITING + 1)) - 1;
}

int
store_since_key(char *buf, size_t len, const char *name)
{
    int n = snprintf(buf, len, STORE_SINCE_PREFIX "%s", name);
    return n < 0 || (size_t)n >= len ? JOBQ_EINVAL : JOBQ_OK;
}

void
store_row_claimed(job_row *row, int64_t now_ms)
{
    row->state = JOBQ_RUNNING;
    row->attempt++;
    row->started_at_ms = now_ms;
    row->finished_at_ms = 0;
}

void
store_rows_clear(job_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        job_row_clear(&rows[i]);
    }
}

int
store_rows_done(int err, job_row *rows, size_t n, size_t *np)
{
    if (err != JOBQ_OK) {
        store_rows_clear(rows, n);
        return err;
    }
    *np = n;
    return JOBQ_OK;
}

int
store_claim_done(int err, job_row *rows, size_t n, bool blocked, int64_t wake_ms,
                 key_claim_info *info, size_t *np)
{
    err = store_rows_done(err, rows, n, np);
    if (err == JOBQ_OK && info != NULL) {
        info->blocked = blocked;
        info->wake_ms = wake_ms > 0 ? wake_ms : 0;
    }
    return err;
}
