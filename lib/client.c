/* client.c: jobq_client, the producer side of libjobq: JSON requests and replies as in
 * proto/PROTOCOL.md. For tcp:// and ipc:// a pool of plain sockets speaking SP itself (sp.c),
 * one connection per call in flight (kept for the next call); for every other URL, or with
 * JOBQ_TRANSPORT=nng, one nng REQ socket with one nng context per call in flight. */
#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "sp.h"

#define DEFAULT_URL "tcp://127.0.0.1:7450"
#define DEFAULT_TIMEOUT_MS 30000
/* The daemon holds a wait for at most 1 h; longer waits are split into pieces this long. */
#define MAX_WAIT_PIECE_MS (3600 * 1000)
/* A call that finds nobody listening dials again for this long (a daemon restarting), then
 * fails with JOBQ_EUNREACH. */
#define CALL_REDIAL_MS 1000

/* ctx_slot: an nng context and its aio, reused by call after call (opening and closing them
 * for every call costs locks and allocations on the hot path). */
typedef struct ctx_slot {
    nng_ctx ctx;
    nng_aio *aio;
    struct ctx_slot *next;
} ctx_slot;

/* conn: a native connection, on the client's idle or busy list. */
typedef struct conn {
    jobq__sp_conn sp;
    bool authed;       /* a request with the token was answered on it */
    struct conn *prev; /* busy list only */
    struct conn *next;
} conn;

struct jobq_client {
    bool native;             /* tcp:// or ipc:// spoken by sp.c; else nng */
    jobq__sp_target *target; /* native: where to dial */
    conn *pool;              /* native: idle connections kept for the next call, under lock */
    conn *busy;              /* native: connections of calls in flight, under lock */
    pthread_cond_t wake;     /* native: wakes calls pausing between dials when closing */
    nng_socket sock;         /* nng: the REQ socket */
    /* nng: read-held around each nng_ctx_* call, write-held by jobq_client_close around
     * nng_close: nng 1.5.2 panics when a context call (its reference release) overlaps the
     * close of its socket. Calls blocked in nng_aio_wait hold nothing. */
    pthread_rwlock_t nng_lk;
    bool nng_closed;            /* nng: sock is closed; under nng_lk */
    ctx_slot *spare;            /* idle contexts, under lock */
    _Atomic int64_t timeout_ms; /* per call, ms */
    pthread_mutex_t lock;       /* guards calls and closing */
    pthread_cond_t idle;        /* signalled when calls drops to 0 while closing */
    int calls;                  /* calls in flight */
    bool closing;               /* jobq_client_close has begun */
    char *token;                /* sent as "token" in every request; NULL for none */
    char url[];                 /* the URL dialled, for messages */
};

/* to_duration: ms clamped into an nng_duration (a positive int32). */
static nng_duration
to_duration(int64_t ms)
{
    if (ms < 1) {
        return 1;
    }
    return ms > INT32_MAX ? INT32_MAX : (nng_duration)ms;
}

/* dial_fail: the error and message for a failed first dial of url. */
static int
dial_fail(const char *url, int rv)
{
    switch (rv) {
    case NNG_EINVAL:
    case NNG_ENOTSUP:
        return jobq__fail(JOBQ_EINVAL,
                          "invalid URL \"%s\" (%s); expected tcp://HOST:PORT, ipc:///PATH, "
                          "tls+tcp://HOST:PORT or ws://HOST:PORT/PATH",
                          url, nng_strerror(rv));
    case NNG_ENOMEM:
        return jobq__fail(JOBQ_ENOMEM, "out of memory connecting to %s", url);
    case NNG_EPROTO:
    case NNG_ECRYPTO:
    case NNG_EPEERAUTH:
        return jobq__fail(JOBQ_EPROTO, "the peer at %s did not accept an nng REQ connection (%s)",
                          url, nng_strerror(rv));
    case NNG_ECONNREFUSED:
        return jobq__fail(JOBQ_EUNREACH,
                          "cannot reach jobqd at %s: connection refused "
                          "(nothing listens there)",
                          url);
    case NNG_EADDRINVAL:
        return jobq__fail(JOBQ_EUNREACH,
                          "cannot reach jobqd at %s: invalid address or "
                          "unknown host",
                          url);
    default:
        /* No such socket, unreachable, timed out, ...: nobody answers there. */
        return jobq__fail(JOBQ_EUNREACH, "cannot reach jobqd at %s: %s", url, nng_strerror(rv));
    }
}

/* client_free: frees a client whose socket is closed (or was never opened) and whose calls
 * have all ended. */
static void
client_free(jobq_client *c)
{
    while (c->pool != NULL) {
        conn *k = c->pool;
        c->pool = k->next;
        close(k->sp.fd);
        free(k);
    }
    jobq__sp_target_free(c->target);
    while (c->spare != NULL) {
        ctx_slot *sl = c->spare;
        c->spare = sl->next;
        nng_aio_free(sl->aio);
        nng_ctx_close(sl->ctx);
        free(sl);
    }
    free(c->token);
    pthread_rwlock_destroy(&c->nng_lk);
    pthread_cond_destroy(&c->wake);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* opt_or_env: the option value, else the environment variable name, else NULL (an empty
 * value counts as unset). */
static const char *
opt_or_env(const char *value, const char *name)
{
    if (value == NULL) {
        value = getenv(name);
    }
    return value != NULL && value[0] != '\0' ? value : NULL;
}

/* read_pem: reads a whole PEM file into a NUL-terminated malloc'd buffer. Returns a jobq_err
 * with jobq_errmsg() naming the file; what says which file it is ("client certificate"). */
static int
read_pem(const char *path, const char *what, char **textp)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return jobq__fail(JOBQ_EINVAL, "cannot open the %s file \"%s\"", what, path);
    }
    size_t len = 0;
    size_t cap = 4096;
    char *text = malloc(cap);
    while (text != NULL) {
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (len < cap - 1) {
            break;
        }
        char *bigger = cap < (16u << 20) ? realloc(text, cap * 2) : NULL;
        if (bigger == NULL) {
            free(text);
            text = NULL;
            break;
        }
        text = bigger;
        cap *= 2;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (text == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory reading the %s file \"%s\"", what, path);
    }
    if (failed) {
        free(text);
        return jobq__fail(JOBQ_EINVAL, "cannot read the %s file \"%s\"", what, path);
    }
    text[len] = '\0';
    *textp = text;
    return JOBQ_OK;
}

/* tls_setup: a client TLS configuration for url from the options (CA required, the server's
 * certificate always verified). On success *cfgp holds one reference (nng_tls_config_free). */
static int
tls_setup(const char *url, const char *ca, const char *cert, const char *key,
          const char *server_name, nng_tls_config **cfgp)
{
    if (ca == NULL) {
        return jobq__fail(JOBQ_EINVAL,
                          "%s is a TLS URL but no CA file was given: set the CA that signed "
                          "jobqd's certificate (--tls-ca FILE or $JOBQ_TLS_CA)",
                          url);
    }
    if (key != NULL && cert == NULL) {
        return jobq__fail(JOBQ_EINVAL, "a TLS key was given without its certificate "
                                       "(--tls-cert FILE or $JOBQ_TLS_CERT)");
    }
    nng_url *u = NULL;
    int rv = nng_url_parse(&u, url);
    if (rv != 0) {
        return dial_fail(url, rv);
    }
    nng_tls_config *cfg = NULL;
    int err = JOBQ_OK;
    if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0) {
        err = jobq__fail(jobq__from_nng(rv), "cannot set up TLS: %s", nng_strerror(rv));
        goto done;
    }
    if ((rv = nng_tls_config_ca_file(cfg, ca)) != 0) {
        err =
            jobq__fail(JOBQ_EINVAL, "cannot load the TLS CA file \"%s\": %s", ca, nng_strerror(rv));
        goto done;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0) {
        err = jobq__fail(jobq__from_nng(rv), "cannot set up TLS: %s", nng_strerror(rv));
        goto done;
    }
    const char *name = server_name != NULL ? server_name : u->u_hostname;
    if (name != NULL && name[0] != '\0' && (rv = nng_tls_config_server_name(cfg, name)) != 0) {
        err = jobq__fail(jobq__from_nng(rv), "cannot set the TLS server name \"%s\": %s", name,
                         nng_strerror(rv));
        goto done;
    }
    if (cert != NULL && key == NULL) {
        /* One file holding both the certificate and its key. */
        if ((rv = nng_tls_config_cert_key_file(cfg, cert, NULL)) != 0) {
            err = jobq__fail(JOBQ_EINVAL,
                             "cannot load the TLS client certificate and key from \"%s\": %s", cert,
                             nng_strerror(rv));
            goto done;
        }
    } else if (cert != NULL) {
        char *cert_pem = NULL;
        char *key_pem = NULL;
        if ((err = read_pem(cert, "TLS client certificate", &cert_pem)) == JOBQ_OK &&
            (err = read_pem(key, "TLS client key", &key_pem)) == JOBQ_OK &&
            (rv = nng_tls_config_own_cert(cfg, cert_pem, key_pem, NULL)) != 0) {
            err = jobq__fail(JOBQ_EINVAL,
                             "cannot use the TLS client certificate \"%s\" with the key \"%s\": "
                             "%s",
                             cert, key, nng_strerror(rv));
        }
        free(cert_pem);
        free(key_pem);
    }
done:
    nng_url_free(u);
    if (err != JOBQ_OK) {
        if (cfg != NULL) {
            nng_tls_config_free(cfg);
        }
        return err;
    }
    *cfgp = cfg;
    return JOBQ_OK;
}

/* dial_once: the first, blocking dial of c->url (with TLS settings for a tls+tcp:// URL), so
 * that a daemon that is not there is reported now; nng redials by itself afterwards. */
static int
dial_once(jobq_client *c, const jobq_client_opts *opts, int *nng_rv)
{
    const char *url = c->url;
    if (c->native) {
        /* One connection now, kept in the pool for the first call. */
        conn *k = calloc(1, sizeof(*k));
        if (k == NULL) {
            return jobq__fail(JOBQ_ENOMEM, "out of memory connecting to %s", url);
        }
        int rv =
            jobq__sp_dial(c->target, jobq__mono_ms() + atomic_load(&c->timeout_ms), NULL, NULL, &k->sp);
        if (rv != 0) {
            free(k);
            *nng_rv = rv;
            return dial_fail(url, rv);
        }
        k->next = c->pool;
        c->pool = k;
        return JOBQ_OK;
    }
    nng_dialer d;
    int rv = nng_dialer_create(&d, c->sock, url);
    if (rv != 0) {
        return dial_fail(url, rv);
    }
    bool tls = strncmp(url, "tls+", 4) == 0;
    if (tls) {
        nng_tls_config *cfg = NULL;
        int err = tls_setup(url, opt_or_env(opts->tls_ca, "JOBQ_TLS_CA"),
                            opt_or_env(opts->tls_cert, "JOBQ_TLS_CERT"),
                            opt_or_env(opts->tls_key, "JOBQ_TLS_KEY"), opts->server_name, &cfg);
        if (err != JOBQ_OK) {
            nng_dialer_close(d);
            return err;
        }
        rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
        nng_tls_config_free(cfg); /* the dialer holds its own reference */
        if (rv != 0) {
            nng_dialer_close(d);
            return jobq__fail(jobq__from_nng(rv), "cannot set up TLS on %s: %s", url,
                              nng_strerror(rv));
        }
    }
    rv = nng_dialer_start(d, 0);
    if (rv == 0) {
        return JOBQ_OK;
    }
    nng_dialer_close(d);
    *nng_rv = rv;
    if (tls && (rv == NNG_ECRYPTO || rv == NNG_EPEERAUTH || rv == NNG_EPROTO)) {
        return jobq__fail(JOBQ_EPROTO,
                          "TLS handshake with %s failed (%s): is its certificate signed by the "
                          "given CA and issued for that host name?",
                          url, nng_strerror(rv));
    }
    return dial_fail(url, rv);
}

/* dial: dial_once, tried again for about 300 ms when the connect is refused: a daemon
 * flooded with connects has a full listen backlog for a moment (an ipc:// connect then fails
 * at once instead of waiting). */
static int
dial(jobq_client *c, const jobq_client_opts *opts)
{
    int rv = 0;
    int err = dial_once(c, opts, &rv);
    for (int ms = 10; err != JOBQ_OK && (rv == NNG_EAGAIN || rv == NNG_ECONNREFUSED) && ms <= 160;
         ms *= 2) {
        nng_msleep((nng_duration)ms);
        rv = 0;
        err = dial_once(c, opts, &rv);
    }
    return err;
}

JOBQ_API int
jobq_client_open(jobq_client **clientp, const char *url)
{
    return jobq_client_open_opts(clientp, url, NULL);
}

JOBQ_API int
jobq_client_open_opts(jobq_client **clientp, const char *url, const jobq_client_opts *opts)
{
    static const jobq_client_opts no_opts;
    if (clientp == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobq_client_open: clientp is NULL");
    }
    if (opts == NULL) {
        opts = &no_opts;
    }
    if (url == NULL) {
        url = getenv("JOBQ_URL");
    }
    if (url == NULL || url[0] == '\0') {
        url = DEFAULT_URL;
    }
    size_t len = strlen(url);
    jobq_client *c = calloc(1, sizeof(*c) + len + 1);
    if (c == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory opening a client");
    }
    memcpy(c->url, url, len + 1);
    atomic_init(&c->timeout_ms, DEFAULT_TIMEOUT_MS);
    const char *token = opt_or_env(opts->token, "JOBQ_TOKEN");
    if (token != NULL && (c->token = strdup(token)) == NULL) {
        free(c);
        return jobq__fail(JOBQ_ENOMEM, "out of memory opening a client");
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->token);
        free(c);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a mutex for the client");
    }
    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    if (!ca_ok || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->wake, &ca) != 0) {
        if (ca_ok) {
            pthread_condattr_destroy(&ca);
        }
        pthread_mutex_destroy(&c->lock);
        free(c->token);
        free(c);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a condition variable for the client");
    }
    pthread_condattr_destroy(&ca);
    if (pthread_cond_init(&c->idle, NULL) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c->token);
        free(c);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a condition variable for the client");
    }
    if (pthread_rwlock_init(&c->nng_lk, NULL) != 0) {
        pthread_cond_destroy(&c->idle);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c->token);
        free(c);
        return jobq__fail(JOBQ_ENOMEM, "cannot create a lock for the client");
    }

    const char *transport = getenv("JOBQ_TRANSPORT");
    if (transport != NULL && transport[0] != '\0' && strcmp(transport, "nng") != 0 &&
        strcmp(transport, "native") != 0) {
        client_free(c);
        return jobq__fail(JOBQ_EINVAL,
                          "JOBQ_TRANSPORT is \"%s\"; expected nng (nng's REQ socket for every "
                          "URL) or native (the default: tcp:// and ipc:// spoken by libjobq)",
                          transport);
    }
    c->native = jobq__sp_native_url(url) && (transport == NULL || strcmp(transport, "nng") != 0);
    if (c->native) {
        int rv = jobq__sp_target_parse(url, &c->target);
        if (rv != 0) {
            client_free(c);
            return dial_fail(url, rv);
        }
        int err = dial(c, opts);
        if (err != JOBQ_OK) {
            client_free(c);
            return err;
        }
        *clientp = c;
        return JOBQ_OK;
    }

    int rv = nng_req0_open(&c->sock);
    if (rv != 0) {
        int err = jobq__from_nng(rv);
        client_free(c);
        return jobq__fail(err, "cannot open an nng REQ socket: %s", nng_strerror(rv));
    }
    /* A wait may be held by the daemon for long: the REQ must never resend it. Replies
     * (a list page, a wait on many jobs) may exceed nng's default 1 MiB receive limit. */
    if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0 ||
        (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 0)) != 0) {
        int err = jobq__from_nng(rv);
        nng_close(c->sock);
        client_free(c);
        return jobq__fail(err, "cannot set up the nng REQ socket: %s", nng_strerror(rv));
    }
    int err = dial(c, opts);
    if (err != JOBQ_OK) {
        nng_close(c->sock);
        client_free(c);
        return err;
    }
    *clientp = c;
    return JOBQ_OK;
}

JOBQ_API void
jobq_client_close(jobq_client *client)
{
    if (client == NULL) {
        return;
    }
    pthread_mutex_lock(&client->lock);
    client->closing = true;
    /* Every native call in flight sees its connection end; one pausing between dials is
     * woken. Each call closes its own socket. */
    for (conn *k = client->busy; k != NULL; k = k->next) {
        if (k->sp.fd >= 0) {
            shutdown(k->sp.fd, SHUT_RDWR);
        }
    }
    pthread_cond_broadcast(&client->wake);
    pthread_mutex_unlock(&client->lock);
    if (!client->native) {
        pthread_rwlock_wrlock(&client->nng_lk);
        client->nng_closed = true;
        nng_close(client->sock); /* ends every call in flight */
        pthread_rwlock_unlock(&client->nng_lk);
    }
    pthread_mutex_lock(&client->lock);
    while (client->calls > 0) {
        pthread_cond_wait(&client->idle, &client->lock);
    }
    pthread_mutex_unlock(&client->lock);
    client_free(client);
}

/* call_begin: counts a call in flight; false once the client is closing. */
static bool
call_begin(jobq_client *c)
{
    pthread_mutex_lock(&c->lock);
    bool ok = !c->closing;
    if (ok) {
        c->calls++;
    }
    pthread_mutex_unlock(&c->lock);
    return ok;
}

/* call_end: ends a call counted by call_begin; returns whether the client is closing (then
 * the call's failure is reported as JOBQ_ECLOSED). */
static bool
call_end(jobq_client *c)
{
    pthread_mutex_lock(&c->lock);
    bool closing = c->closing;
    if (--c->calls == 0 && closing) {
        pthread_cond_signal(&c->idle);
    }
    pthread_mutex_unlock(&c->lock);
    return closing;
}

JOBQ_API int
jobq_client_set_timeout(jobq_client *client, int64_t timeout_ms)
{
    if (client == NULL || timeout_ms <= 0) {
        return jobq__fail(JOBQ_EINVAL, "the timeout must be a positive number of ms, not %lld",
                          (long long)timeout_ms);
    }
    /* nng durations are int32 ms (about 24 days); clamping also keeps timeout + wait time
     * far from overflow. */
    atomic_store(&client->timeout_ms, timeout_ms < INT32_MAX ? timeout_ms : INT32_MAX);
    return JOBQ_OK;
}

/* transport_fail: the error and message for an nng failure of a call. */
static int
transport_fail(int rv, int64_t timeout_ms)
{
    int err = jobq__from_nng(rv);
    switch (err) {
    case JOBQ_ETIMEDOUT:
        return jobq__fail(err,
                          "no reply from jobqd within %lld ms (is the daemon running and "
                          "reachable?)",
                          (long long)timeout_ms);
    case JOBQ_ECLOSED:
        return jobq__fail(err, "the client was closed");
    case JOBQ_EUNREACH:
        if (rv == NNG_ECONNRESET || rv == NNG_ECONNSHUT || rv == NNG_ECONNABORTED) {
            return jobq__fail(err, "the connection to jobqd was lost before the reply came (the "
                                   "daemon stopped or restarted); the request may or may not have "
                                   "been carried out");
        }
        return jobq__fail(err, "nng: %s", nng_strerror(rv));
    case JOBQ_ETOOBIG:
        return jobq__fail(err, "the message is too large for nng (%s)", nng_strerror(rv));
    default:
        return jobq__fail(err, "nng: %s", nng_strerror(rv));
    }
}

/* add_token: sets req.token to the client's token unless there is none or req already
 * carries one. Returns false on out of memory. */
static bool
add_token(const jobq_client *c, json_t *req)
{
    if (c->token == NULL || json_object_get(req, "token") != NULL) {
        return true;
    }
    return json_object_set_new(req, "token", json_string(c->token)) == 0;
}

/* raw_reply: a reply's bytes, from either transport; reply_free releases it. */
typedef struct raw_reply {
    char *data; /* len bytes; native: malloc'd with a NUL after them */
    size_t len;
    nng_msg *msg; /* nng: the message holding data; NULL for native */
} raw_reply;

static void
reply_free(raw_reply *r)
{
    if (r->msg != NULL) {
        nng_msg_free(r->msg);
    } else {
        free(r->data);
    }
}

/* nng_begin: read-locks nng_lk for nng_ctx_* calls on c->sock; false (nothing locked) once
 * jobq_client_close has closed the socket. nng_end unlocks. */
static bool
nng_begin(jobq_client *c)
{
    pthread_rwlock_rdlock(&c->nng_lk);
    if (c->nng_closed) {
        pthread_rwlock_unlock(&c->nng_lk);
        return false;
    }
    return true;
}

static void
nng_end(jobq_client *c)
{
    pthread_rwlock_unlock(&c->nng_lk);
}

/* nng_roundtrip: sends req (len bytes) on a fresh context of c and waits for the reply, all
 * within timeout_ms. On success *replyp owns the reply message (nng_msg_free). Returns a
 * jobq_err with jobq_errmsg() set; JOBQ_ECLOSED when jobq_client_close cut it off (close
 * waits for every roundtrip to leave before freeing c). */
static int
nng_roundtrip(jobq_client *c, const char *req, size_t len, int64_t timeout_ms, nng_msg **replyp)
{
    if (!call_begin(c)) {
        return jobq__fail(JOBQ_ECLOSED, "the client was closed");
    }
    int64_t deadline = jobq__mono_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    ctx_slot *sl = c->spare;
    if (sl != NULL) {
        c->spare = sl->next;
    }
    pthread_mutex_unlock(&c->lock);
    nng_msg *msg = NULL;
    int rv = 0;
    if (sl == NULL) {
        if ((sl = calloc(1, sizeof(*sl))) == NULL) {
            rv = call_end(c) ? NNG_ECLOSED : NNG_ENOMEM;
            return transport_fail(rv, timeout_ms);
        }
        if (!nng_begin(c)) {
            rv = NNG_ECLOSED;
        } else {
            rv = nng_ctx_open(&sl->ctx, c->sock);
            nng_end(c);
        }
        if (rv != 0) {
            free(sl);
            rv = call_end(c) ? NNG_ECLOSED : rv;
            return transport_fail(rv, timeout_ms);
        }
        if ((rv = nng_aio_alloc(&sl->aio, NULL, NULL)) != 0) {
            goto done;
        }
    }
    nng_ctx ctx = sl->ctx;
    nng_aio *aio = sl->aio;
    if ((rv = nng_msg_alloc(&msg, 0)) != 0 || (rv = nng_msg_append(msg, req, len)) != 0) {
        goto done;
    }
    /* The aio's timeout is what bounds nng_ctx_send/recv (nng 1.5 has no synchronous
     * context calls); the context's own timeouts are set as well for nng versions whose
     * context operations read them. */
    if (!nng_begin(c)) {
        rv = NNG_ECLOSED;
        goto done;
    }
    nng_ctx_set_ms(ctx, NNG_OPT_SENDTIMEO, to_duration(timeout_ms));
    nng_ctx_set_ms(ctx, NNG_OPT_RECVTIMEO, to_duration(timeout_ms));
    nng_aio_set_timeout(aio, to_duration(timeout_ms));
    nng_aio_set_msg(aio, msg);
    nng_ctx_send(ctx, aio);
    nng_end(c);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) != 0) {
        goto done; /* a failed send leaves the message with us */
    }
    msg = NULL; /* a successful send took it */
    nng_aio_set_timeout(aio, to_duration(deadline - jobq__mono_ms()));
    if (!nng_begin(c)) {
        rv = NNG_ECLOSED;
        goto done;
    }
    nng_ctx_recv(ctx, aio);
    nng_end(c);
    nng_aio_wait(aio);
    if ((rv = nng_aio_result(aio)) == 0) {
        *replyp = nng_aio_get_msg(aio);
        nng_aio_set_msg(aio, NULL);
    }
done:
    if (msg != NULL) {
        nng_msg_free(msg);
    }
    if (rv == 0) {
        /* Only a context whose request got its reply is known idle and reusable. */
        pthread_mutex_lock(&c->lock);
        sl->next = c->spare;
        c->spare = sl;
        pthread_mutex_unlock(&c->lock);
    } else {
        if (sl->aio != NULL) {
            nng_aio_free(sl->aio);
        }
        if (nng_begin(c)) { /* else nng_close has closed every context */
            nng_ctx_close(sl->ctx);
            nng_end(c);
        }
        free(sl);
    }
    if (call_end(c) && rv != 0) {
        rv = NNG_ECLOSED;
    }
    return rv == 0 ? JOBQ_OK : transport_fail(rv, timeout_ms);
}

/* busy_remove_locked: takes k off the busy list. */
static void
busy_remove_locked(jobq_client *c, conn *k)
{
    if (k->prev != NULL) {
        k->prev->next = k->next;
    } else {
        c->busy = k->next;
    }
    if (k->next != NULL) {
        k->next->prev = k->prev;
    }
    k->prev = k->next = NULL;
}

/* busy_add_locked: puts k on the busy list, where jobq_client_close finds it. */
static void
busy_add_locked(jobq_client *c, conn *k)
{
    k->prev = NULL;
    k->next = c->busy;
    if (c->busy != NULL) {
        c->busy->prev = k;
    }
    c->busy = k;
}

/* pool_take_locked: an idle connection moved to the busy list, or NULL (none, or the client
 * is closing: its idle connections were not shut down, a call must not block on one). */
static conn *
pool_take_locked(jobq_client *c)
{
    if (c->closing) {
        return NULL;
    }
    conn *k = c->pool;
    if (k != NULL) {
        c->pool = k->next;
        busy_add_locked(c, k);
    }
    return k;
}

/* discard: closes a busy connection of a call and frees it. */
static void
discard(jobq_client *c, conn *k)
{
    pthread_mutex_lock(&c->lock);
    busy_remove_locked(c, k);
    pthread_mutex_unlock(&c->lock);
    if (k->sp.fd >= 0) {
        close(k->sp.fd);
    }
    free(k);
}

/* track_arg, track_cb: record each socket a dial creates as its connection's fd, under the
 * lock, so that jobq_client_close can shut it down; refused once the client is closing. */
typedef struct track_arg {
    jobq_client *c;
    conn *k;
} track_arg;

static int
track_cb(void *arg, int fd)
{
    track_arg *ta = arg;
    pthread_mutex_lock(&ta->c->lock);
    bool closing = ta->c->closing;
    if (fd < 0 || !closing) {
        ta->k->sp.fd = fd;
    }
    pthread_mutex_unlock(&ta->c->lock);
    return fd >= 0 && closing ? NNG_ECLOSED : 0;
}

/* pause_locked: waits ms (at most until deadline_ms) unless the client is closing. Returns
 * false once it is closing. */
static bool
pause_locked(jobq_client *c, int64_t ms, int64_t deadline_ms)
{
    int64_t until = jobq__mono_ms() + ms;
    if (until > deadline_ms) {
        until = deadline_ms;
    }
    struct timespec ts = {.tv_sec = (time_t)(until / 1000),
                          .tv_nsec = (long)(until % 1000) * 1000000};
    while (!c->closing && jobq__mono_ms() < until) {
        if (pthread_cond_timedwait(&c->wake, &c->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    return !c->closing;
}

/* dial_call: a new busy connection for a call, dialled again every 10..100 ms while nobody
 * accepts it, for at most CALL_REDIAL_MS (a daemon restarting) and never past deadline_ms.
 * Returns 0 with *kp set, or an nng error code: NNG_ETIMEDOUT, NNG_ECLOSED, NNG_EPROTO (not
 * a REP peer), NNG_ENOMEM, or the last connect's error (NNG_ECONNREFUSED: jobqd is down). */
static int
dial_call(jobq_client *c, int64_t deadline_ms, conn **kp)
{
    conn *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return NNG_ENOMEM;
    }
    k->sp.fd = -1;
    pthread_mutex_lock(&c->lock);
    if (c->closing) {
        pthread_mutex_unlock(&c->lock);
        free(k);
        return NNG_ECLOSED;
    }
    busy_add_locked(c, k);
    pthread_mutex_unlock(&c->lock);
    track_arg ta = {.c = c, .k = k};
    int rv;
    int64_t give_up = jobq__mono_ms() + CALL_REDIAL_MS;
    for (int64_t ms = 10;; ms = ms < 50 ? ms * 2 : 100) {
        rv = jobq__sp_dial(c->target, deadline_ms, track_cb, &ta, &k->sp);
        if (rv == 0 || rv == NNG_ECLOSED || rv == NNG_EPROTO || rv == NNG_ENOMEM ||
            rv == NNG_ETIMEDOUT) {
            break;
        }
        int64_t now = jobq__mono_ms();
        if (now >= deadline_ms) {
            rv = NNG_ETIMEDOUT;
            break;
        }
        if (now >= give_up) {
            break; /* nobody listens: say so rather than wait out the call's timeout */
        }
        pthread_mutex_lock(&c->lock);
        bool open = pause_locked(c, ms, deadline_ms);
        pthread_mutex_unlock(&c->lock);
        if (!open) {
            rv = NNG_ECLOSED;
            break;
        }
    }
    if (rv != 0) {
        discard(c, k);
        return rv;
    }
    *kp = k;
    return 0;
}

/* native_fail: the error and message for a failed native call (rv an nng error code). */
static int
native_fail(const jobq_client *c, int rv, int64_t timeout_ms)
{
    switch (rv) {
    case NNG_EPROTO:
        return jobq__fail(JOBQ_EPROTO,
                          "jobqd at %s sent a malformed SP frame; the connection was closed",
                          c->url);
    case NNG_EMSGSIZE:
        return jobq__fail(JOBQ_EPROTO,
                          "jobqd at %s announced a reply over %llu bytes; the connection was "
                          "closed",
                          c->url, (unsigned long long)JOBQ__SP_MAX_REPLY);
    case NNG_ECONNSHUT:
    case NNG_ECONNRESET:
    case NNG_ECONNABORTED:
    case NNG_ETIMEDOUT:
    case NNG_ECLOSED:
    case NNG_ENOMEM:
        return transport_fail(rv, timeout_ms);
    case NNG_ECONNREFUSED:
    case NNG_ENOENT:
        return dial_fail(c->url, rv);
    default:
        return jobq__fail(jobq__from_nng(rv), "the connection to jobqd at %s failed: %s", c->url,
                          nng_strerror(rv));
    }
}

/* Requests up to this size pass on a connection that has not authenticated yet (jobqd's
 * smallest max_unauthenticated_message is 1 KiB). */
#define UNAUTH_SMALL 960

/* authenticate: a ping with the token on connection k (none of its requests was answered yet), so that jobqd lifts its limit
 * on messages before authentication (max_unauthenticated_message) for the larger request that
 * follows. Returns 0 (whatever the reply says: a wrong token fails the request itself), or the
 * connection's nng error. */
static int
authenticate(jobq_client *c, conn *k, int64_t deadline)
{
    json_t *ping = json_pack("{s:s, s:s}", "op", "ping", "token", c->token);
    char *text = ping != NULL ? json_dumps(ping, JSON_COMPACT) : NULL;
    json_decref(ping);
    if (text == NULL) {
        return NNG_ENOMEM;
    }
    bool sent = false;
    char *data = NULL;
    size_t dlen = 0;
    int rv = jobq__sp_call(&k->sp, text, strlen(text), deadline, &sent, &data, &dlen);
    free(text);
    free(data);
    return rv;
}

/* native_roundtrip: one call on a connection of its own (an idle one, else a new one): send
 * req (len bytes), then wait for the reply, all within timeout_ms. A connection is put back
 * only after a complete reply; any failure closes it (a late reply would confuse the next
 * call). Returns a jobq_err with jobq_errmsg() set; on success *out owns the reply. */
static int
native_roundtrip(jobq_client *c, const char *req, size_t len, int64_t timeout_ms, raw_reply *out)
{
    int64_t deadline = jobq__mono_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    if (c->closing) {
        pthread_mutex_unlock(&c->lock);
        return jobq__fail(JOBQ_ECLOSED, "the client was closed");
    }
    c->calls++;
    conn *k = pool_take_locked(c);
    pthread_mutex_unlock(&c->lock);
    int rv = 0;
    bool sent = false;
    char *data = NULL;
    size_t dlen = 0;
    for (;;) {
        /* An idle connection the daemon closed meanwhile (a restart) is dropped before
         * anything is sent on it. */
        while (k != NULL && !jobq__sp_alive(&k->sp)) {
            discard(c, k);
            pthread_mutex_lock(&c->lock);
            k = pool_take_locked(c);
            pthread_mutex_unlock(&c->lock);
        }
        bool reused = k != NULL;
        if (k == NULL && (rv = dial_call(c, deadline, &k)) != 0) {
            break;
        }
        if (!k->authed && c->token != NULL && len > UNAUTH_SMALL &&
            (rv = authenticate(c, k, deadline)) != 0) {
            break;
        }
        rv = jobq__sp_call(&k->sp, req, len, deadline, &sent, &data, &dlen);
        k->authed = k->authed || (rv == 0 && c->token != NULL);
        if (rv != 0 && reused && !sent && rv == NNG_ECONNSHUT) {
            /* Closed by the peer before a byte of the request left: try another one. */
            discard(c, k);
            pthread_mutex_lock(&c->lock);
            k = pool_take_locked(c);
            bool closing = c->closing;
            pthread_mutex_unlock(&c->lock);
            if (closing) {
                rv = NNG_ECLOSED;
                break;
            }
            continue;
        }
        break;
    }
    pthread_mutex_lock(&c->lock);
    bool closing = c->closing;
    if (k != NULL) {
        busy_remove_locked(c, k);
        if (rv == 0 && !closing) {
            k->next = c->pool;
            c->pool = k;
            k = NULL;
        }
    }
    if (--c->calls == 0 && closing) {
        pthread_cond_signal(&c->idle);
    }
    pthread_mutex_unlock(&c->lock);
    if (k != NULL) {
        close(k->sp.fd);
        free(k);
    }
    if (rv == 0) {
        *out = (raw_reply){.data = data, .len = dlen};
        return JOBQ_OK;
    }
    return native_fail(c, closing ? NNG_ECLOSED : rv, timeout_ms);
}

/* roundtrip: one request/reply of len bytes within timeout_ms on either transport. On
 * success *out owns the reply (reply_free). Returns a jobq_err with jobq_errmsg() set. */
static int
roundtrip(jobq_client *c, const char *req, size_t len, int64_t timeout_ms, raw_reply *out)
{
    if (c->native) {
        return native_roundtrip(c, req, len, timeout_ms, out);
    }
    nng_msg *msg = NULL;
    int err = nng_roundtrip(c, req, len, timeout_ms, &msg);
    if (err == JOBQ_OK) {
        *out = (raw_reply){.data = nng_msg_body(msg), .len = nng_msg_len(msg), .msg = msg};
    }
    return err;
}

static int call_text(jobq_client *c, const char *op, const char *text, size_t len,
                     int64_t extra_ms, json_t **replyp);

/* jobq__call_json (internal.h): sends req (a JSON object; the client's token is added to
 * it) and parses the reply. extra_ms is added to the
 * client's call timeout (a wait's own duration). On an {"ok": true} reply *replyp owns it;
 * an {"ok": false} reply returns its error code's jobq_err with the daemon's message as
 * jobq_errmsg(). */
int
jobq__call_json(jobq_client *c, const char *op, json_t *req, int64_t extra_ms, json_t **replyp)
{
    if (c == NULL) {
        return jobq__fail(JOBQ_EINVAL, "the client is NULL");
    }
    if (req == NULL || !add_token(c, req)) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory building the %s request", op);
    }
    char *text = json_dumps(req, JSON_COMPACT);
    if (text == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory building the %s request", op);
    }
    int err = call_text(c, op, text, strlen(text), extra_ms, replyp);
    free(text);
    return err;
}

int
jobq__call_text(jobq_client *c, const char *op, jobq__jtext *req, int64_t extra_ms,
                json_t **replyp)
{
    if (c == NULL) {
        return jobq__fail(JOBQ_EINVAL, "the client is NULL");
    }
    if (c->token != NULL) {
        jobq__jt_key(req, "token", false);
        jobq__jt_str(req, c->token);
    }
    jobq__jt_lit(req, "}");
    if (req->failed) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory building the %s request", op);
    }
    return call_text(c, op, req->p, req->len, extra_ms, replyp);
}

/* call_text: the round trip of jobq__call_json with the request's text (len bytes), and
 * the reading of its reply. */
static int
call_text(jobq_client *c, const char *op, const char *text, size_t len, int64_t extra_ms,
          json_t **replyp)
{
    raw_reply r;
    int err = roundtrip(c, text, len, atomic_load(&c->timeout_ms) + extra_ms, &r);
    if (err != JOBQ_OK) {
        return err;
    }
    json_error_t jerr;
    json_t *reply = json_loadb(r.data, r.len, 0, &jerr);
    reply_free(&r);
    if (reply == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            return jobq__fail(JOBQ_ENOMEM, "out of memory reading the reply");
        }
        return jobq__fail(JOBQ_EPROTO, "the reply is not valid JSON: %s", jerr.text);
    }
    json_t *ok = json_object_get(reply, "ok");
    if (json_is_true(ok)) {
        *replyp = reply;
        return JOBQ_OK;
    }
    if (!json_is_false(ok)) {
        json_decref(reply);
        return jobq__fail(JOBQ_EPROTO, "the reply is not a jobq reply (no \"ok\" field)");
    }
    json_t *error = json_object_get(reply, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *message = json_string_value(json_object_get(error, "message"));
    err = jobq__err_from_code(code);
    if (message != NULL && message[0] != '\0') {
        jobq__fail(err, "%s", message);
    } else {
        jobq__fail(err, "%s failed: %s", op, code != NULL ? code : "no error code");
    }
    json_decref(reply);
    return err;
}

/* load_payload: parses a payload JSON text (NULL means null). Returns NULL on invalid JSON
 * or out of memory, with *errp set and jobq_errmsg() naming the problem; what names the
 * payload in the message. */
static json_t *
load_payload(const char *payload, const char *what, int *errp)
{
    if (payload == NULL) {
        json_t *v = json_null();
        *errp = v != NULL ? JOBQ_OK : JOBQ_ENOMEM;
        return v;
    }
    json_error_t jerr;
    json_t *v = json_loads(payload, JSON_DECODE_ANY, &jerr);
    if (v == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            *errp = jobq__fail(JOBQ_ENOMEM, "out of memory parsing %s", what);
        } else {
            *errp = jobq__fail(JOBQ_EINVAL,
                               "%s is not valid JSON: %s (line %d, column %d); a string "
                               "must be quoted, e.g. \"text\"",
                               what, jerr.text, jerr.line, jerr.column);
        }
    }
    return v;
}

/* check_opts: validates the fields of opts that the library can check by itself. */
static int
check_opts(const jobq_submit_opts *opts)
{
    if (opts == NULL) {
        return JOBQ_OK;
    }
    if (opts->delay_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "delay_ms must be >= 0, not %lld",
                          (long long)opts->delay_ms);
    }
    if (opts->run_at_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "run_at_ms must be >= 0, not %lld",
                          (long long)opts->run_at_ms);
    }
    if (opts->dedupe < JOBQ_DEDUPE_TTL || opts->dedupe > JOBQ_DEDUPE_DEBOUNCE) {
        return jobq__fail(JOBQ_EINVAL, "dedupe must be a jobq_dedupe, not %d", opts->dedupe);
    }
    if (opts->debounce_max_ms < 0 || opts->expires_at_ms < 0 || opts->expires_in_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "debounce_max_ms, expires_at_ms and expires_in_ms must "
                                       "be >= 0");
    }
    if (opts->max_attempts < 0) {
        return jobq__fail(JOBQ_EINVAL, "max_attempts must be >= 1, not %d",
                          (int)opts->max_attempts);
    }
    if (opts->timeout_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "timeout_ms must be > 0, not %lld",
                          (long long)opts->timeout_ms);
    }
    if (opts->nafter > 0 && opts->after == NULL) {
        return jobq__fail(JOBQ_EINVAL, "nafter is %zu but after is NULL", opts->nafter);
    }
    return JOBQ_OK;
}

/* set_opts: adds the non-zero fields of opts (may be NULL) to a submit object. Returns
 * false on out of memory. */
static bool
set_opts(json_t *obj, const jobq_submit_opts *opts)
{
    if (opts == NULL) {
        return true;
    }
    int rv = 0;
    if (opts->priority != 0) {
        rv |= json_object_set_new(obj, "priority", json_integer(opts->priority));
    }
    if (opts->run_at_ms != 0) {
        rv |= json_object_set_new(obj, "run_at", json_integer(opts->run_at_ms));
    } else if (opts->delay_ms != 0) {
        rv |= json_object_set_new(obj, "delay", json_integer(opts->delay_ms));
    }
    if (opts->max_attempts != 0) {
        rv |= json_object_set_new(obj, "max_attempts", json_integer(opts->max_attempts));
    }
    if (opts->timeout_ms != 0) {
        rv |= json_object_set_new(obj, "timeout", json_integer(opts->timeout_ms));
    }
    if (opts->key != NULL) {
        rv |= json_object_set_new(obj, "key", json_string(opts->key));
    }
    if (opts->nafter > 0) {
        json_t *after = json_array();
        for (size_t i = 0; i < opts->nafter; i++) {
            rv |= json_array_append_new(after, json_integer(opts->after[i]));
        }
        rv |= json_object_set_new(obj, "after", after);
        if (opts->after_always) {
            rv |= json_object_set_new(obj, "after_policy", json_string("always"));
        }
    }
    if (opts->traceparent != NULL) {
        rv |= json_object_set_new(obj, "traceparent", json_string(opts->traceparent));
        if (opts->tracestate != NULL) {
            rv |= json_object_set_new(obj, "tracestate", json_string(opts->tracestate));
        }
    }
    if (opts->group_key != NULL) {
        rv |= json_object_set_new(obj, "group_key", json_string(opts->group_key));
    }
    static const char *const modes[] = {"ttl", "until_done", "replace", "debounce"};
    if (opts->dedupe > JOBQ_DEDUPE_TTL && opts->dedupe <= JOBQ_DEDUPE_DEBOUNCE) {
        rv |= json_object_set_new(obj, "dedupe", json_string(modes[opts->dedupe]));
    }
    if (opts->debounce_max_ms != 0) {
        rv |= json_object_set_new(obj, "debounce_max", json_integer(opts->debounce_max_ms));
    }
    if (opts->expires_in_ms != 0) {
        rv |= json_object_set_new(obj, "expires_in", json_integer(opts->expires_in_ms));
    } else if (opts->expires_at_ms != 0) {
        rv |= json_object_set_new(obj, "expires_at", json_integer(opts->expires_at_ms));
    }
    return rv == 0;
}

/* reply_id: reads an id (a positive integer) from v. */
static bool
reply_id(const json_t *v, int64_t *idp)
{
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        return false;
    }
    *idp = (int64_t)json_integer_value(v);
    return true;
}

JOBQ_API int
jobq_ping(jobq_client *client)
{
    json_t *reply;
    json_t *req = json_pack("{s:s}", "op", "ping");
    int err = jobq__call_json(client, "ping", req, 0, &reply);
    json_decref(req);
    if (err == JOBQ_OK) {
        json_decref(reply);
    }
    return err;
}

JOBQ_API int
jobq_submit(jobq_client *client, const char *queue, const char *payload,
            const jobq_submit_opts *opts, int64_t *idp, bool *duplicatep)
{
    jobq_submitted out;
    int err = jobq_submit_ex(client, queue, payload, opts, idp, &out);
    if (err == JOBQ_OK && duplicatep != NULL) {
        *duplicatep = out.duplicate;
    }
    return err;
}

JOBQ_API int
jobq_submit_ex(jobq_client *client, const char *queue, const char *payload,
               const jobq_submit_opts *opts, int64_t *idp, jobq_submitted *outp)
{
    if (queue == NULL || queue[0] == '\0') {
        return jobq__fail(JOBQ_EINVAL, "the queue name is empty");
    }
    if (idp == NULL) {
        return jobq__fail(JOBQ_EINVAL, "idp is NULL");
    }
    int err = check_opts(opts);
    if (err != JOBQ_OK) {
        return err;
    }
    json_t *pv = load_payload(payload, "the payload", &err);
    if (pv == NULL) {
        return err;
    }
    json_t *req = json_pack("{s:s, s:s, s:o}", "op", "submit", "queue", queue, "payload", pv);
    if (req != NULL && !set_opts(req, opts)) {
        json_decref(req);
        req = NULL;
    }
    json_t *reply;
    err = jobq__call_json(client, "submit", req, 0, &reply);
    json_decref(req);
    if (err != JOBQ_OK) {
        return err;
    }
    int64_t id;
    if (!reply_id(json_object_get(reply, "id"), &id)) {
        json_decref(reply);
        return jobq__fail(JOBQ_EPROTO, "the reply has no valid \"id\"");
    }
    *idp = id;
    if (outp != NULL) {
        outp->duplicate = json_is_true(json_object_get(reply, "duplicate"));
        outp->replaced = json_is_true(json_object_get(reply, "replaced"));
        const char *st = json_string_value(json_object_get(reply, "state"));
        outp->state = st != NULL ? jobq__state_parse(st) : -1;
    }
    json_decref(reply);
    return JOBQ_OK;
}

static int submit_many(jobq_client *client, const char *queue, const char *const *payloads,
                       size_t n, const jobq_submit_opts *opts, bool group, const char *oc_queue,
                       const char *oc_payload, int64_t *ids, int64_t *groupp);

JOBQ_API int
jobq_submit_batch(jobq_client *client, const char *queue, const char *const *payloads, size_t n,
                  const jobq_submit_opts *opts, int64_t *ids)
{
    return submit_many(client, queue, payloads, n, opts, false, NULL, NULL, ids, NULL);
}

JOBQ_API int
jobq_submit_group(jobq_client *client, const char *queue, const char *const *payloads, size_t n,
                  const jobq_submit_opts *opts, const char *on_complete_queue,
                  const char *on_complete_payload, int64_t *ids, int64_t *groupp)
{
    if (groupp == NULL) {
        return jobq__fail(JOBQ_EINVAL, "groupp is NULL");
    }
    return submit_many(client, queue, payloads, n, opts, true, on_complete_queue,
                       on_complete_payload, ids, groupp);
}

static int
submit_many(jobq_client *client, const char *queue, const char *const *payloads, size_t n,
            const jobq_submit_opts *opts, bool group, const char *oc_queue, const char *oc_payload,
            int64_t *ids, int64_t *groupp)
{
    if (queue == NULL || queue[0] == '\0') {
        return jobq__fail(JOBQ_EINVAL, "the queue name is empty");
    }
    if (n == 0 || payloads == NULL || ids == NULL) {
        return jobq__fail(JOBQ_EINVAL, "a batch needs n >= 1 and non-NULL payloads and ids");
    }
    if (opts != NULL && opts->key != NULL) {
        return jobq__fail(JOBQ_EINVAL, "opts->key must be NULL (a key is unique per job)");
    }
    int err = check_opts(opts);
    if (err != JOBQ_OK) {
        return err;
    }
    json_t *jobs = json_array();
    json_t *req = json_pack("{s:s, s:s, s:o}", "op", "submit_batch", "queue", queue, "jobs", jobs);
    if (req == NULL) {
        return jobq__fail(JOBQ_ENOMEM, "out of memory building the request");
    }
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof(what), "payload %zu", i);
        json_t *pv = load_payload(payloads[i], what, &err);
        if (pv == NULL) {
            json_decref(req);
            return err;
        }
        json_t *job = json_pack("{s:o}", "payload", pv);
        if (job == NULL || !set_opts(job, opts) || json_array_append_new(jobs, job) != 0) {
            json_decref(req);
            return jobq__fail(JOBQ_ENOMEM, "out of memory building the request");
        }
    }
    if (group) {
        json_t *oc = NULL;
        if (oc_queue != NULL) {
            json_t *pv = load_payload(oc_payload, "the on_complete payload", &err);
            if (pv == NULL) {
                json_decref(req);
                return err;
            }
            oc = json_pack("{s:s, s:o}", "queue", oc_queue, "payload", pv);
        }
        if (json_object_set_new(req, "group", json_true()) != 0 ||
            (oc != NULL && json_object_set_new(req, "on_complete", oc) != 0)) {
            json_decref(req);
            return jobq__fail(JOBQ_ENOMEM, "out of memory building the request");
        }
    }
    json_t *reply;
    err = jobq__call_json(client, "submit_batch", req, 0, &reply);
    json_decref(req);
    if (err != JOBQ_OK) {
        return err;
    }
    if (group && !reply_id(json_object_get(reply, "group"), groupp)) {
        json_decref(reply);
        return jobq__fail(JOBQ_EPROTO, "the reply has no valid \"group\"");
    }
    json_t *rids = json_object_get(reply, "ids");
    if (!json_is_array(rids) || json_array_size(rids) != n) {
        json_decref(reply);
        return jobq__fail(JOBQ_EPROTO, "the reply has no \"ids\" array of %zu ids", n);
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if (!reply_id(json_array_get(rids, i), &id)) {
            json_decref(reply);
            return jobq__fail(JOBQ_EPROTO, "ids[%zu] of the reply is not an id", i);
        }
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)json_integer_value(json_array_get(rids, i));
    }
    json_decref(reply);
    return JOBQ_OK;
}

/* job_reply: the snapshot from reply[field] (an object) into *jobp if jobp is not NULL. */
static int
job_reply(json_t *v, jobq_job **jobp)
{
    if (jobp == NULL) {
        return JOBQ_OK;
    }
    return jobq__job_from_json(v, jobp);
}

JOBQ_API int
jobq_get(jobq_client *client, int64_t id, jobq_job **jobp)
{
    if (jobp == NULL) {
        return jobq__fail(JOBQ_EINVAL, "jobp is NULL");
    }
    json_t *reply;
    json_t *req = json_pack("{s:s, s:I}", "op", "get", "id", (json_int_t)id);
    int err = jobq__call_json(client, "get", req, 0, &reply);
    json_decref(req);
    if (err != JOBQ_OK) {
        return err;
    }
    err = job_reply(json_object_get(reply, "job"), jobp);
    json_decref(reply);
    return err;
}

JOBQ_API int
jobq_cancel(jobq_client *client, int64_t id)
{
    json_t *reply;
    json_t *req = json_pack("{s:s, s:I}", "op", "cancel", "id", (json_int_t)id);
    int err = jobq__call_json(client, "cancel", req, 0, &reply);
    json_decref(req);
    if (err == JOBQ_OK) {
        json_decref(reply);
    }
    return err;
}

JOBQ_API int
jobq_wait(jobq_client *client, int64_t id, int64_t wait_ms, jobq_job **jobp)
{
    if (wait_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "wait_ms must be >= 0, not %lld", (long long)wait_ms);
    }
    int64_t left = wait_ms;
    for (;;) {
        int64_t piece = left < MAX_WAIT_PIECE_MS ? left : MAX_WAIT_PIECE_MS;
        left -= piece;
        json_t *reply;
        json_t *req = json_pack("{s:s, s:I, s:I}", "op", "wait", "id", (json_int_t)id, "timeout",
                                (json_int_t)piece);
        int err = jobq__call_json(client, "wait", req, piece, &reply);
        json_decref(req);
        if (err != JOBQ_OK) {
            return err;
        }
        json_t *done = json_object_get(reply, "done");
        json_t *jobs = json_object_get(reply, "jobs");
        if (!json_is_boolean(done) || !json_is_array(jobs) || json_array_size(jobs) < 1) {
            json_decref(reply);
            return jobq__fail(JOBQ_EPROTO, "the reply lacks \"done\" or \"jobs\"");
        }
        if (json_is_true(done)) {
            err = job_reply(json_array_get(jobs, 0), jobp);
            json_decref(reply);
            return err;
        }
        json_decref(reply);
        if (left == 0) {
            return jobq__fail(JOBQ_ETIMEDOUT, "job %lld has not finished after %lld ms",
                              (long long)id, (long long)wait_ms);
        }
    }
}

/* wait_pick: the job object of a wait reply that answers it for when (see jobq_wait_ex), or
 * NULL when the reply does not answer it (the piece timed out). */
static json_t *
wait_pick(json_t *reply, int when)
{
    json_t *jobs = json_object_get(reply, "jobs");
    json_t *first = json_object_get(reply, "first");
    size_t i;
    json_t *j;
    if (when != JOBQ_WAIT_ALL) {
        if (!json_is_integer(first)) {
            return NULL;
        }
        json_array_foreach(jobs, i, j)
        {
            if (json_equal(json_object_get(j, "id"), first)) {
                return j;
            }
        }
        return NULL;
    }
    if (!json_is_true(json_object_get(reply, "done"))) {
        return NULL;
    }
    json_array_foreach(jobs, i, j)
    {
        const char *st = json_string_value(json_object_get(j, "state"));
        if (st == NULL || strcmp(st, "succeeded") != 0) {
            return j;
        }
    }
    return json_array_get(jobs, 0);
}

JOBQ_API int
jobq_wait_ex(jobq_client *client, const int64_t *ids, size_t n, int64_t wait_ms,
             const jobq_wait_opts *opts, jobq_job **jobp)
{
    static const char *const whens[] = {"all", "first", "first_failure"};
    jobq_wait_opts none = {0};
    if (opts == NULL) {
        opts = &none;
    }
    if (wait_ms < 0) {
        return jobq__fail(JOBQ_EINVAL, "wait_ms must be >= 0, not %lld", (long long)wait_ms);
    }
    if (opts->return_when < JOBQ_WAIT_ALL || opts->return_when > JOBQ_WAIT_FIRST_FAILURE) {
        return jobq__fail(JOBQ_EINVAL, "return_when must be a jobq_wait_when, not %d",
                          opts->return_when);
    }
    if ((opts->group == 0) == (n == 0 || ids == NULL) || (opts->group != 0 && n != 0)) {
        return jobq__fail(JOBQ_EINVAL, "give either ids (n > 0) or opts->group");
    }
    int64_t left = wait_ms;
    for (;;) {
        int64_t piece = left < MAX_WAIT_PIECE_MS ? left : MAX_WAIT_PIECE_MS;
        left -= piece;
        json_t *req = json_pack("{s:s, s:I, s:s, s:b}", "op", "wait", "timeout", (json_int_t)piece,
                                "return_when", whens[opts->return_when], "cancel_pending",
                                opts->cancel_pending ? 1 : 0);
        json_t *target = json_array();
        for (size_t i = 0; i < n && target != NULL; i++) {
            if (json_array_append_new(target, json_integer(ids[i])) != 0) {
                json_decref(target);
                target = NULL;
            }
        }
        if (req == NULL || target == NULL ||
            json_object_set_new(req, opts->group != 0 ? "group" : "ids",
                                opts->group != 0 ? json_integer(opts->group) : target) != 0) {
            json_decref(req);
            if (opts->group != 0) {
                json_decref(target);
            }
            return jobq__fail(JOBQ_ENOMEM, "out of memory building a wait");
        }
        if (opts->group != 0) {
            json_decref(target);
        }
        json_t *reply;
        int err = jobq__call_json(client, "wait", req, piece, &reply);
        json_decref(req);
        if (err != JOBQ_OK) {
            return err;
        }
        if (!json_is_boolean(json_object_get(reply, "done")) ||
            !json_is_array(json_object_get(reply, "jobs"))) {
            json_decref(reply);
            return jobq__fail(JOBQ_EPROTO, "the reply lacks \"done\" or \"jobs\"");
        }
        json_t *job = wait_pick(reply, opts->return_when);
        if (job != NULL) {
            if (jobp != NULL && json_object_get(job, "queue") == NULL) {
                /* A group's wait for all lists each job briefly: read the whole job. */
                int64_t id = (int64_t)json_integer_value(json_object_get(job, "id"));
                json_decref(reply);
                return jobq_get(client, id, jobp);
            }
            err = job_reply(job, jobp);
            json_decref(reply);
            return err;
        }
        json_decref(reply);
        if (left == 0) {
            return jobq__fail(JOBQ_ETIMEDOUT, "the wait was not answered after %lld ms",
                              (long long)wait_ms);
        }
    }
}

JOBQ_API int
jobq_call(jobq_client *client, const char *request, char **replyp)
{
    if (client == NULL || request == NULL || replyp == NULL) {
        return jobq__fail(JOBQ_EINVAL, "client, request and replyp must not be NULL");
    }
    /* With a token, it goes into the request object; a text that is not a JSON object is
     * sent as it is, for the daemon to refuse. */
    char *with_token = NULL;
    if (client->token != NULL) {
        json_t *obj = json_loads(request, JSON_DECODE_ANY, NULL);
        if (json_is_object(obj)) {
            if (!add_token(client, obj) ||
                (with_token = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
                json_decref(obj);
                return jobq__fail(JOBQ_ENOMEM, "out of memory adding the token to the request");
            }
            request = with_token;
        }
        json_decref(obj);
    }
    raw_reply r;
    int err = roundtrip(client, request, strlen(request), atomic_load(&client->timeout_ms), &r);
    free(with_token);
    if (err != JOBQ_OK) {
        return err;
    }
    if (r.msg == NULL) {
        *replyp = r.data; /* already a NUL-terminated malloc'd text */
        return JOBQ_OK;
    }
    char *text = malloc(r.len + 1);
    if (text == NULL) {
        reply_free(&r);
        return jobq__fail(JOBQ_ENOMEM, "out of memory copying the reply");
    }
    memcpy(text, r.data, r.len);
    text[r.len] = '\0';
    reply_free(&r);
    *replyp = text;
    return JOBQ_OK;
}
