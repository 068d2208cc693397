#!/usr/bin/env bash
# bench_plan.sh: bk_restore_point on a big catalog (issue 3): 1,000,000 WAL
# segments and 10,000 base backups (synthetic rows: one segment a minute for
# almost two years, a backup every 100 segments, named by its start time as
# real backup ids are), then pgbench calls
# bk_restore_point for random moments and prints the latency, and EXPLAIN
# ANALYZE shows the plans of its queries.  Target: <= 5 ms per call.
# Then bk_restore_window() (plan_window over the whole catalog) on the same
# rows, its time per call printed next to bk_restore_point's.
#
#   scripts/bench_plan.sh          # as root (installs, then runs as postgres)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-plan}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- "$top/scripts/bench_plan.sh" --as-user "$dir"
fi
dir=${2:-/var/tmp/pgbk-bench-plan}
SEGMENTS=${BENCH_SEGMENTS:-1000000}
BACKUPS=${BENCH_BACKUPS:-10000}
CALLS=${BENCH_CALLS:-2000}
WINDOW_CALLS=${BENCH_WINDOW_CALLS:-20}
bindir=$(pg_config --bindir)
export PATH="$bindir:$PATH" PGHOST="$dir" PGPORT=5591 PGDATABASE=postgres
trap 'pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true' EXIT

initdb -D "$dir/data" -A trust >/dev/null
cat >> "$dir/data/postgresql.conf" <<EOF
port = 5591
unix_socket_directories = '$dir'
listen_addresses = ''
shared_preload_libraries = 'pgbk'
shared_buffers = 512MB
EOF
pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql -X -q -c "CREATE EXTENSION pgbk"

echo "== loading $SEGMENTS WAL rows and $BACKUPS backups"
t0=$(date +%s)
psql -X -q <<EOF
-- the range trigger is for row-at-a-time catalog sync; a bulk load sets
-- the one range itself
ALTER TABLE pgbk.wal DISABLE TRIGGER wal_range_maintain;
INSERT INTO pgbk.wal (name, timeline, kind, segno, start_lsn, end_lsn, stored_bytes, raw_bytes,
		content_hash, archived_at, written_at, first_stop_at, last_stop_at, stop_records,
		last_record_lsn, tail_may_stop, system_identifier)
SELECT pgbk.segment_name(1, g), 1, 'segment', g,
	('0/0'::pg_lsn + g * 16777216::numeric), ('0/0'::pg_lsn + (g + 1) * 16777216::numeric),
	300000, 16777216, md5(g::text),
	timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute' + interval '5 seconds',
	timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute' + interval '2 seconds',
	timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute' - interval '58 seconds',
	timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute',
	100, ('0/0'::pg_lsn + (g + 1) * 16777216::numeric - 100), false, '1'
FROM generate_series(1, $SEGMENTS) g;
ALTER TABLE pgbk.wal ENABLE TRIGGER wal_range_maintain;
INSERT INTO pgbk.wal_range VALUES (1, 1, $SEGMENTS);
INSERT INTO pgbk.backup (id, label, timeline, start_lsn, stop_lsn, start_wal, stop_wal, start_time,
		stop_time, bytes, stored_bytes, files, system_identifier)
SELECT to_char((timestamptz '2025-01-01 00:00:00+00' + (g * 100) * interval '1 minute')
				AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'), 'synthetic', 1,
	('0/0'::pg_lsn + (g * 100) * 16777216::numeric + 40),
	('0/0'::pg_lsn + (g * 100 + 1) * 16777216::numeric + 200),
	pgbk.segment_name(1, g * 100), pgbk.segment_name(1, g * 100 + 1),
	timestamptz '2025-01-01 00:00:00+00' + (g * 100) * interval '1 minute',
	timestamptz '2025-01-01 00:00:00+00' + (g * 100 + 1) * interval '1 minute' + interval '1 second',
	2000000000, 300000000, 1500, '1'
FROM generate_series(1, $BACKUPS) g;
VACUUM ANALYZE pgbk.wal, pgbk.backup, pgbk.wal_range;
EOF
echo "loaded in $(( $(date +%s) - t0 )) s: $(psql -X -At -c "SELECT count(*) FROM pgbk.wal") segments, $(psql -X -At -c "SELECT count(*) FROM pgbk.backup") backups"

echo
echo "== one call, and the plans of the database plan's queries"
psql -X -x -c "SELECT * FROM bk_restore_point(timestamptz '2026-03-15 14:07:30+00') WHERE scope = 'database'"
psql -X -q <<'EOF'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = on;
SET client_min_messages = log;
SET auto_explain.log_level = notice;
SET client_min_messages = notice;
SELECT recoverable FROM bk_restore_point(timestamptz '2026-03-15 14:07:30+00') WHERE scope = 'database';
EOF

echo
echo "== $CALLS calls for random moments (pgbench, 1 client)"
cat > "$dir/plan.sql" <<'EOF'
\set m random(200000, 990000)
SELECT count(*) FROM bk_restore_point(timestamptz '2025-01-01 00:00:00+00' + :m * interval '1 minute' + interval '30 seconds');
EOF
point_out=$(pgbench -n -c 1 -t "$CALLS" -f "$dir/plan.sql" 2>&1)
grep -E "latency average|tps" <<<"$point_out"
echo
echo "database scope only (pgbk.plan_database), for comparison:"
cat > "$dir/plan_db.sql" <<'EOF'
\set m random(200000, 990000)
SELECT recoverable FROM pgbk.plan_database('time', timestamptz '2025-01-01 00:00:00+00' + :m * interval '1 minute' + interval '30 seconds', NULL, NULL);
EOF
pgbench -n -c 1 -t "$CALLS" -f "$dir/plan_db.sql" 2>&1 | grep -E "latency average|tps"
echo
echo "a moment after the last archived commit (the quiet-database rule decides):"
quiet="timestamptz '2025-01-01 00:00:00+00' + $SEGMENTS * interval '1 minute' + interval '500 milliseconds'"
psql -X -At -c "SELECT 'recoverable: ' || recoverable || ', last WAL ' || last_wal FROM pgbk.plan_database('time', $quiet, NULL, NULL)"
echo "SELECT recoverable FROM pgbk.plan_database('time', $quiet, NULL, NULL);" > "$dir/plan_quiet.sql"
pgbench -n -c 1 -t "$CALLS" -f "$dir/plan_quiet.sql" 2>&1 | grep -E "latency average|tps"

echo
echo "== bk_restore_window() over the same catalog ($WINDOW_CALLS calls, pgbench, 1 client)"
psql -X -c "SELECT * FROM bk_restore_window()"
echo "SELECT count(*) FROM bk_restore_window();" > "$dir/window.sql"
window_out=$(pgbench -n -c 1 -t "$WINDOW_CALLS" -f "$dir/window.sql" 2>&1)
grep -E "latency average|tps" <<<"$window_out"
point_ms=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$point_out")
window_ms=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$window_out")
echo
echo "per call at $SEGMENTS WAL rows / $BACKUPS backups: bk_restore_point ${point_ms:-?} ms," \
	"bk_restore_window ${window_ms:-?} ms"
