#!/usr/bin/env bash
# demo.sh: `make demo`.  On a fresh Debian 12 machine, as root: installs what
# is missing, builds and installs pgbk, then runs the main job end to end on
# the embedded default (a local repository directory):
#
#   1. a throwaway PostgreSQL 15 cluster archiving through pgbk;
#   2. a workload, and what was archived (files, bytes, compression);
#   3. a read-back: a WAL file fetched from the repository is byte-identical;
#   4. pgbk-watcher taking restic snapshots of an application file tree into
#      the same catalog;
#   5. a base backup, a marked moment (a named restore point), a "disaster"
#      (a dropped table, deleted files), the plan from bk_restore_point, the
#      restore of database and files to that moment in a new place, and a
#      check that both equal what they were at the marked moment.
#
# Everything lives under $PGBK_DEMO_DIR (default /var/tmp/pgbk-demo), owned
# by the postgres user; the servers it starts are stopped at the end.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
demo=${PGBK_DEMO_DIR:-/var/tmp/pgbk-demo}
port=${PGBK_DEMO_PORT:-5497}
port2=$((port + 1))

if [ "$(id -u)" = 0 ]; then
	scripts/deps.sh build demo
	make -s
	make -s install
	rm -rf "$demo"
	install -d -o postgres -g postgres -m 700 "$demo"
	exec runuser -u postgres -- env PGBK_DEMO_DIR="$demo" PGBK_DEMO_PORT="$port" \
		"$top/scripts/demo.sh" --as-user
fi
[ "${1:-}" = "--as-user" ] || { mkdir -p "$demo"; }

bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
export PGHOST="$demo" PGDATABASE=postgres
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
psqlq() { psql -X -q -v ON_ERROR_STOP=1 -p "$1" -c "$2"; }
watcher=
stop_all() {
	if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null || true; fi
	pg_ctl -D "$demo/data" -m fast stop >/dev/null 2>&1 || true
	pg_ctl -D "$demo/restored" -m fast stop >/dev/null 2>&1 || true
}
trap stop_all EXIT

say "1. A PostgreSQL 15 cluster archiving through pgbk into $demo/repo"
initdb -D "$demo/data" -A trust >/dev/null
mkdir -m 700 "$demo/repo"
pgbk keygen "$demo/pgbk.key"
(umask 077 && openssl rand -hex 32 > "$demo/restic.pw")
cat > "$demo/pgbk.conf" <<EOF
# the repository: a local directory (the embedded default); for S3 use
# repository = 's3://bucket/prefix' with s3_endpoint and s3_credentials_file
repository = '$demo/repo'
key_file = '$demo/pgbk.key'
compression = zstd
# the files scope (pgbk-watcher, restic): its own restic repository, $demo/repo/files
restic_password_file = '$demo/restic.pw'
EOF
chmod 600 "$demo/pgbk.conf"   # pgbk refuses a pgbk.conf others could write
cat >> "$demo/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$demo'
listen_addresses = ''
shared_preload_libraries = 'pgbk'
archive_mode = on
archive_library = 'pgbk'
archive_timeout = 60
pgbk.config = '$demo/pgbk.conf'
EOF
pg_ctl -D "$demo/data" -l "$demo/server.log" -w start >/dev/null
psqlq "$port" "CREATE EXTENSION pgbk"
pgbk check --config "$demo/pgbk.conf"

say "2. A workload (pgbench), then what was archived"
pgbench -i -s 5 -q -p "$port" postgres 2>&1 | tail -1
pgbench -c 2 -T 5 -p "$port" postgres 2>&1 | grep -E "^tps|transactions actually"
psqlq "$port" "SELECT pg_switch_wal()" >/dev/null
for i in $(seq 1 100); do
	pending=$(psql -X -At -p "$port" -c "SELECT pending FROM bk_status WHERE component = 'archive'")
	[ "$pending" = 0 ] && break
	sleep 0.2
done
psqlq "$port" "SELECT bk_catalog_sync(false)" >/dev/null
psql -X -p "$port" -c "SELECT component, status, last_file, pending, lag, detail FROM bk_status"
psql -X -p "$port" -c "SELECT count(*) AS wal_files,
       pg_size_pretty(sum(raw_bytes)) AS original,
       pg_size_pretty(sum(stored_bytes)) AS stored,
       round(sum(raw_bytes)::numeric / nullif(sum(stored_bytes), 0), 1) AS ratio
  FROM pgbk.wal WHERE kind = 'segment'"

say "3. Read-back: a WAL file from the repository equals the original"
seg=$(psql -X -At -p "$port" -c "SELECT name FROM pgbk.wal WHERE kind = 'segment' ORDER BY name DESC LIMIT 1 OFFSET 1")
pgbk wal-fetch --config "$demo/pgbk.conf" "$seg" "$demo/$seg.fetched"
if cmp -s "$demo/$seg.fetched" "$demo/data/pg_wal/$seg"; then
	echo "$seg: byte-identical to pg_wal/$seg ($(stat -c %s "$demo/$seg.fetched") bytes)"
else
	echo "$seg: DIFFERENT" >&2
	exit 1
fi

say "4. Application files: pgbk-watcher snapshots them with restic into the same catalog"
app=$demo/app
mkdir -p "$app/public/var/assets/2026" "$app/var/cache" "$app/config"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom > "$app/public/var/assets/2026/img-$i.jpg"; done
echo 'pimcore: {}' > "$app/config/system.yaml"
echo 'compiled' > "$app/var/cache/container.php"      # excluded (Pimcore default)
psqlq "$port" "CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder"
cat > "$demo/watcher.conf" <<WATCHERCONF
pgbk_config = '$demo/pgbk.conf'
roots = '$app'
conninfo = 'host=$demo port=$port dbname=postgres user=pgbk_watcher'
spool_dir = '$demo/watcher-spool'
cache_dir = '$demo/restic-cache'
restic_password_file = '$demo/restic.pw'
settle_delay = 2s
WATCHERCONF
chmod 600 "$demo/watcher.conf"
pgbk-watcher -c "$demo/watcher.conf" --init
pgbk-watcher -c "$demo/watcher.conf" 2>"$demo/watcher.log" &
watcher=$!
snapshots() { psql -X -At -p "$port" -c "SELECT count(*) FROM pgbk.file_snapshot"; }
wait_snapshots() {
	for i in $(seq 1 600); do [ "$(snapshots)" -ge "$1" ] && return 0; sleep 0.1; done
	echo "no file snapshot $1 after 60 s; see $demo/watcher.log" >&2
	return 1
}
wait_snapshots 1
echo "a new upload" > "$app/public/var/assets/2026/new.jpg"
rm "$app/public/var/assets/2026/img-3.jpg"
wait_snapshots 2
psql -X -p "$port" -c "SELECT short_id, taken_at, trigger, status, files_new, files_changed,
       files_unmodified, pg_size_pretty(bytes_added) AS added, duration FROM pgbk.file_snapshot ORDER BY taken_at"

say "5. Point-in-time restore: a backup, a marked moment, a disaster, the plan, the restore"
id=$(psql -X -At -p "$port" -c "SELECT bk_base_backup()")
echo "base backup $id"
psql -X -p "$port" -c "SELECT id, stop_time, pg_size_pretty(bytes) AS size, pg_size_pretty(stored_bytes) AS stored FROM pgbk.backup"
pgbench -c 2 -T 3 -p "$port" postgres >/dev/null 2>&1
# the marked moment: a named restore point covers the database and the files
psqlq "$port" "SELECT bk_create_restore_point('before-disaster')" >/dev/null
wait_snapshots 3
marked=$(psql -X -At -p "$port" -c "SELECT clock_timestamp()")
expected=$(psql -X -At -p "$port" -c "SELECT count(*) || ' rows, sum ' || sum(abalance) FROM pgbench_accounts")
cp -a "$app" "$demo/app-at-marked-moment"
echo "marked moment: $marked  (pgbench_accounts: $expected)"
sleep 1
pgbench -c 2 -T 2 -p "$port" postgres >/dev/null 2>&1
psqlq "$port" "DROP TABLE pgbench_accounts"
rm -rf "$app/public/var/assets"
echo "disaster: DROP TABLE pgbench_accounts, and the assets directory deleted"
psqlq "$port" "SELECT pg_switch_wal()" >/dev/null
for i in $(seq 1 100); do
	ok=$(psql -X -At -p "$port" -c "SELECT recoverable FROM bk_restore_point('$marked') WHERE scope = 'database'")
	[ "$ok" = t ] && break
	sleep 0.2
done
psql -X -p "$port" -c "SELECT scope, recoverable, backup_id, backup_time, distance, restore_type, coalesce(command, reason) AS how FROM bk_restore_point('$marked')"
pgbk restore --config "$demo/pgbk.conf" --to "$demo/restored" --target-time "$marked" \
	--files-to "$demo/restored-files" --start --port "$port2"
got=$(psql -X -At -p "$port2" -c "SELECT count(*) || ' rows, sum ' || sum(abalance) FROM pgbench_accounts")
echo "restored copy: $got"
if [ "$got" = "$expected" ]; then
	echo "the restored database equals the database at the marked moment"
else
	echo "MISMATCH: expected $expected" >&2
	exit 1
fi
if diff -r --exclude=cache "$demo/app-at-marked-moment" "$demo/restored-files" >/dev/null &&
	[ ! -e "$demo/restored-files/var/cache" ]; then
	echo "the restored files equal the files at the marked moment (var/cache excluded, as configured)"
else
	echo "MISMATCH in the restored files" >&2
	exit 1
fi
psql -X -p "$port" -c "SELECT component, status, left(detail, 80) AS detail FROM bk_status"

say "Done.  Files are in $demo (servers stopped)."
