/*
 * record.h
 *	  Program pgbk-watcher; uses spool.h and timers.h.
 *	  The watcher's connection to the catalog: delivers the spool's records
 *	  (bk_record_file_snapshot, bk_record_file_snapshots_forgotten) in
 *	  order, reports failed runs (bk_record_file_backup_failure), and
 *	  LISTENs on channel pgbk_snapshot for snapshot requests.
 *
 * Everything is asynchronous libpq (PQconnectStartParams/PQconnectPoll,
 * PQsendQueryParams) driven by the event loop, so a slow or unreachable
 * database never stalls inotify or signal handling.  While the database is
 * unreachable the records simply stay in the spool; reconnection attempts
 * back off from 1 s to 10 s, and a new record makes the next one immediate.
 */
#ifndef WATCHER_RECORD_H
#define WATCHER_RECORD_H

#include "spool.h"
#include "timers.h"

#include <poll.h>

typedef struct Recorder Recorder;

/*
 * Called for each unserved snapshot request in the catalog
 * (bk_file_snapshot_requests), read at each connection and after each
 * NOTIFY pgbk_snapshot (whose payload is ignored: anyone may NOTIFY).  The
 * same request comes again until a snapshot recorded for it is delivered.
 */
typedef void (*RecordRequestFn)(int64_t id, const char *name, void *arg);

/* timers: the event loop's, where the recorder keeps its one wake-up timer */
Recorder *record_new(const char *conninfo, const char *host, Spool *spool, Timers *timers,
                     RecordRequestFn fn, void *arg);
void      record_free(Recorder *r);

/* New conninfo or host (SIGHUP): reconnect if the conninfo changed. */
void record_configure(Recorder *r, const char *conninfo, const char *host);

/*
 * Right before the loop waits: the socket to poll (and for what), or -1;
 * and the recorder's timer is set to when record_step wants to run even
 * without socket activity (a reconnection, a timeout, an SQL retry).
 */
int record_prepare_poll(Recorder *r, short *events);
/* Advance: connect, read results and notifications, send the next record. */
void record_step(Recorder *r, short revents, int64_t now);

/* A new record is in the spool: if disconnected, try to connect now. */
void record_kick(Recorder *r);

/* Queue a failure event (best effort: kept in memory, at most a few). */
void record_failure(Recorder *r, const char *message);

/*
 * Unsaved changes: since when (Unix microseconds) files have changed without
 * a snapshot covering them, 0 for none.  Only the latest value matters; it
 * is sent when connected (bk_record_file_changes) and lost, harmlessly, if
 * the database is away: it only feeds bk_scope_health.
 */
void record_changes(Recorder *r, int64_t since_us);

/*
 * The files scope's depth from the catalog (bk_files_depth()), read at
 * each connection and after record_refresh_depth(); false while unknown.
 */
bool record_files_depth(const Recorder *r, int64_t *ms);
void record_refresh_depth(Recorder *r);

bool record_connected(const Recorder *r);
/* Nothing left to send: the spool is empty and no query is in flight. */
bool record_idle(const Recorder *r);
/* The last connection attempt failed (for --once). */
bool record_unreachable(const Recorder *r);

#endif /* WATCHER_RECORD_H */
