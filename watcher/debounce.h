/*
 * debounce.h
 *	  Program pgbk-watcher; uses libc only.
 *	  When to take the next snapshot: the watcher's pure decision logic.
 *
 * Changes start a "dirty" period.  A snapshot is due once the tree has been
 * quiet for settle_ms after the last change, or max_wait_ms after the first
 * change of the period, whichever comes first, so continuous writes cannot
 * postpone a snapshot forever.  Independently, a snapshot is due at start
 * (changes made while the watcher was not running are unknown), on request
 * (a named restore point), and safety_ms after the last one started (the
 * safety net against anything inotify missed; with some directories
 * unwatched the safety period shrinks to max_wait_ms).  After a failed
 * restic run the work stays due but waits retry_ms, doubling per failure
 * up to retry_max_ms.
 *
 * Changes seen while a snapshot runs may or may not be in it, so they open
 * a new dirty period: the dirty flag is cleared when a snapshot *starts*.
 * All times are milliseconds on a monotonic clock.
 */
#ifndef WATCHER_DEBOUNCE_H
#define WATCHER_DEBOUNCE_H

#include <stdbool.h>
#include <stdint.h>

#define DEBOUNCE_NEVER INT64_MAX

typedef enum Trigger
{
	TRIGGER_NONE = 0,
	TRIGGER_STARTUP,
	TRIGGER_CHANGE,
	TRIGGER_SAFETY,
	TRIGGER_REQUEST,
	TRIGGER_ONCE /* --once: never returned by debounce_next */
} Trigger;

typedef struct Debounce
{
	int64_t settle_ms;
	int64_t max_wait_ms;
	int64_t safety_ms; /* 0: no safety snapshots */
	int64_t retry_ms;
	int64_t retry_max_ms;

	bool    startup;   /* the first snapshot is still to be taken */
	bool    requested; /* a request waits */
	bool    dirty;     /* changes not covered by a started snapshot */
	bool    degraded;  /* some directories are not watched */
	int64_t first_change;
	int64_t last_change;
	int64_t last_start; /* start of the last snapshot (or of the watcher) */
	bool    running;
	Trigger running_trigger;
	bool    running_dirty; /* what the running snapshot cleared, to restore on failure */
	int64_t running_first_change;
	int     failures; /* consecutive failed runs */
	int64_t retry_at; /* no snapshot before this (0: no backoff) */
} Debounce;

void debounce_init(Debounce *d, int64_t settle_ms, int64_t max_wait_ms, int64_t safety_ms,
                   int64_t retry_ms, int64_t retry_max_ms, int64_t now);
/* New settings (SIGHUP); the state is kept. */
void debounce_configure(Debounce *d, int64_t settle_ms, int64_t max_wait_ms, int64_t safety_ms,
                        int64_t retry_ms, int64_t retry_max_ms);
void debounce_change(Debounce *d, int64_t now);
void debounce_request(Debounce *d);
void debounce_set_degraded(Debounce *d, bool degraded);

/* When the next snapshot is due (DEBOUNCE_NEVER: not at all) and why. */
int64_t debounce_next(const Debounce *d, Trigger *why);

void debounce_started(Debounce *d, Trigger why, int64_t now);
/* ok: a snapshot was written (complete or not); else back off and retry. */
void debounce_finished(Debounce *d, bool ok, int64_t now);
/* The delay the next failure would wait (for messages). */
int64_t debounce_backoff(const Debounce *d);

const char *trigger_name(Trigger t);

#endif /* WATCHER_DEBOUNCE_H */
