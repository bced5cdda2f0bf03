/* rawreq.c: jobq-raw, one hand-written request to jobqd through a bare nng REQ socket (no
 * libjobq), for the integration tests' `raw` helper. Unlike nngcat, whose REQ socket sends
 * a request again when no reply came within 60 s, it never resends: a slow batch under
 * valgrind must be stored once.
 *
 *   jobq-raw URL TIMEOUT_S --data TEXT     sends TEXT
 *   jobq-raw URL TIMEOUT_S --file FILE     sends the contents of FILE ("-": stdin)
 *   jobq-raw URL TIMEOUT_S --pipeline TEXT...
 *                                          sends each TEXT in turn on one connection, each on
 *                                          its own REQ context, without waiting for replies
 *
 * Prints the reply and a newline; with --pipeline, one line per reply in the order the
 * replies arrive: the index of its request (from 0), a space, the reply. Exits 0 on a reply
 * (every reply), 1 on no reply within TIMEOUT_S or a transport error (reported on stderr), 2
 * on bad usage. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
usage(void)
{
    fprintf(stderr,
            "usage: jobq-raw URL TIMEOUT_S (--data TEXT | --file FILE | --pipeline TEXT...)\n");
    return 2;
}

/* One request of --pipeline. */
typedef struct piped {
    int idx;
    nng_ctx ctx;
    nng_aio *aio; /* the receive; its callback prints the reply */
    int rv;
} piped;

static pthread_mutex_t print_mtx = PTHREAD_MUTEX_INITIALIZER;

static void
piped_cb(void *arg)
{
    piped *p = arg;
    p->rv = nng_aio_result(p->aio);
    if (p->rv != 0) {
        return;
    }
    nng_msg *m = nng_aio_get_msg(p->aio);
    pthread_mutex_lock(&print_mtx);
    printf("%d %.*s\n", p->idx, (int)nng_msg_len(m), (const char *)nng_msg_body(m));
    fflush(stdout);
    pthread_mutex_unlock(&print_mtx);
    nng_msg_free(m);
}

/* pipeline: sends texts[0..n) one after the other on socket s, each on its own context, then
 * waits for every reply. Returns 0 or an nng error. */
static int
pipeline(nng_socket s, char **texts, int n, long secs)
{
    piped *ps = calloc((size_t)n, sizeof(*ps));
    nng_aio *send_aio = NULL;
    int rv = ps == NULL ? NNG_ENOMEM : nng_aio_alloc(&send_aio, NULL, NULL);
    int opened = 0;
    for (int i = 0; rv == 0 && i < n; i++) {
        piped *p = &ps[i];
        p->idx = i;
        if ((rv = nng_ctx_open(&p->ctx, s)) != 0) {
            break;
        }
        opened++;
        nng_ctx_set_ms(p->ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_ctx_set_ms(p->ctx, NNG_OPT_RECVTIMEO, (nng_duration)(secs * 1000));
        nng_msg *m;
        if ((rv = nng_aio_alloc(&p->aio, piped_cb, p)) != 0 || (rv = nng_msg_alloc(&m, 0)) != 0) {
            break;
        }
        if ((rv = nng_msg_append(m, texts[i], strlen(texts[i]))) != 0) {
            nng_msg_free(m);
            break;
        }
        /* The send completes once the request is on its way: the next goes after it. */
        nng_aio_set_msg(send_aio, m);
        nng_ctx_send(p->ctx, send_aio);
        nng_aio_wait(send_aio);
        if ((rv = nng_aio_result(send_aio)) != 0) {
            nng_msg_free(m);
            break;
        }
        nng_ctx_recv(p->ctx, p->aio);
    }
    for (int i = 0; i < opened; i++) {
        if (ps[i].aio != NULL) {
            if (rv != 0) {
                nng_aio_cancel(ps[i].aio);
            }
            nng_aio_wait(ps[i].aio);
            if (rv == 0 && ps[i].rv != 0) {
                rv = ps[i].rv;
            }
            nng_aio_free(ps[i].aio);
        }
        nng_ctx_close(ps[i].ctx);
    }
    nng_aio_free(send_aio);
    free(ps);
    return rv;
}

/* read_all: the whole of f into a malloc'd buffer; NULL on error. */
static char *
read_all(FILE *f, size_t *lenp)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) {
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            return NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf != NULL && ferror(f)) {
        free(buf);
        return NULL;
    }
    *lenp = len;
    return buf;
}

int
main(int argc, char **argv)
{
    if (argc < 5) {
        return usage();
    }
    const char *url = argv[1];
    char *end = NULL;
    long secs = strtol(argv[2], &end, 10);
    if (*end != '\0' || secs <= 0 || secs > 86400) {
        return usage();
    }
    bool piped_mode = strcmp(argv[3], "--pipeline") == 0;
    if (!piped_mode && argc != 5) {
        return usage();
    }
    char *body = NULL;
    size_t len = 0;
    if (piped_mode) {
        body = malloc(1); /* unused */
    } else if (strcmp(argv[3], "--data") == 0) {
        len = strlen(argv[4]);
        body = malloc(len + 1);
        if (body != NULL) {
            memcpy(body, argv[4], len + 1);
        }
    } else if (strcmp(argv[3], "--file") == 0) {
        FILE *f = strcmp(argv[4], "-") == 0 ? stdin : fopen(argv[4], "rb");
        if (f == NULL) {
            perror(argv[4]);
            return 1;
        }
        body = read_all(f, &len);
        if (f != stdin) {
            fclose(f);
        }
    } else {
        return usage();
    }
    if (body == NULL) {
        fprintf(stderr, "jobq-raw: cannot read the request\n");
        return 1;
    }

    nng_socket s;
    int rv = nng_req0_open(&s);
    if (rv == 0) {
        rv = nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    }
    if (rv == 0) {
        rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, (nng_duration)(secs * 1000));
    }
    if (rv == 0) {
        rv = nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
    }
    if (rv == 0 && (rv = nng_dial(s, url, NULL, 0)) != 0) {
        fprintf(stderr, "jobq-raw: cannot dial %s: %s\n", url, nng_strerror(rv));
        free(body);
        nng_close(s);
        return 1;
    }
    if (rv == 0 && piped_mode) {
        free(body);
        rv = pipeline(s, argv + 4, argc - 4, secs);
        if (rv != 0) {
            fprintf(stderr, "jobq-raw: %s\n", nng_strerror(rv));
        }
        nng_close(s);
        return rv == 0 && fflush(stdout) == 0 ? 0 : 1;
    }
    if (rv == 0) {
        rv = nng_send(s, body, len, 0);
    }
    free(body);
    char *reply = NULL;
    size_t rlen = 0;
    if (rv == 0) {
        rv = nng_recv(s, &reply, &rlen, NNG_FLAG_ALLOC);
    }
    if (rv != 0) {
        fprintf(stderr, "jobq-raw: %s\n", nng_strerror(rv));
        nng_close(s);
        return 1;
    }
    fwrite(reply, 1, rlen, stdout);
    putchar('\n');
    nng_free(reply, rlen);
    nng_close(s);
    return fflush(stdout) == 0 ? 0 : 1;
}
