-- Installing the extension: schema, tables, roles, and nothing for PUBLIC.
CREATE EXTENSION pgbk;

SELECT extversion FROM pg_extension WHERE extname = 'pgbk';

-- catalog tables and views where DESIGN.md puts them
SELECT n.nspname, c.relname, c.relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'pgbk' AND c.relkind IN ('r', 'v')
ORDER BY 1, 2;

-- the roles exist and admin includes reader
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'pgbk\_%' ORDER BY 1;
SELECT pg_has_role('pgbk_admin', 'pgbk_reader', 'MEMBER') AS admin_is_reader;

-- no function of the extension is executable by PUBLIC
SELECT p.oid::regprocedure AS public_function
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'pgbk'
  AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0));

-- no table or view of the extension is readable by PUBLIC
SELECT c.oid::regclass AS public_relation
FROM pg_class c
JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
JOIN pg_extension e ON e.oid = d.refobjid AND d.refclassid = 'pg_extension'::regclass
WHERE e.extname = 'pgbk'
  AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = 0);

-- the schema is not usable by PUBLIC
SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
               WHERE n.nspname = 'pgbk' AND a.grantee = 0) AS public_schema_acl;
