/* rows.c: frees what the store's read operations allocate in rows (jobs, attempts, log lines, groups),
 * for every backend and every caller. */
#include <stdlib.h>
#include <string.h>

#include "store.h"

void
job_row_clear(job_row *row)
{
    free(row->queue);
    free(row->payload);
    free(row->key);
    free(row->result);
    free(row->error);
    free(row->traceparent);
    free(row->tracestate);
    free(row->note);
    free(row->checkpoint);
    free(row->group_key);
    free(row->parent_results);
    memset(row, 0, sizeof(*row));
}

void
log_row_clear(log_row *l)
{
    free(l->line);
    memset(l, 0, sizeof(*l));
}

void
attempt_row_clear(attempt_row *a)
{
    free(a->kind);
    free(a->error);
    memset(a, 0, sizeof(*a));
}

void
group_oc_clear(group_oc *oc)
{
    free(oc->queue);
    free(oc->payload);
    memset(oc, 0, sizeof(*oc));
}

void
group_info_clear(group_info *g)
{
    for (size_t i = 0; i < g->nmembers; i++) {
        free(g->members[i].error);
    }
    free(g->members);
    free(g->oc_queue);
    memset(g, 0, sizeof(*g));
}

void
sched_def_clear(sched_def *d)
{
    free(d->name);
    free(d->cron);
    free(d->timezone);
    free(d->queue);
    free(d->payload);
    memset(d, 0, sizeof(*d));
}
