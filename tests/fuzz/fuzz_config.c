/* fuzz_config.c: libFuzzer target for jobqd's config reader (daemon/config.c): each input is
 * written to one per-process temp file, loaded with config_load and freed, checking the result
 * or the error message against config.h's contract. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "request.h"

#define ERR_SIZE 1024 /* as in daemon/main.c */

/* check: aborts with the failed invariant (libFuzzer then saves the input as a crash). */
#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_config: invariant failed at %s:%d: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char path[4096]; /* the per-process file every input is written to */
static int fd = -1;

static void
remove_file(void)
{
    if (fd >= 0) {
        close(fd);
        unlink(path);
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/jobq-fuzz-config-XXXXXX", dir != NULL && *dir ? dir : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
        perror("fuzz_config: mkstemp");
        exit(1);
    }
    atexit(remove_file);
    return 0;
}

/* write_input: replaces the file's contents with data. */
static void
write_input(const uint8_t *data, size_t size)
{
    check(ftruncate(fd, 0) == 0);
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        check(n > 0);
        off += (size_t)n;
    }
}

/* check_config: the invariants of a config that loaded. */
static void
check_config(const config *cfg)
{
    check(cfg->path != NULL && strcmp(cfg->path, path) == 0);
    check(cfg->nlisten >= 1 && cfg->listen != NULL);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        check(cfg->listen[i] != NULL && cfg->listen[i][0] != '\0');
    }
    check(cfg->database != NULL && cfg->database[0] != '\0');
    check(cfg->auth_token == NULL || strlen(cfg->auth_token) >= 16);
    check(cfg->max_message >= 1024 && cfg->max_message <= 256 * 1024 * 1024);
    check(cfg->max_batch >= 1 && cfg->max_batch <= 1000000);
    check(cfg->nqueues == 0 || cfg->queues != NULL);
    for (size_t i = 0; i < cfg->nqueues; i++) {
        const queue_conf *q = &cfg->queues[i];
        check(q->name != NULL && jobq__valid_queue_name(q->name));
        check(config_queue(cfg, q->name) == q); /* names are unique */
        check(q->argv == NULL || (q->argv[0] != NULL && q->argv[0][0] != '\0'));
        for (char **w = q->argv; w != NULL && *w != NULL; w++) {
            check(strlen(*w) < SIZE_MAX);
        }
        check(q->argv == NULL || q->url == NULL);
        check(q->url == NULL || strncmp(q->url, "http://", 7) == 0 ||
              strncmp(q->url, "https://", 8) == 0);
        check((q->secret == NULL && q->ca == NULL) || q->url != NULL);
        check(q->concurrency >= 1 && q->max_attempts >= 1);
        check(q->timeout_ms > 0 && q->lease_ms >= 1000);
        check(q->backoff_base_ms >= 1 && q->backoff_max_ms >= q->backoff_base_ms);
        int rate, failures;
        config_breaker_rates(q, &rate, &failures);
        check(failures >= 0 && rate >= 0 && rate <= 100 && (rate > 0 || failures > 0));
        check(q->breaker_window >= 1 && q->breaker_min_calls >= 1 &&
              q->breaker_min_calls <= q->breaker_window && q->breaker_probes >= 1);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    write_input(data, size);
    config *cfg = (config *)(uintptr_t)0x1; /* must stay untouched on failure */
    char err[ERR_SIZE];
    memset(err, 0x5a, sizeof(err));
    if (config_load(path, &cfg, err, sizeof(err)) == 0) {
        check(cfg != NULL && cfg != (config *)(uintptr_t)0x1);
        check_config(cfg);
        config_free(cfg);
        return 0;
    }
    check(cfg == (config *)(uintptr_t)0x1);
    check(memchr(err, '\0', sizeof(err)) != NULL);
    size_t plen = strlen(path);
    check(strncmp(err, path, plen) == 0);
    check(err[plen] == ':' && err[plen + 1] != '\0');
    return 0;
}
