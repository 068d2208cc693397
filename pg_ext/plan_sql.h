/*
 * plan_sql.h
 *	  Program pgbk.so; uses backend headers only.
 *	  The restore planner (common/plan) over the catalog, for other parts of
 *	  the extension (expiry).
 */
#ifndef PGBK_PLAN_SQL_H
#define PGBK_PLAN_SQL_H

#include "postgres.h"

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

#include "base/walname.h"

/*
 * The backup a restore to moment `at` would start from, as `pgbk restore
 * --target-time` chooses it (plan_make over the catalog): copied into id
 * (at least 32 bytes).  False when no backup can serve that moment.  SPI
 * need not be connected (it connects a level of its own).
 */
extern bool pgbk_plan_backup_for_time(TimestampTz at, char *id, size_t idlen);

/*
 * The planner's view (common/plan) of the whole catalog: every backup, the
 * timeline histories, and every archived segment except those gone(name,
 * arg) says the repository has lost (NULL: none).  SPI connected; free with
 * plan_view_free (plain malloc: the caller frees it on its error paths).
 */
struct PlanView;
extern struct PlanView *pgbk_plan_catalog_view(bool (*gone)(const char *name, void *arg),
                                               void *arg);

/*
 * The parent an incremental backup starting at lsn on timeline chain chain
 * would build on (plan_parent over the catalog): copied into id.  False,
 * with the reason copied into reason, when there is none.  SPI need not be
 * connected; a transaction must be open.
 */
extern bool pgbk_plan_parent(const WalHistory *chain, XLogRecPtr lsn, char *id, size_t idlen,
                             char *reason, size_t reasonlen);

/*
 * Expiry over chains (plan_expiry_keep_chains over the whole catalog):
 * keep[i] says whether backup ids[i] is kept; every backup a kept
 * incremental builds on becomes kept too, and needed_by[i] (palloc'd, or
 * NULL) names the newest kept backup that needs it.  SPI need not be
 * connected.
 */
extern void pgbk_plan_expiry_keep_chains(char **ids, int n, bool *keep, char **needed_by);

#endif /* PGBK_PLAN_SQL_H */
