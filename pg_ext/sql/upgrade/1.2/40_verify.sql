-- bk_verify's WAL continuity check runs the planner's rule
-- (verify_wal_continuity over the catalog's PlanView, pg_ext/verify.c): the
-- plpgsql copy of that rule it used before is gone.
DROP FUNCTION pgbk.timeline_chain(integer);
DROP FUNCTION pgbk.first_missing(integer, bigint, bigint);
