/* utf8.h: cutting UTF-8 text short without splitting a character, for every jobq binary
 * (jobqd's exec contract, libjobq's worker reports). Header-only, as clock.h. */
#ifndef JOBQ_COMMON_UTF8_H
#define JOBQ_COMMON_UTF8_H

#include <stddef.h>

/** utf8_cut: the largest length <= max at which text (len bytes of valid UTF-8) may be cut. */
static inline size_t
utf8_cut(const char *text, size_t len, size_t max)
{
    if (len <= max) {
        return len;
    }
    while (max > 0 && ((unsigned char)text[max] & 0xC0) == 0x80) {
        max--;
    }
    return max;
}

#endif
