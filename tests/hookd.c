/* hookd.c: a scripted HTTP endpoint for the webhook tests. Answers each POST /hook with the
 * next line of SCRIPT ("STATUS [RETRY_AFTER_SECONDS]", or "STATUS snooze=VALUE" to answer
 * with a Jobq-Snooze header; the last line repeats; replacing the
 * file, a new inode, starts again from its first line) and appends one
 * line per request to LOG: "TIME_MS JOB_ID ATTEMPT QUEUE CONTENT_TYPE STATUS BODY".
 * With JOBQ_HOOKD_SECRET set it is a receiver as the README shows one: a request whose
 * Jobq-Signature does not verify, or is older than 5 minutes, is answered 401 whatever the
 * script says (and logged with status 401). With JOBQ_HOOKD_PEM (a PEM file with its
 * certificate and key) it serves https. With JOBQ_HOOKD_TRACES it appends "JOB_ID TRACEPARENT
 * TRACESTATE" ("-" for a missing header) to that file for each request. With JOBQ_HOOKD_KEYS
 * it appends "TIME_MS start GROUP_KEY" to that file when a request arrives and "TIME_MS end
 * GROUP_KEY" when it answers, JOBQ_HOOKD_DELAY_MS later (it_keys: how many of a key run).
 * With JOBQ_HOOKD_SLOW_KEY=K and JOBQ_HOOKD_SLOW_AFTER=N, the first request of group key K is
 * answered 429 with Retry-After: N, whatever the script says.
 * Usage: jobq-hookd SCRIPT LOG; prints "port N" once it listens on 127.0.0.1. */
#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/supplemental/tls/tls.h>

#include "sha256.h"

static const char *script_path;
static FILE *log_file;
static long line_no;
static ino_t script_ino; /* a new script file (a new inode) starts from its first line */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;

static char snooze[32]; /* the Jobq-Snooze of the answer being made ("": none), under mtx */

/* next_answer: the status and Retry-After of the next request (and its snooze). */
static void
next_answer(int *status, int *retry_after)
{
    struct stat st;
    if (stat(script_path, &st) == 0 && st.st_ino != script_ino) {
        script_ino = st.st_ino;
        line_no = 0;
    }
    FILE *f = fopen(script_path, "r");
    char line[64], last[64] = "200";
    long n = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (line[0] != '\n') {
            snprintf(last, sizeof(last), "%s", line);
            if (n++ == line_no) {
                break;
            }
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    line_no++;
    *retry_after = -1;
    const char *sn = strstr(last, "snooze=");
    snooze[0] = '\0';
    if (sn != NULL) {
        snprintf(snooze, sizeof(snooze), "%.*s", (int)strcspn(sn + 7, " \n"), sn + 7);
    }
    if (sscanf(last, "%d %d", status, retry_after) < 1) {
        *status = 200;
    }
}

/* verified: whether sig ("t=SECONDS,v1=HEX") signs body under secret and is at most 300 s
 * old (or ahead). */
static bool
verified(const char *secret, const char *sig, const void *body, size_t len)
{
    long long t;
    char v1[65];
    if (sig == NULL || sscanf(sig, "t=%lld,v1=%64[0-9a-f]", &t, v1) != 2 || strlen(v1) != 64) {
        return false;
    }
    long long now = (long long)time(NULL);
    if (t < now - 300 || t > now + 300) {
        return false; /* a replay of an old delivery */
    }
    char ts[24];
    int tn = snprintf(ts, sizeof(ts), "%lld", t);
    const void *parts[] = {ts, ".", body};
    size_t lens[] = {(size_t)tn, 1, len};
    uint8_t mac[32];
    char hex[65];
    hmac_sha256(secret, strlen(secret), parts, lens, 3, mac);
    hex32(mac, hex);
    unsigned diff = 0;
    for (int i = 0; i < 64; i++) {
        diff |= (unsigned)(hex[i] ^ v1[i]);
    }
    return diff == 0;
}

/* key_line: appends "TIME_MS WHAT KEY" to $JOBQ_HOOKD_KEYS, if set. */
static void
key_line(const char *what, const char *key)
{
    const char *path = getenv("JOBQ_HOOKD_KEYS");
    if (path == NULL) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&mtx);
    FILE *f = fopen(path, "a");
    if (f != NULL) {
        fprintf(f, "%lld %s %s\n", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, what,
                key != NULL ? key : "-");
        fclose(f);
    }
    pthread_mutex_unlock(&mtx);
}

static void
handle(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    void *body;
    size_t len;
    nng_http_req_get_data(req, &body, &len);
    int status, retry_after;
    static bool slowed;
    const char *slow_key = getenv("JOBQ_HOOKD_SLOW_KEY");
    const char *group_key = nng_http_req_get_header(req, "Jobq-Group-Key");
    pthread_mutex_lock(&mtx);
    next_answer(&status, &retry_after);
    if (slow_key != NULL && group_key != NULL && strcmp(slow_key, group_key) == 0 && !slowed) {
        slowed = true;
        status = 429;
        retry_after = getenv("JOBQ_HOOKD_SLOW_AFTER") ? atoi(getenv("JOBQ_HOOKD_SLOW_AFTER")) : 1;
    }
    const char *secret = getenv("JOBQ_HOOKD_SECRET");
    if (secret != NULL &&
        !verified(secret, nng_http_req_get_header(req, "Jobq-Signature"), body, len)) {
        status = 401;
        retry_after = -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const char *id = nng_http_req_get_header(req, "Jobq-Job-Id");
    const char *attempt = nng_http_req_get_header(req, "Jobq-Attempt");
    const char *queue = nng_http_req_get_header(req, "Jobq-Queue");
    const char *ctype = nng_http_req_get_header(req, "Content-Type");
    fprintf(log_file, "%lld %s %s %s %s %d %.*s\n",
            (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, id ? id : "-",
            attempt ? attempt : "-", queue ? queue : "-", ctype ? ctype : "-", status, (int)len,
            (const char *)body);
    fflush(log_file);
    const char *traces = getenv("JOBQ_HOOKD_TRACES");
    FILE *tf = traces != NULL ? fopen(traces, "a") : NULL;
    if (tf != NULL) {
        const char *tp = nng_http_req_get_header(req, "traceparent");
        const char *tstate = nng_http_req_get_header(req, "tracestate");
        fprintf(tf, "%s %s %s\n", id ? id : "-", tp ? tp : "-", tstate ? tstate : "-");
        fclose(tf);
    }
    char snooze_v[sizeof(snooze)];
    snprintf(snooze_v, sizeof(snooze_v), "%s", snooze);
    pthread_mutex_unlock(&mtx);
    const char *gkey = nng_http_req_get_header(req, "Jobq-Group-Key");
    key_line("start", gkey);
    const char *delay = getenv("JOBQ_HOOKD_DELAY_MS");
    if (delay != NULL) {
        usleep((useconds_t)atoi(delay) * 1000);
    }
    key_line("end", gkey);
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, (uint16_t)status);
    if (retry_after >= 0) {
        char ra[32];
        snprintf(ra, sizeof(ra), "%d", retry_after);
        nng_http_res_set_header(res, "Retry-After", ra);
    }
    if (snooze_v[0] != '\0') {
        nng_http_res_set_header(res, "Jobq-Snooze", snooze_v);
    }
    char reply[64];
    snprintf(reply, sizeof(reply), "answer %d", status);
    nng_http_res_copy_data(res, reply, strlen(reply));
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: jobq-hookd SCRIPT LOG\n");
        return 2;
    }
    script_path = argv[1];
    log_file = fopen(argv[2], "a");
    nng_url *url;
    nng_http_server *srv;
    nng_http_handler *h;
    const char *pem = getenv("JOBQ_HOOKD_PEM");
    nng_tls_config *tls = NULL;
    if (pem != NULL && (nng_tls_config_alloc(&tls, NNG_TLS_MODE_SERVER) != 0 ||
                        nng_tls_config_cert_key_file(tls, pem, NULL) != 0)) {
        fprintf(stderr, "jobq-hookd: cannot load %s\n", pem);
        return 1;
    }
    if (log_file == NULL ||
        nng_url_parse(&url, tls != NULL ? "https://127.0.0.1:0" : "http://127.0.0.1:0") != 0 ||
        nng_http_server_hold(&srv, url) != 0 ||
        (tls != NULL && nng_http_server_set_tls(srv, tls) != 0) ||
        nng_http_handler_alloc(&h, "/hook", handle) != 0 ||
        nng_http_handler_set_method(h, "POST") != 0 ||
        nng_http_handler_collect_body(h, true, 1 << 20) != 0 ||
        nng_http_server_add_handler(srv, h) != 0 || nng_http_server_start(srv) != 0) {
        fprintf(stderr, "jobq-hookd: cannot start\n");
        return 1;
    }
    nng_sockaddr sa;
    nng_http_server_get_addr(srv, &sa);
    printf("port %u\n", (unsigned)ntohs(sa.s_in.sa_port));
    fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    nng_http_server_stop(srv);
    nng_http_server_release(srv);
    if (tls != NULL) {
        nng_tls_config_free(tls);
    }
    nng_url_free(url);
    fclose(log_file);
    return 0;
}
