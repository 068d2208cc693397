/*
 * watch.h
 *	  Program pgbk-watcher; uses common/base only.
 *	  Recursive inotify watching of the file roots, minus the excludes.
 *
 * The watcher only needs to know *that* something changed (restic always
 * backs up the whole roots), so this module answers one question per batch
 * of events: did anything outside the excluded directories change?  Its
 * real work is keeping one watch on every directory of the trees as they
 * are created, renamed, moved in, moved out and deleted, and recovering
 * when the kernel drops events (queue overflow) or refuses watches (ENOSPC).
 */
#ifndef WATCHER_WATCH_H
#define WATCHER_WATCH_H

#include "base/pgbk_common.h"

#define WATCH_CHANGED  0x01 /* something under the roots changed */
#define WATCH_OVERFLOW 0x02 /* the event queue overflowed: assume everything changed */
#define WATCH_MORE     0x04 /* events may remain queued (read limit per call reached) */

typedef struct WatchTable WatchTable;

/*
 * Watch every directory under the roots except the excluded ones.
 * max_watches > 0 makes it behave as if the kernel allowed only that many
 * watches (to test the ENOSPC path).  A root that does not exist is a
 * configuration error.
 */
PgbkStatus watch_open(char *const *roots, int n_roots, char *const *excludes, int n_excludes,
                      int max_watches, WatchTable **out, PgbkError *err);
void       watch_close(WatchTable *w);

/* The inotify descriptor, for poll(). */
int watch_fd(const WatchTable *w);

/* Read and handle the pending events; returns WATCH_* flags. */
int watch_process(WatchTable *w);

/*
 * Bring the table in line with the trees (after an overflow, or to pick up
 * directories that could not be watched before).  Returns WATCH_CHANGED if
 * it found directories it had not been watching.
 */
int watch_rescan(WatchTable *w);

/* True while some directory (or root) has no watch. */
bool   watch_degraded(const WatchTable *w);
size_t watch_count(const WatchTable *w);

/*
 * Is rel (a path relative to a root, no leading '/') excluded?  A pattern
 * matches rel or any of its leading directories; '*', '?' and '[...]'
 * match within one path component, as in restic's --exclude.
 */
bool watch_excluded(char *const *excludes, int n_excludes, const char *rel);

#endif /* WATCHER_WATCH_H */
