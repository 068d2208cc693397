#!/usr/bin/env bash
# bench_backup.sh: base backup of a >= 2 GB database to RadosGW (TLS):
# pgbk (SELECT bk_base_backup(), pgbk.backup_parallel = 2) against
# `pgbackrest backup --type=full` (process-max=2, compress-type=zst,
# repo1-cipher-type=aes-256-cbc), same cluster, same server, alternating,
# BENCH_ROUNDS rounds in one run.  Prints seconds, bytes stored and ratios.
# Target: pgbk >= 1.5x as fast.
#
#   scripts/bench_backup.sh          # as root (installs, then runs as postgres)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build bench
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-backup}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- env BENCH_SCALE="${BENCH_SCALE:-}" BENCH_ROUNDS="${BENCH_ROUNDS:-}" \
		"$top/scripts/bench_backup.sh" --as-user "$dir"
fi
dir=${2:-/var/tmp/pgbk-bench-backup}
cd "$dir"
SCALE=${BENCH_SCALE:-140}
ROUNDS=${BENCH_ROUNDS:-2}
bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
port=5592
export PGHOST="$dir" PGPORT=$port PGDATABASE=postgres
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
	pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	"$top/scripts/rgw.sh" stop "$dir/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s.%N; }
bucket_bytes() {
	radosgw-admin -c "$dir/rgw/ceph.conf" -n client.rgw.a bucket stats --bucket="$1" 2>/dev/null |
		perl -0ne 'print $1 if /"rgw.main":\s*\{[^}]*?"size":\s*(\d+)/s' || true
}

log "starting RadosGW"
RGW_MEMSTORE_BYTES=$((12 * 1024 * 1024 * 1024)) "$top/scripts/rgw.sh" start "$dir/rgw" >/dev/null
. "$dir/rgw/env"
rgw_port=${RGW_ENDPOINT_HTTPS##*:}
umask 077
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$RGW_ACCESS_KEY" "$RGW_SECRET_KEY" > "$dir/credentials"
pgbk keygen "$dir/pgbk.key" 2>/dev/null
umask 022

log "creating a database of scale $SCALE"
initdb -D "$dir/data" -A trust >/dev/null
cat >> "$dir/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
shared_preload_libraries = 'pgbk'
archive_mode = on
archive_command = 'true'
pgbk.backup_parallel = 2
log_min_messages = warning
EOF
pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
psql -X -q -c "CREATE EXTENSION pgbk"
pgbench -i -s "$SCALE" -q >/dev/null 2>&1
psql -X -q -c "CHECKPOINT"
size=$(psql -X -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")
bytes=$(psql -X -At -c "SELECT sum(pg_database_size(datname)) FROM pg_database")
log "database size $size"

declare -A secs stored
# Changing archive_library makes PostgreSQL 15's archiver exit; the
# postmaster starts a new one at its next wake-up, up to 60 s later, and a
# backup that waits for its stop segment to be archived waits for that too
# (it cost pgBackRest 44 s in one round and not in the other).  Before
# timing, switch a segment and wait until the new archiver has archived it,
# for both tools alike.
archiver_ready() {
	local seg i
	seg=$(psql -X -At -c "SELECT pg_walfile_name(pg_switch_wal())")
	for i in $(seq 1 1200); do
		[ "$(psql -X -At -c "SELECT coalesce(last_archived_wal >= '$seg', false) FROM pg_stat_archiver")" = t ] && return 0
		sleep 0.1
	done
	log "the archiver did not archive $seg within 120 s"; exit 1
}
run_pgbk() {
	local b="pgbk-r$1" t0 t1
	"$top/scripts/rgw.sh" make-bucket "$dir/rgw" "$b" >/dev/null
	cat > "$dir/$b.conf" <<EOF
repository = 's3://$b/db'
s3_endpoint = '$RGW_ENDPOINT_HTTPS'
s3_ca_file = '$RGW_CA_FILE'
s3_uri_style = path
s3_credentials_file = '$dir/credentials'
key_file = '$dir/pgbk.key'
EOF
	psql -X -q -c "ALTER SYSTEM SET archive_library = 'pgbk'" \
		-c "ALTER SYSTEM SET pgbk.config = '$dir/$b.conf'" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	archiver_ready
	t0=$(now)
	psql -X -q -At -c "SELECT bk_base_backup()" >/dev/null
	t1=$(now)
	secs[pgbk-$1]=$(echo "$t1 - $t0" | bc -l)
	stored[pgbk-$1]=$(bucket_bytes "$b")
	log "pgbk round $1: ${secs[pgbk-$1]} s, ${stored[pgbk-$1]} bytes stored"
}
run_pgbr() {
	local b="pgbr-r$1" t0 t1 conf="$dir/pgbr-r$1/pgbackrest.conf"
	"$top/scripts/rgw.sh" make-bucket "$dir/rgw" "$b" >/dev/null
	mkdir -p "$dir/pgbr-r$1/log" "$dir/pgbr-r$1/lock" "$dir/pgbr-r$1/spool"
	cat > "$conf" <<EOF
[global]
repo1-type=s3
repo1-s3-endpoint=s3.localhost
repo1-storage-host=127.0.0.1
repo1-storage-port=$rgw_port
repo1-storage-ca-file=$RGW_CA_FILE
repo1-s3-bucket=$b
repo1-s3-region=us-east-1
repo1-s3-key=$RGW_ACCESS_KEY
repo1-s3-key-secret=$RGW_SECRET_KEY
repo1-s3-uri-style=path
repo1-path=/pgbackrest
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(head -c 24 /dev/urandom | base64)
compress-type=zst
process-max=2
archive-async=y
spool-path=$dir/pgbr-r$1/spool
log-path=$dir/pgbr-r$1/log
lock-path=$dir/pgbr-r$1/lock
log-level-console=warn
start-fast=y

[bench]
pg1-path=$dir/data
pg1-port=$port
pg1-socket-path=$dir
EOF
	chmod 600 "$conf"
	psql -X -q -c "ALTER SYSTEM SET archive_library = ''" \
		-c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$conf --stanza=bench archive-push %p'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	pgbackrest --config="$conf" --stanza=bench stanza-create >/dev/null
	sleep 1
	archiver_ready
	t0=$(now)
	pgbackrest --config="$conf" --stanza=bench backup --type=full >/dev/null
	t1=$(now)
	secs[pgbr-$1]=$(echo "$t1 - $t0" | bc -l)
	stored[pgbr-$1]=$(bucket_bytes "$b")
	log "pgBackRest round $1: ${secs[pgbr-$1]} s, ${stored[pgbr-$1]} bytes stored (incl. its archive)"
}

for r in $(seq 1 "$ROUNDS"); do
	run_pgbk "$r"
	run_pgbr "$r"
done

echo
echo "== Base backup of a $size database (scale $SCALE) to RadosGW over TLS, same run"
printf '%-12s %6s %10s %12s %16s\n' tool round seconds "MB/s" "bytes stored"
tk=0; tr=0
for r in $(seq 1 "$ROUNDS"); do
	for t in pgbk pgbr; do
		printf '%-12s %6s %10.2f %12.1f %16s\n' "$([ $t = pgbk ] && echo pgbk || echo pgBackRest)" "$r" \
			"${secs[$t-$r]}" "$(echo "$bytes / 1000000 / ${secs[$t-$r]}" | bc -l)" "${stored[$t-$r]}"
	done
	tk=$(echo "$tk + ${secs[pgbk-$r]}" | bc -l); tr=$(echo "$tr + ${secs[pgbr-$r]}" | bc -l)
done
printf 'ratio: pgbk is %.2fx as fast as pgBackRest (target >= 1.5)\n' "$(echo "$tr / $tk" | bc -l)"
