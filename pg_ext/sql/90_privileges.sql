-- 90_privileges: nothing of pgbk is executable by PUBLIC.  Every function
-- the script created loses the default PUBLIC EXECUTE grant; the fragments
-- above grant what each role needs.
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT d.objid::regprocedure
		FROM pg_depend d
		JOIN pg_extension e ON e.oid = d.refobjid
		WHERE d.refclassid = 'pg_extension'::regclass
		  AND d.classid = 'pg_proc'::regclass
		  AND e.extname = 'pgbk'
	LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
	END LOOP;
END
$$;
