/* migrate.h: applies the SQL migrations embedded at build time, tracked by user_version. */
#ifndef JOBQD_MIGRATE_H
#define JOBQD_MIGRATE_H

#include <sqlite3.h>
#include <stddef.h>

/** migrate_latest: the schema version this jobqd brings (the highest migration number). */
int migrate_latest(void);

/** migrate_apply: brings db up to migrate_latest(), each migration in its own transaction
 *  together with its PRAGMA user_version. Refuses a database of a newer schema. Returns 0,
 *  or -1 with a reason in err. */
int migrate_apply(sqlite3 *db, char *err, size_t errlen);

#endif
