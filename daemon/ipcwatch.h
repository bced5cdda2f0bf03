/* ipcwatch.h: keeps ipc:// listeners accepting (see ipcwatch.c for the nng 1.5 fault it
 * works around). */
#ifndef JOBQD_IPCWATCH_H
#define JOBQD_IPCWATCH_H

#include <stddef.h>
#include <uv.h>

#include "intake.h"

typedef struct ipcwatch ipcwatch;

/** ipcwatch_open: watches every ipc:// URL of urls (others are ignored; with none, *wp is
 *  NULL). Each second it connects to each and sends a ping (carrying token, when not NULL);
 *  without an answer within three seconds it calls intake_relisten. Returns 0, or -1 on out of
 *  memory. Loop thread. */
int ipcwatch_open(ipcwatch **wp, uv_loop_t *loop, intake *in, char *const *urls, size_t nurls,
                  const char *token);

/** ipcwatch_close: stops watching; freed once its handles closed. Accepts NULL. Loop thread. */
void ipcwatch_close(ipcwatch *w);

#endif
