#!/usr/bin/env bash
# bench_restore.sh: the restore benchmark of issue 3, pgbk against
# pgBackRest 2.45 on the same machine, the same RadosGW (over TLS), the same
# base backup moment and the same WAL, in the same run.  Run by hand (as
# root: it installs what is missing, builds and installs, then runs as
# postgres):
#
#   scripts/bench_restore.sh            # BENCH_SEGMENTS=120 BENCH_ROUNDS=2
#
# Setup: one cluster archives every WAL file into both repositories
# (archive_command = 'pgbk wal-push ... && pgbackrest archive-push ...'), both
# take a full base backup (bk_base_backup(); pgbackrest backup --type=full,
# process-max=2, zst, aes-256-cbc), then pgbench writes >= BENCH_SEGMENTS
# segments and a target time is recorded after them.
#
# Measured, alternating, BENCH_ROUNDS rounds: restore plus recovery replay
# to that time and promotion, from an empty directory to a promoted server:
#   pgbk:       pgbk restore --target-time T (restore_command = pgbk
#               wal-fetch, prefetch 8), then the start command it prints
#               (pg_ctl -o '-c shared_buffers=...': pgbk sizes the replay's
#               buffers), and wait for promotion
#   pgBackRest: pgbackrest restore --type=time --target=T
#               --target-action=promote (process-max=2), archive-get with
#               archive-async=y, then pg_ctl start and wait for promotion
#   pgBackRest+buffers: the same, started with the shared_buffers pgbk
#               chose, by hand: what pgBackRest gets from the same tuning
# It prints seconds per phase (files, recovery) and the ratios of the totals.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build bench
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-restore}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- env BENCH_SEGMENTS="${BENCH_SEGMENTS:-}" \
		BENCH_ROUNDS="${BENCH_ROUNDS:-}" BENCH_SCALE="${BENCH_SCALE:-}" \
		"$top/scripts/bench_restore.sh" --as-user "$dir"
fi
dir=${2:-${BENCH_DIR:-/var/tmp/pgbk-bench-restore}}
mkdir -p "$dir"
cd "$dir"
SEGS=${BENCH_SEGMENTS:-120}
ROUNDS=${BENCH_ROUNDS:-2}
SCALE=${BENCH_SCALE:-20}
bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
port=5591
rport=5592
export PGHOST="$dir" PGPORT=$port PGDATABASE=postgres
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
	for d in src r-pgbk r-pgbr; do
		pg_ctl -D "$dir/$d" -m immediate stop >/dev/null 2>&1 || true
	done
	"$top/scripts/rgw.sh" stop "$dir/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT

now() { date +%s.%N; }
ready_count() { find "$1/pg_wal/archive_status" -name '*.ready' | wc -l; }
wait_drained() {
	local data=$1 deadline=$(( $(date +%s) + 1800 ))
	while [ "$(ready_count "$data")" -gt 0 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "archiving timed out"; return 1; }
		sleep 0.1
	done
}
# promoted: pg_is_in_recovery() false on the restored server
wait_promoted() {
	local deadline=$(( $(date +%s) + 3600 ))
	until [ "$(psql -X -At -h "$dir" -p $rport -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "promotion timed out"; return 1; }
		sleep 0.05
	done
}

log "starting RadosGW"
"$top/scripts/rgw.sh" start "$dir/rgw" >/dev/null
. "$dir/rgw/env"
host_port=${RGW_ENDPOINT_HTTPS#https://}
rgw_port=${host_port##*:}
"$top/scripts/rgw.sh" make-bucket "$dir/rgw" pgbk-restore >/dev/null
"$top/scripts/rgw.sh" make-bucket "$dir/rgw" pgbr-restore >/dev/null
umask 077
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$RGW_ACCESS_KEY" "$RGW_SECRET_KEY" > "$dir/credentials"
pgbk keygen "$dir/pgbk.key" 2>/dev/null
cat > "$dir/pgbk.conf" <<EOF
repository = 's3://pgbk-restore/bench'
s3_endpoint = '$RGW_ENDPOINT_HTTPS'
s3_ca_file = '$RGW_CA_FILE'
s3_uri_style = path
s3_credentials_file = '$dir/credentials'
key_file = '$dir/pgbk.key'
compression = zstd
EOF
mkdir -p "$dir/pgbr/spool" "$dir/pgbr/log" "$dir/pgbr/lock"
cat > "$dir/pgbr/pgbackrest.conf" <<EOF
[global]
repo1-type=s3
repo1-s3-endpoint=s3.localhost
repo1-storage-host=127.0.0.1
repo1-storage-port=$rgw_port
repo1-storage-ca-file=$RGW_CA_FILE
repo1-s3-bucket=pgbr-restore
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
spool-path=$dir/pgbr/spool
log-path=$dir/pgbr/log
lock-path=$dir/pgbr/lock
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$dir/src
pg1-port=$port
pg1-socket-path=$dir
EOF
pgbr_conf=$dir/pgbr/pgbackrest.conf
umask 022

###########################################################################
log "source cluster: pgbench scale $SCALE, both base backups, >= $SEGS segments of WAL"
initdb -D "$dir/src" -A trust >/dev/null
cat >> "$dir/src/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
archive_mode = on
archive_command = 'pgbk wal-push --config $dir/pgbk.conf --quiet %p && pgbackrest --config=$pgbr_conf --stanza=bench archive-push %p'
shared_preload_libraries = 'pgbk'
pgbk.config = '$dir/pgbk.conf'
pgbk.database = 'postgres'
log_min_messages = warning
EOF
pg_ctl -D "$dir/src" -l "$dir/src.log" -w start >/dev/null
psql -X -q -c "CREATE EXTENSION pgbk"
pgbackrest --config="$pgbr_conf" --stanza=bench stanza-create >/dev/null
pgbench -i -s "$SCALE" -q >/dev/null 2>&1
bid=$(psql -X -At -c "SELECT bk_base_backup()")
log "pgbk base backup $bid"
pgbackrest --config="$pgbr_conf" --stanza=bench backup --type=full >/dev/null
log "pgBackRest full backup done"
start_seg=$(psql -X -At -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
k=0
while :; do
	# OLTP (pgbench) and bulk updates, so that WAL comes quickly
	pgbench -c 4 -j 2 -T 5 >/dev/null 2>&1
	psql -X -q -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 8 = $(( k++ % 8 ))"
	cur=$(psql -X -At -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
	[ $(( 16#${cur:16:8} + 256 * 16#${cur:8:8} - 16#${start_seg:16:8} - 256 * 16#${start_seg:8:8} )) -ge "$SEGS" ] && break
done
target=$(psql -X -At -c "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
checksum=$(psql -X -At -c "SELECT sum(abalance), count(*) FROM pgbench_accounts")
psql -X -q -c "CREATE TABLE after_target AS SELECT 1 AS x; SELECT pg_switch_wal()" >/dev/null
wait_drained "$dir/src"
log "target $target; WAL from $start_seg to $cur archived in both repositories"
pg_ctl -D "$dir/src" -m fast stop >/dev/null
pgbk restore --config "$dir/pgbk.conf" --to "$dir/dry" --target-time "$target" --dry-run |
	sed -n 's/^  WAL: */pgbk plan: WAL /p' >&2

###########################################################################
declare -A total files
buffers=
run_pgbk() {				# $1 round
	local t0 t1 t2 d=$dir/r-pgbk opt
	rm -rf "$d" "$d.log"
	t0=$(now)
	pgbk restore --config "$dir/pgbk.conf" --to "$d" --target-time "$target" --parallel 4 \
		--port $rport --quiet > "$d.out"
	t1=$(now)
	# the start command pgbk printed, with its -o '...' if any
	opt=$(sed -n "s/^  pg_ctl .* -o '\(.*\)' start\$/\1/p" "$d.out")
	buffers=${opt#-c shared_buffers=}
	pg_ctl -D "$d" -l "$d.log" ${opt:+-o "$opt"} -W start >/dev/null
	wait_promoted
	t2=$(now)
	[ "$(psql -X -At -h "$dir" -p $rport -c "SELECT sum(abalance), count(*) FROM pgbench_accounts")" = "$checksum" ] ||
		{ log "pgbk: restored data differs from the target's"; exit 1; }
	pg_ctl -D "$d" -m fast stop >/dev/null
	files[pgbk-$1]=$(echo "$t1 - $t0" | bc -l)
	total[pgbk-$1]=$(echo "$t2 - $t0" | bc -l)
	log "pgbk round $1: files ${files[pgbk-$1]} s, total ${total[pgbk-$1]} s"
}

run_pgbr() {				# $1 round, $2 pgbr or pgbrb (with pgbk's buffers)
	local t0 t1 t2 d=$dir/r-pgbr k=$2 opt=
	[ "$k" = pgbrb ] && [ -n "$buffers" ] && opt="-c shared_buffers=$buffers"
	rm -rf "$d" "$d.log" "$dir/pgbr/spool"/*
	mkdir -m 700 "$d"
	t0=$(now)
	pgbackrest --config="$pgbr_conf" --stanza=bench --pg1-path="$d" --type=time \
		--target="$target" --target-action=promote restore >/dev/null
	t1=$(now)
	cat >> "$d/postgresql.auto.conf" <<EOF
port = $rport
archive_mode = off
EOF
	pg_ctl -D "$d" -l "$d.log" ${opt:+-o "$opt"} -W start >/dev/null
	wait_promoted
	t2=$(now)
	[ "$(psql -X -At -h "$dir" -p $rport -c "SELECT sum(abalance), count(*) FROM pgbench_accounts")" = "$checksum" ] ||
		{ log "pgBackRest: restored data differs from the target's"; exit 1; }
	pg_ctl -D "$d" -m fast stop >/dev/null
	files[$k-$1]=$(echo "$t1 - $t0" | bc -l)
	total[$k-$1]=$(echo "$t2 - $t0" | bc -l)
	log "$k round $1 ($opt): files ${files[$k-$1]} s, total ${total[$k-$1]} s"
}

for r in $(seq 1 "$ROUNDS"); do
	run_pgbk "$r"
	run_pgbr "$r" pgbr
	run_pgbr "$r" pgbrb
done

echo
echo "== Restore + recovery replay to a target time ($SEGS+ WAL segments after the backup), RadosGW over TLS, same run"
echo "pgbk's replay ran with shared_buffers = ${buffers:-its own setting} (the source has 256MB)"
printf '%-20s %6s %12s %14s %10s\n' tool round "files (s)" "recovery (s)" "total (s)"
tk=0; tr=0; tb=0
for r in $(seq 1 "$ROUNDS"); do
	for t in pgbk pgbr pgbrb; do
		case $t in pgbk) name=pgbk ;; pgbr) name=pgBackRest ;; *) name="pgBackRest+buffers" ;; esac
		printf '%-20s %6s %12.2f %14.2f %10.2f\n' "$name" "$r" \
			"${files[$t-$r]}" "$(echo "${total[$t-$r]} - ${files[$t-$r]}" | bc -l)" "${total[$t-$r]}"
	done
	tk=$(echo "$tk + ${total[pgbk-$r]}" | bc -l); tr=$(echo "$tr + ${total[pgbr-$r]}" | bc -l)
	tb=$(echo "$tb + ${total[pgbrb-$r]}" | bc -l)
done
printf 'ratio pgBackRest/pgbk total time: %.2fx (target >= 1.5)\n' "$(echo "$tr / $tk" | bc -l)"
printf 'ratio pgBackRest started by hand with the same shared_buffers/pgbk: %.2fx\n' "$(echo "$tb / $tk" | bc -l)"
