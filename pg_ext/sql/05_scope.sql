-- 05_scope: the four axes of the seed document as data.  Every kind of
-- backup has a scope (what it protects), a granularity (how precisely it can
-- be restored), a depth (how far back it is kept) and a restore type (in
-- place or to a new place).  pgbk backs up two scopes itself (database: WAL
-- + base backups; files: pgbk-watcher + restic); the others are backed up
-- elsewhere (Hyper-V, Veeam, bucket versioning) and registered here, so every
-- scope is planned in one place.

CREATE TABLE pgbk.scope (
	name text PRIMARY KEY,
	description text NOT NULL,
	mechanism text NOT NULL CHECK (mechanism IN ('wal', 'restic', 'external')),
	granularity interval NOT NULL CHECK (granularity > interval '0'),
	depth interval NOT NULL CHECK (depth > interval '0'),
	restore_type text NOT NULL CHECK (restore_type IN ('in place', 'new place')),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The seed's five scopes.  Where the seed gives no figure (depth of the
-- external scopes) the default is a week: whole-machine snapshots are
-- expensive to keep longer, as the seed says.  Change with bk_set_policy().
INSERT INTO pgbk.scope (name, description, mechanism, granularity, depth, restore_type) VALUES
	('physical_server', 'the physical server (backed up outside pgbk; register its backups)',
	 'external', '1 day', '7 days', 'in place'),
	('virtual_machine', 'the virtual machine (Hyper-V snapshots by the infrastructure team)',
	 'external', '1 day', '7 days', 'in place'),
	('database', 'the Pimcore database (WAL archiving and base backups by pgbk)',
	 'wal', '1 minute', '6 months', 'new place'),
	('files', 'files inside Pimcore (pgbk-watcher and restic)',
	 'restic', '1 minute', '6 months', 'new place'),
	('s3_files', 'files in S3 storage (bucket versioning or another tool; register its backups)',
	 'external', '1 day', '30 days', 'in place');

-- Change a scope's policy.  Arguments left NULL keep their value.  Bad input
-- (unknown scope, a granularity or depth that is not positive, a restore
-- type other than 'in place' / 'new place') is an error that changes
-- nothing.
CREATE FUNCTION bk_set_policy(scope text, granularity interval DEFAULT NULL,
							  depth interval DEFAULT NULL, restore_type text DEFAULT NULL)
RETURNS pgbk.scope
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	result pgbk.scope;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pgbk.scope s WHERE s.name = bk_set_policy.scope) THEN
		RAISE EXCEPTION 'unknown scope "%"', bk_set_policy.scope
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Known scopes: ' || (SELECT string_agg(name, ', ' ORDER BY name) FROM pgbk.scope) || '.';
	END IF;
	IF granularity IS NOT NULL AND granularity <= interval '0' THEN
		RAISE EXCEPTION 'granularity must be positive, not %', granularity
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF depth IS NOT NULL AND depth <= interval '0' THEN
		RAISE EXCEPTION 'depth must be positive, not %', depth
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF restore_type IS NOT NULL AND restore_type NOT IN ('in place', 'new place') THEN
		RAISE EXCEPTION 'restore type must be ''in place'' or ''new place'', not ''%''', restore_type
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	UPDATE pgbk.scope s
	   SET granularity = coalesce(bk_set_policy.granularity, s.granularity),
		   depth = coalesce(bk_set_policy.depth, s.depth),
		   restore_type = coalesce(bk_set_policy.restore_type, s.restore_type),
		   updated_at = now()
	 WHERE s.name = bk_set_policy.scope
	RETURNING * INTO result;
	RETURN result;
END
$$;

-- Backups made outside pgbk (Hyper-V, Veeam, bucket versioning, ...).
CREATE TABLE pgbk.external_backup (
	id bigserial PRIMARY KEY,
	scope text NOT NULL REFERENCES pgbk.scope (name),
	taken_at timestamptz NOT NULL,
	location text NOT NULL,		-- where it is: snapshot name, path, URL (no secrets)
	note text,
	registered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX external_backup_scope_taken_idx ON pgbk.external_backup (scope, taken_at);

CREATE FUNCTION bk_register_external_backup(scope text, taken_at timestamptz, location text,
											note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text;
	new_id bigint;
BEGIN
	SELECT s.mechanism INTO m FROM pgbk.scope s WHERE s.name = bk_register_external_backup.scope;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'unknown scope "%"', bk_register_external_backup.scope
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Known scopes: ' || (SELECT string_agg(name, ', ' ORDER BY name) FROM pgbk.scope) || '.';
	END IF;
	IF m <> 'external' THEN
		RAISE EXCEPTION 'scope "%" is backed up by pgbk itself (%), not registered from outside',
			bk_register_external_backup.scope, m
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF taken_at IS NULL OR location IS NULL OR location = '' THEN
		RAISE EXCEPTION 'taken_at and location are required'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT isfinite(taken_at) THEN
		RAISE EXCEPTION 'taken_at must be a point in time, not %', taken_at
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF taken_at > now() + interval '5 minutes' THEN
		RAISE EXCEPTION 'taken_at is in the future'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Register a backup once it has been taken.';
	END IF;
	INSERT INTO pgbk.external_backup (scope, taken_at, location, note)
	VALUES (bk_register_external_backup.scope, taken_at, location, note)
	RETURNING id INTO new_id;
	RETURN new_id;
END
$$;

GRANT SELECT ON pgbk.scope, pgbk.external_backup TO pgbk_reader;
GRANT EXECUTE ON FUNCTION bk_set_policy(text, interval, interval, text),
	bk_register_external_backup(text, timestamptz, text, text) TO pgbk_admin;
