/* http.c: nng's HTTP server for the monitor endpoint, bridged to the loop. */
#include "http.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct hcall {
    nng_aio *aio;
    enum http_route route;
    hcall *next;
};

struct route {
    http *h;
    enum http_route id;
};

struct http {
    uv_loop_t *loop;
    uv_async_t async;
    uv_mutex_t mtx;
    hcall *queue; /* LIFO under mtx; the loop serves a batch in arrival order */
    bool closed;  /* under mtx */
    nng_http_server *srv;
    struct route routes[ROUTE_COUNT];
    http_request_cb cb;
    void *arg;
};

static const char *const paths[ROUTE_COUNT] = {"/", "/metrics", "/stats", "/healthz"};

/* reply_now: completes aio with a response (any thread). */
static void
reply_now(nng_aio *aio, int status, const char *ctype, const char *body, size_t len)
{
    nng_http_res *res;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, (uint16_t)status);
    nng_http_res_set_header(res, "Content-Type", ctype);
    nng_http_res_set_header(res, "Cache-Control", "no-store");
    if (nng_http_res_copy_data(res, body, len) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* handler_cb: nng's thread. Queues the request for the loop. */
static void
handler_cb(nng_aio *aio)
{
    nng_http_handler *hh = nng_aio_get_input(aio, 1);
    struct route *rt = nng_http_handler_get_data(hh);
    http *h = rt->h;
    hcall *c = malloc(sizeof(*c));
    if (c == NULL) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    c->aio = aio;
    c->route = rt->id;
    uv_mutex_lock(&h->mtx);
    if (h->closed) {
        uv_mutex_unlock(&h->mtx);
        free(c);
        static const char msg[] = "jobqd is shutting down\n";
        reply_now(aio, 503, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        return;
    }
    c->next = h->queue;
    h->queue = c;
    uv_mutex_unlock(&h->mtx);
    uv_async_send(&h->async);
}

static void
async_cb(uv_async_t *a)
{
    http *h = a->data;
    uv_mutex_lock(&h->mtx);
    hcall *list = h->queue;
    h->queue = NULL;
    uv_mutex_unlock(&h->mtx);
    hcall *rev = NULL;
    while (list != NULL) {
        hcall *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    while (rev != NULL) {
        hcall *next = rev->next;
        h->cb(h->arg, rev, rev->route);
        rev = next;
    }
}

void
http_reply(hcall *c, int status, const char *content_type, const char *body, size_t len)
{
    reply_now(c->aio, status, content_type, body, len);
    free(c);
}

int
http_open(http **hp, uv_loop_t *loop, const char *hostport, http_request_cb cb, void *arg,
          char *err, size_t errlen)
{
    char urlbuf[300];
    snprintf(urlbuf, sizeof(urlbuf), "http://%s", hostport);
    nng_url *url;
    int rv = nng_url_parse(&url, urlbuf);
    if (rv != 0) {
        snprintf(err, errlen, "http = %s: not a HOST:PORT (%s)", hostport, nng_strerror(rv));
        return -1;
    }
    http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        nng_url_free(url);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->loop = loop;
    h->cb = cb;
    h->arg = arg;
    uv_mutex_init(&h->mtx);
    rv = nng_http_server_hold(&h->srv, url);
    nng_url_free(url);
    for (int i = 0; rv == 0 && i < ROUTE_COUNT; i++) {
        nng_http_handler *hh;
        h->routes[i] = (struct route){.h = h, .id = (enum http_route)i};
        if ((rv = nng_http_handler_alloc(&hh, paths[i], handler_cb)) != 0) {
            break;
        }
        nng_http_handler_set_data(hh, &h->routes[i], NULL);
        if ((rv = nng_http_server_add_handler(h->srv, hh)) != 0) {
            nng_http_handler_free(hh);
        }
    }
    if (rv == 0) {
        rv = nng_http_server_start(h->srv);
    }
    if (rv != 0) {
        snprintf(err, errlen, "cannot serve http on %s: %s%s", hostport, nng_strerror(rv),
                 rv == NNG_EADDRINUSE ? " (another process listens there; change [server] http)"
                                      : "");
        if (h->srv != NULL) {
            nng_http_server_release(h->srv);
        }
        uv_mutex_destroy(&h->mtx);
        free(h);
        return -1;
    }
    uv_async_init(loop, &h->async, async_cb);
    h->async.data = h;
    nng_sockaddr sa;
    char addr[128] = "?";
    char ip[INET_ADDRSTRLEN];
    if (nng_http_server_get_addr(h->srv, &sa) == 0 && sa.s_family == NNG_AF_INET &&
        inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip)) != NULL) {
        snprintf(addr, sizeof(addr), "%s:%u", ip, (unsigned)ntohs(sa.s_in.sa_port));
    } else {
        snprintf(addr, sizeof(addr), "%s", hostport);
    }
    log_info("http_listen", "addr=%s", addr);
    *hp = h;
    return 0;
}

static void
close_cb(uv_handle_t *a)
{
    http *h = a->data;
    uv_mutex_destroy(&h->mtx);
    free(h);
}

void
http_close(http *h)
{
    if (h == NULL) {
        return;
    }
    uv_mutex_lock(&h->mtx);
    h->closed = true;
    hcall *list = h->queue;
    h->queue = NULL;
    uv_mutex_unlock(&h->mtx);
    while (list != NULL) {
        hcall *next = list->next;
        static const char msg[] = "jobqd is shutting down\n";
        http_reply(list, 503, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
        list = next;
    }
    nng_http_server_stop(h->srv);
    nng_http_server_release(h->srv);
    uv_close((uv_handle_t *)&h->async, close_cb);
}
