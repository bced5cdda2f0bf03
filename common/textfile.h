/* textfile.h: reading a small file whole (a PEM certificate or key), for every binary. */
#ifndef JOBQ_COMMON_TEXTFILE_H
#define JOBQ_COMMON_TEXTFILE_H

/** text_file_read: the whole file at path as a NUL-terminated string (malloc'ed; the caller
 *  frees it), or NULL (errno set) when it cannot be opened or read, or out of memory. */
char *text_file_read(const char *path);

#endif
