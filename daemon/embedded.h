/* embedded.h: how jobqd sees the files cmake/embed.cmake builds into it (its migrations). */
#ifndef JOBQD_EMBEDDED_H
#define JOBQD_EMBEDDED_H

#include <stddef.h>

/** EMBEDDED_FILES(table): declares table[], one {file name, contents, length} per embedded
 *  file sorted by name (then {NULL, NULL, 0}), and table_count, the number of files: the
 *  two symbols cmake/embed.cmake generates for -DNAME=table. Contents are NUL-terminated. */
#define EMBEDDED_FILES(table)                                                                      \
    extern const struct {                                                                          \
        const char *name;                                                                          \
        const char *data;                                                                          \
        size_t len;                                                                                \
    } table[];                                                                                     \
    extern const size_t table##_count

#endif
