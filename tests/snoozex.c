/* snoozex.c: jobq-snoozex, a remote worker for tests/it_dedupe.sh that fetches one job of a
 * queue with libjobq and snoozes it with jobq_worker_snooze.
 *
 *   jobq-snoozex URL QUEUE DELAY_MS
 *
 * Prints the job's id and exits 0, or prints the error's name and exits 1; 2 on bad usage. */
#include <jobq.h>
#include <stdio.h>
#include <stdlib.h>

int
main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: jobq-snoozex URL QUEUE DELAY_MS\n");
        return 2;
    }
    const char *queues[] = {argv[2]};
    jobq_client *c = NULL;
    jobq_worker *w = NULL;
    jobq_lease *l = NULL;
    size_t n = 0;
    int err = jobq_client_open(&c, argv[1]);
    if (err == JOBQ_OK) {
        err = jobq_worker_open(&w, c, queues, 1);
    }
    if (err == JOBQ_OK) {
        err = jobq_worker_fetch(w, 1, 10000, &l, &n);
    }
    if (err == JOBQ_OK && n == 1) {
        err = jobq_worker_snooze(w, l, strtoll(argv[3], NULL, 10), "not yet");
    }
    if (err == JOBQ_OK && n == 1) {
        printf("%lld\n", (long long)jobq_lease_id(l));
    } else {
        printf("%s\n", err == JOBQ_OK ? "no job" : jobq_strerror(err));
    }
    jobq_lease_free(l);
    jobq_worker_close(w);
    jobq_client_close(c);
    return err == JOBQ_OK && n == 1 ? 0 : 1;
}
