/*
 * plan_sql.h
 *	  Program pgbk.so; uses backend headers only.
 *	  The restore planner (common/plan) over the catalog, for other parts of
 *	  the extension (expiry).
 */
#ifndef PGBK_PLAN_SQL_H
#define PGBK_PLAN_SQL_H

#include "postgres.h"

#include "datatype/timestamp.h"

/*
 * The backup a restore to moment `at` would start from, as `pgbk restore
 * --target-time` chooses it (plan_make over the catalog): copied into id
 * (at least 32 bytes).  False when no backup can serve that moment.  SPI
 * need not be connected (it connects a level of its own).
 */
extern bool pgbk_plan_backup_for_time(TimestampTz at, char *id, size_t idlen);

#endif /* PGBK_PLAN_SQL_H */
