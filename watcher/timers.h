/*
 * timers.h
 *	  Program pgbk-watcher; uses libc only (the monotonic clock).
 *	  The event loop's timers, after redis's ae.c time events: whoever waits
 *	  for a moment registers a timer, and the loop asks the table for its
 *	  poll() timeout instead of computing a minimum over every deadline.
 *
 * Times are milliseconds on the monotonic clock (timers_now()).  A timer is
 * one-shot unless its callback returns a delay, after which it fires again
 * (ae.c's convention); a timer without callback only wakes the loop, for
 * code that decides from its own state once awake (the scheduler, the
 * catalog connection).  Ids are never reused within a table; 0 is "none".
 *
 * The table is a small fixed array: the watcher arms a handful of timers
 * (snapshot, forget, lookup retry, the running restic's reap tick, stop and
 * exit deadlines, the catalog connection), so a linear scan is cheapest and
 * nothing is allocated.
 */
#ifndef WATCHER_TIMERS_H
#define WATCHER_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#define TIMERS_NEVER INT64_MAX /* no deadline: same value as DEBOUNCE_NEVER */
#define TIMERS_MAX   32
#define TIMER_DONE   (-1) /* a callback's "do not fire again" */

typedef uint64_t TimerId;

/*
 * Called by timers_fire() once the deadline has passed.  Returns TIMER_DONE
 * or the delay (ms, >= 0) after which to fire again.  It may add, set and
 * cancel timers, itself included.
 */
typedef int64_t (*TimerFn)(int64_t now, void *arg);

typedef struct Timer
{
	TimerId  id;
	int64_t  when;
	TimerFn  fn; /* NULL: only wakes the loop */
	void    *arg;
	uint64_t armed; /* when it was last added or set, in arm_count ticks */
} Timer;

typedef struct Timers
{
	Timer    timer[TIMERS_MAX];
	int      n;
	TimerId  last_id;
	uint64_t arm_count;
} Timers;

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t timers_now(void);

void timers_init(Timers *t);

/* A new timer at when; its id, or 0 if the table is full or when is TIMERS_NEVER. */
TimerId timers_add(Timers *t, int64_t when, TimerFn fn, void *arg);
/* Remove a pending timer; false if there is none with that id. */
bool timers_cancel(Timers *t, TimerId id);

/*
 * The one timer kept in *id, (re)armed at when: moved in place (same id)
 * when pending, added otherwise; when = TIMERS_NEVER cancels it and sets
 * *id to 0.  False only when the table is full.
 */
bool timers_set(Timers *t, TimerId *id, int64_t when, TimerFn fn, void *arg);

/* When timer id fires, TIMERS_NEVER if it is not pending. */
int64_t timers_when(const Timers *t, TimerId id);
/* The earliest deadline, TIMERS_NEVER if no timer is pending. */
int64_t timers_next(const Timers *t);
/* poll()'s timeout at now: -1 (no timer), 0 (one is due) or ms to wait. */
int timers_timeout(const Timers *t, int64_t now);

/*
 * Fire the timers due at now, earliest deadline first: each is removed (or,
 * periodic, re-armed at now + the delay its callback returned) and its
 * callback called.  A timer added or re-armed during this pass waits for
 * the next one, so a callback cannot make it loop.  Returns how many fired.
 */
int timers_fire(Timers *t, int64_t now);

#endif /* WATCHER_TIMERS_H */
