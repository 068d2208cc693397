/*
 * debounce.c
 *	  Program pgbk-watcher; uses libc only (pure: no I/O, no clock).
 *	  The snapshot timing state machine (see debounce.h).  No I/O, no
 *	  clock: the caller passes the time, so tests can drive it.
 */
#include "debounce.h"

#include <stddef.h>

void
debounce_init(Debounce *d, int64_t settle_ms, int64_t max_wait_ms, int64_t safety_ms,
              int64_t retry_ms, int64_t retry_max_ms, int64_t now)
{
	*d = (Debounce){0};
	debounce_configure(d, settle_ms, max_wait_ms, safety_ms, retry_ms, retry_max_ms);
	d->startup = true;
	d->last_start = now;
}

void
debounce_configure(Debounce *d, int64_t settle_ms, int64_t max_wait_ms, int64_t safety_ms,
                   int64_t retry_ms, int64_t retry_max_ms)
{
	d->settle_ms = settle_ms;
	d->max_wait_ms = max_wait_ms < settle_ms ? settle_ms : max_wait_ms;
	d->safety_ms = safety_ms;
	d->retry_ms = retry_ms;
	d->retry_max_ms = retry_max_ms < retry_ms ? retry_ms : retry_max_ms;
}

void
debounce_change(Debounce *d, int64_t now)
{
	if (!d->dirty)
	{
		d->dirty = true;
		d->first_change = now;
	}
	d->last_change = now;
}

void
debounce_request(Debounce *d)
{
	d->requested = true;
}

void
debounce_set_degraded(Debounce *d, bool degraded)
{
	d->degraded = degraded;
}

static int64_t
min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

int64_t
debounce_next(const Debounce *d, Trigger *why)
{
	int64_t due = DEBOUNCE_NEVER;
	Trigger t = TRIGGER_NONE;
	int64_t safety = d->degraded ? d->max_wait_ms : d->safety_ms;

	if (d->running)
	{
		*why = TRIGGER_NONE;
		return DEBOUNCE_NEVER;
	}
	if (d->startup)
	{
		due = 0;
		t = TRIGGER_STARTUP;
	}
	else if (d->requested)
	{
		due = 0;
		t = TRIGGER_REQUEST;
	}
	else
	{
		if (d->dirty)
		{
			due = min64(d->last_change + d->settle_ms, d->first_change + d->max_wait_ms);
			t = TRIGGER_CHANGE;
		}
		if (safety > 0 && d->last_start + safety < due)
		{
			due = d->last_start + safety;
			t = TRIGGER_SAFETY;
		}
	}
	if (t != TRIGGER_NONE && d->retry_at > due)
		due = d->retry_at;
	*why = t;
	return due;
}

void
debounce_started(Debounce *d, Trigger why, int64_t now)
{
	d->running = true;
	d->running_trigger = why;
	d->running_dirty = d->dirty;
	d->running_first_change = d->first_change;
	d->dirty = false;
	d->requested = false;
	d->last_start = now;
}

int64_t
debounce_backoff(const Debounce *d)
{
	int64_t delay = d->retry_ms;
	int     i;

	for (i = 0; i < d->failures && delay < d->retry_max_ms; i++)
		delay *= 2;
	return min64(delay, d->retry_max_ms);
}

void
debounce_finished(Debounce *d, bool ok, int64_t now)
{
	d->running = false;
	if (ok)
	{
		d->startup = false;
		d->failures = 0;
		d->retry_at = 0;
		return;
	}
	/* what this run was for is still to do, after a pause */
	d->retry_at = now + debounce_backoff(d);
	d->failures++;
	if (d->running_trigger == TRIGGER_REQUEST)
		d->requested = true;
	if (d->running_dirty)
	{
		/* the changes it was to cover are still uncovered */
		if (!d->dirty)
			d->last_change = d->running_first_change;
		if (!d->dirty || d->running_first_change < d->first_change)
			d->first_change = d->running_first_change;
		d->dirty = true;
	}
	else if (d->running_trigger == TRIGGER_SAFETY)
		debounce_change(d, now);
}

const char *
trigger_name(Trigger t)
{
	switch (t)
	{
		case TRIGGER_STARTUP:
			return "startup";
		case TRIGGER_CHANGE:
			return "change";
		case TRIGGER_SAFETY:
			return "safety";
		case TRIGGER_REQUEST:
			return "request";
		case TRIGGER_ONCE:
			return "once";
		case TRIGGER_NONE:
			break;
	}
	return "none";
}
