/* waitex.c: jobq-waitex, a client for tests/it_waits.sh that calls libjobq's jobq_wait_ex once
 * and prints the job it returns.
 *
 *   jobq-waitex URL all|first|first_failure cancel|keep WAIT_MS ID... | group GID
 *
 * Prints "ID STATE" of the returned job and exits 0, or prints the error's name and exits 1;
 * 2 on bad usage. */
#include <jobq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: jobq-waitex URL all|first|first_failure cancel|keep WAIT_MS "
                        "ID... | group GID\n");
        return 2;
    }
    jobq_wait_opts o = {0};
    o.return_when = strcmp(argv[2], "first") == 0           ? JOBQ_WAIT_FIRST
                    : strcmp(argv[2], "first_failure") == 0 ? JOBQ_WAIT_FIRST_FAILURE
                                                            : JOBQ_WAIT_ALL;
    o.cancel_pending = strcmp(argv[3], "cancel") == 0;
    int64_t wait_ms = strtoll(argv[4], NULL, 10);
    size_t n = 0;
    int64_t *ids = calloc((size_t)argc, sizeof(*ids));
    if (ids == NULL) {
        return 2;
    }
    if (strcmp(argv[5], "group") == 0 && argc == 7) {
        o.group = strtoll(argv[6], NULL, 10);
    } else {
        for (int i = 5; i < argc; i++) {
            ids[n++] = strtoll(argv[i], NULL, 10);
        }
    }
    jobq_client *c;
    int err = jobq_client_open(&c, argv[1]);
    if (err != JOBQ_OK) {
        printf("%s\n", jobq_strerror(err));
        free(ids);
        return 1;
    }
    jobq_job *job = NULL;
    err = jobq_wait_ex(c, n > 0 ? ids : NULL, n, wait_ms, &o, &job);
    if (err == JOBQ_OK) {
        printf("%lld %s\n", (long long)jobq_job_id(job), jobq_state_name(jobq_job_state(job)));
    } else {
        printf("%s\n", jobq_strerror(err));
    }
    jobq_job_free(job);
    jobq_client_close(c);
    free(ids);
    return err == JOBQ_OK ? 0 : 1;
}
