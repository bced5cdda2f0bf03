/* rawreq.c: jobq-raw, one hand-written request to jobqd through a bare nng REQ socket (no
 * libjobq), for the integration tests' `raw` helper. Unlike nngcat, whose REQ socket sends
 * a request again when no reply came within 60 s, it never resends: a slow batch under
 * valgrind must be stored once.
 *
 *   jobq-raw URL TIMEOUT_S --data TEXT     sends TEXT
 *   jobq-raw URL TIMEOUT_S --file FILE     sends the contents of FILE ("-": stdin)
 *
 * Prints the reply and a newline; exits 0 on a reply, 1 on no reply within TIMEOUT_S or a
 * transport error (reported on stderr), 2 on bad usage. */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
usage(void)
{
    fprintf(stderr, "usage: jobq-raw URL TIMEOUT_S (--data TEXT | --file FILE)\n");
    return 2;
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
    if (argc != 5) {
        return usage();
    }
    const char *url = argv[1];
    char *end = NULL;
    long secs = strtol(argv[2], &end, 10);
    if (*end != '\0' || secs <= 0 || secs > 86400) {
        return usage();
    }
    char *body = NULL;
    size_t len = 0;
    if (strcmp(argv[3], "--data") == 0) {
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
