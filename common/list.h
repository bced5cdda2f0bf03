/* list.h: the one intrusive doubly-linked list of jobq: NULL-terminated, threaded through two
 * pointer fields of its elements, its head a plain pointer to the first. Macros over the
 * element type, so a struct keeps its own fields (often `next` and `prev`) and may sit on
 * several lists at once. Not thread-safe: the list's owner serialises. */
#ifndef JOBQ_COMMON_LIST_H
#define JOBQ_COMMON_LIST_H

#include <stddef.h>

/** JOBQ_LIST_PUSH: puts elm first on the list whose first element is head. */
#define JOBQ_LIST_PUSH(head, elm, next, prev)                                                      \
    do {                                                                                           \
        (elm)->prev = NULL;                                                                        \
        (elm)->next = (head);                                                                      \
        if ((head) != NULL) {                                                                      \
            (head)->prev = (elm);                                                                  \
        }                                                                                          \
        (head) = (elm);                                                                            \
    } while (0)

/** JOBQ_LIST_UNLINK: takes elm (on the list) off it. elm's own links are left as they were,
 *  so a loop that unlinks the element it stands on may still step on from it. */
#define JOBQ_LIST_UNLINK(head, elm, next, prev)                                                    \
    do {                                                                                           \
        if ((elm)->prev != NULL) {                                                                 \
            (elm)->prev->next = (elm)->next;                                                       \
        } else {                                                                                   \
            (head) = (elm)->next;                                                                  \
        }                                                                                          \
        if ((elm)->next != NULL) {                                                                 \
            (elm)->next->prev = (elm)->prev;                                                       \
        }                                                                                          \
    } while (0)

#endif
