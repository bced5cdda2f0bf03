/* httpapi.h: the HTTP API: every op of proto/PROTOCOL.md as POST /v1/ops on the HTTP listener,
 * an endpoint of the icall interface (intake.h) beside the job port's; the HTTP status of each
 * error code; Authorization (Bearer, or Basic for browsers) against auth_token and
 * read_token; the OpenAPI document. Loop thread. */
#ifndef JOBQD_HTTPAPI_H
#define JOBQD_HTTPAPI_H

#include <stdbool.h>

#include "http.h"
#include "server.h"

/** What a request's Authorization header grants. */
typedef enum httpapi_grant {
    GRANT_OPEN,  /* no auth_token: everything, whatever the header */
    GRANT_NONE,  /* auth_token set, no Authorization header */
    GRANT_BAD,   /* an Authorization header with neither token (or unreadable) */
    GRANT_ADMIN, /* auth_token */
    GRANT_READ,  /* read_token */
} httpapi_grant;

/** httpapi_grant_of: what hc's Authorization header grants ("Bearer TOKEN", or "Basic" with
 *  the token as the password), each token compared in time independent of where it differs. */
httpapi_grant httpapi_grant_of(const server *s, hcall *hc);

/** httpapi_unauthorized: answers hc 401 with a JSON error naming what was wrong, and the
 *  challenge browsers (basic) or API clients (Bearer) understand. */
void httpapi_unauthorized(hcall *hc, httpapi_grant g, bool basic);

/** httpapi_headers: the http_headers_cb of POST /v1/ops: answers 401 at once to a wrong
 *  Authorization header, 413 (401 without a token) to a Content-Length over the limit; else
 *  the body limit: max_message, or max_unauthenticated_message while the token can only be in
 *  the body. */
long long httpapi_headers(server *s, hcall *hc);

/** httpapi_request: POST /v1/ops: the body goes to dispatch_request as an icall of this
 *  endpoint; the reply's error code (if any) picks the HTTP status (one table in httpapi.c). */
void httpapi_request(server *s, hcall *hc);

/** httpapi_openapi: GET /v1/openapi.yaml: the OpenAPI 3 document (docs/openapi.yaml, embedded). */
void httpapi_openapi(hcall *hc);

/** httpapi_conn_closed: the http_closed_cb of the HTTP listener (arg: the server): the
 *  requests held for that connection are dropped (hold_conn_closed). */
void httpapi_conn_closed(void *arg, uint64_t conn);

/** httpapi_status: the HTTP status of a wire error code (500 for one it does not know). */
int httpapi_status(const char *code);

#endif
