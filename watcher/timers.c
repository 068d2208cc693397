/*
 * timers.c
 *	  Program pgbk-watcher; uses libc only (the monotonic clock).
 *	  The event loop's timers (see timers.h): a small table scanned linearly,
 *	  as ae.c's list of time events is.
 */
#include "timers.h"

#include <limits.h>
#include <stddef.h>
#include <time.h>

int64_t
timers_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
timers_init(Timers *t)
{
	t->n = 0;
	t->last_id = 0;
	t->arm_count = 0;
}

static Timer *
find(const Timers *t, TimerId id)
{
	int i;

	if (id == 0)
		return NULL;
	for (i = 0; i < t->n; i++)
	{
		if (t->timer[i].id == id)
			return (Timer *) &t->timer[i];
	}
	return NULL;
}

TimerId
timers_add(Timers *t, int64_t when, TimerFn fn, void *arg)
{
	Timer *tm;

	if (when == TIMERS_NEVER || t->n == TIMERS_MAX)
		return 0;
	tm = &t->timer[t->n++];
	tm->id = ++t->last_id;
	tm->when = when;
	tm->fn = fn;
	tm->arg = arg;
	tm->armed = ++t->arm_count;
	return tm->id;
}

bool
timers_cancel(Timers *t, TimerId id)
{
	Timer *tm = find(t, id);

	if (tm == NULL)
		return false;
	*tm = t->timer[--t->n];
	return true;
}

bool
timers_set(Timers *t, TimerId *id, int64_t when, TimerFn fn, void *arg)
{
	Timer *tm = find(t, *id);

	if (when == TIMERS_NEVER)
	{
		if (tm != NULL)
			timers_cancel(t, *id);
		*id = 0;
		return true;
	}
	if (tm != NULL)
	{
		tm->when = when;
		tm->fn = fn;
		tm->arg = arg;
		tm->armed = ++t->arm_count;
		return true;
	}
	*id = timers_add(t, when, fn, arg);
	return *id != 0;
}

int64_t
timers_when(const Timers *t, TimerId id)
{
	const Timer *tm = find(t, id);

	return tm ? tm->when : TIMERS_NEVER;
}

int64_t
timers_next(const Timers *t)
{
	int64_t next = TIMERS_NEVER;
	int     i;

	for (i = 0; i < t->n; i++)
	{
		if (t->timer[i].when < next)
			next = t->timer[i].when;
	}
	return next;
}

int
timers_timeout(const Timers *t, int64_t now)
{
	int64_t next = timers_next(t);

	if (next == TIMERS_NEVER)
		return -1;
	if (next <= now)
		return 0;
	return next - now > INT_MAX ? INT_MAX : (int) (next - now);
}

int
timers_fire(Timers *t, int64_t now)
{
	TimerId  due[TIMERS_MAX];
	uint64_t pass = t->arm_count; /* armed after this: the next pass */
	int      n_due = 0;
	int      fired = 0;
	int      i;

	/* the pass: what is due now, by deadline then age */
	for (i = 0; i < t->n; i++)
	{
		const Timer *tm = &t->timer[i];
		int          j;

		if (tm->when > now)
			continue;
		for (j = n_due; j > 0; j--)
		{
			const Timer *prev = find(t, due[j - 1]);

			if (prev->when < tm->when || (prev->when == tm->when && prev->id < tm->id))
				break;
			due[j] = due[j - 1];
		}
		due[j] = tm->id;
		n_due++;
	}

	for (i = 0; i < n_due; i++)
	{
		Timer   *tm = find(t, due[i]);
		TimerId  id = due[i];
		uint64_t armed;
		int64_t  again = TIMER_DONE;

		/* cancelled or re-armed by an earlier callback of this pass */
		if (tm == NULL || tm->armed > pass)
			continue;
		fired++;
		if (tm->fn != NULL)
		{
			armed = tm->armed;
			again = tm->fn(now, tm->arg);
			tm = find(t, id); /* the table may have changed */
			if (tm == NULL || tm->armed != armed)
				continue; /* cancelled or re-armed by its callback */
		}
		if (again < 0)
			timers_cancel(t, id);
		else
		{
			tm->when = now + again;
			tm->armed = ++t->arm_count;
		}
	}
	return fired;
}
