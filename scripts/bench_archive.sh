#!/usr/bin/env bash
# bench_archive.sh: the archiving benchmarks of issue 2, pgbk against
# pgBackRest 2.45 on the same machine, the same RadosGW (over TLS) and the
# same WAL, in the same run.  Run by hand (as root: it installs what is
# missing, builds and installs, then runs as postgres):
#
#   scripts/bench_archive.sh            # BENCH_SEGMENTS=120 BENCH_ROUNDS=2
#
# It prints:
#   1. drain: >= BENCH_SEGMENTS WAL segments generated with archiving paused,
#      then drained once by pgbk (archive_library, 2 uploaders) and once by
#      pgBackRest (archive-push, archive-async=y, process-max=2,
#      compress-type=zst, repo1-cipher-type=aes-256-cbc), alternating,
#      BENCH_ROUNDS rounds: segments/s and bytes stored, and the ratios;
#   2. archive callback time while the uploaders keep up (pgbench): p50, p99;
#   3. pgbench TPS with pgbk archiving vs archive_mode = off, after a warm-up
#      run, alternating the order (off-on, on-off, ...), BENCH_PGBENCH_SECONDS
#      each; into a local repository and into RadosGW (2 and 3 both);
#   4. uploader memory (peak RSS) with a small and a large backlog.
#
# BENCH_PARTS="1 3" runs only those parts (default: all four).
# Each drain round also prints the machine's CPU busy share while it ran
# (the tools and RadosGW share the cores).  To see where the time goes:
# BENCH_TRACE=1 writes the backlog (.ready count) over time to $dir/trace;
# BENCH_PERF=1 records 3 s of every process (perf record -a -g) at the start
# of each pgbk drain into $dir/perf-pgbk-r<round>.data (it lowers
# kernel.perf_event_paranoid to -1 so that the postgres user may).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build bench
	if [ -n "${BENCH_PERF:-}" ]; then
		echo "BENCH_PERF: setting kernel.perf_event_paranoid = -1 (was $(cat /proc/sys/kernel/perf_event_paranoid))" >&2
		echo -1 > /proc/sys/kernel/perf_event_paranoid
	fi
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-archive}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- env BENCH_SEGMENTS="${BENCH_SEGMENTS:-}" \
		BENCH_ROUNDS="${BENCH_ROUNDS:-}" BENCH_PGBENCH_SECONDS="${BENCH_PGBENCH_SECONDS:-}" \
		BENCH_UPLOAD_WORKERS="${BENCH_UPLOAD_WORKERS:-}" BENCH_PERF="${BENCH_PERF:-}" \
		BENCH_PARTS="${BENCH_PARTS:-}" BENCH_TRACE="${BENCH_TRACE:-}" \
		"$top/scripts/bench_archive.sh" --as-user "$dir"
fi
dir=${2:-${BENCH_DIR:-/var/tmp/pgbk-bench-archive}}
mkdir -p "$dir"
cd "$dir"
SEGS=${BENCH_SEGMENTS:-120}
ROUNDS=${BENCH_ROUNDS:-2}
PARTS=" ${BENCH_PARTS:-1 2 3 4} "
part() { [[ $PARTS == *" $1 "* ]]; }
PGB_SECS=${BENCH_PGBENCH_SECONDS:-20}
bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
port=5590
export PGHOST="$dir" PGPORT=$port PGDATABASE=postgres
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

cleanup() {
	pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	pg_ctl -D "$dir/small" -m immediate stop >/dev/null 2>&1 || true
	"$top/scripts/rgw.sh" stop "$dir/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT

now() { date +%s.%N; }
# busy and idle CPU ticks of the whole machine, from /proc/stat
cpu_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6; exit}' /proc/stat; }
# "CPU busy N%": the share of all cores' time not idle (nor in I/O wait) between two cpu_ticks
cpu_share() {				# $1 "busy idle" before, $2 after
	local b0 i0 b1 i1
	read -r b0 i0 <<<"$1"; read -r b1 i1 <<<"$2"
	awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "CPU busy %.0f%%", (b + i) ? 100 * b / (b + i) : 0 }'
}
# polling without forking (a find | wc every few ms would steal the CPU the
# tools compete for): glob in bash, sleep on a pipe with read -t
exec 9<> <(:)
nap() { read -r -t "$1" -u 9 || true; }
# the uploader workers of the cluster in data dir $1
uploader_pids() { pgrep -P "$(head -1 "$1/postmaster.pid")" -f "pgbk uploader" || true; }
ready_count() {
	local f=("$1"/pg_wal/archive_status/*.ready)
	if [ -e "${f[0]}" ]; then echo "${#f[@]}"; else echo 0; fi
}
# Mark every WAL segment without an archive status as archived (.done).
mark_done() {
	local f
	for f in "$1"/pg_wal/[0-9A-F]*; do
		case ${f##*/} in
		[0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F][0-9A-F]) ;;
		*) continue ;;
		esac
		[ -e "$1/pg_wal/archive_status/${f##*/}.ready" ] || [ -e "$1/pg_wal/archive_status/${f##*/}.done" ] ||
			touch "$1/pg_wal/archive_status/${f##*/}.done"
	done
}
wait_drained() {
	local data=$1 deadline=$((SECONDS + 1800)) f
	shopt -s nullglob
	while :; do
		f=("$data"/pg_wal/archive_status/*.ready)
		[ ${#f[@]} -eq 0 ] && break
		if [ -n "${BENCH_TRACE:-}" ] && [ "${#f[@]}" != "${last:-}" ]; then
			last=${#f[@]}; echo "$(now) ${#f[@]}" >> "$dir/trace"
		fi
		[ $SECONDS -lt $deadline ] || { log "drain timed out"; shopt -u nullglob; return 1; }
		nap 0.02
	done
	shopt -u nullglob
}
bucket_bytes() {
	radosgw-admin -c "$dir/rgw/ceph.conf" -n client.rgw.a bucket stats --bucket="$1" 2>/dev/null |
		perl -0ne 'print $1 if /"rgw.main":\s*\{[^}]*?"size":\s*(\d+)/s' || true
}

log "starting RadosGW"
"$top/scripts/rgw.sh" start "$dir/rgw" >/dev/null
. "$dir/rgw/env"
host_port=${RGW_ENDPOINT_HTTPS#https://}
rgw_port=${host_port##*:}
umask 077
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$RGW_ACCESS_KEY" "$RGW_SECRET_KEY" > "$dir/credentials"
pgbk keygen "$dir/pgbk.key" 2>/dev/null
umask 022

pgbk_conf() {				# $1 bucket
	cat > "$dir/pgbk-$1.conf" <<EOF
repository = 's3://$1/wal-bench'
s3_endpoint = '$RGW_ENDPOINT_HTTPS'
s3_ca_file = '$RGW_CA_FILE'
s3_uri_style = path
s3_credentials_file = '$dir/credentials'
key_file = '$dir/pgbk.key'
compression = zstd
compression_level = 3
EOF
	echo "$dir/pgbk-$1.conf"
}

pgbr_conf() {				# $1 bucket $2 data dir
	mkdir -p "$dir/pgbr-$1/spool" "$dir/pgbr-$1/log" "$dir/pgbr-$1/lock"
	cat > "$dir/pgbr-$1/pgbackrest.conf" <<EOF
[global]
repo1-type=s3
repo1-s3-endpoint=s3.localhost
repo1-storage-host=127.0.0.1
repo1-storage-port=$rgw_port
repo1-storage-ca-file=$RGW_CA_FILE
repo1-s3-bucket=$1
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
spool-path=$dir/pgbr-$1/spool
log-path=$dir/pgbr-$1/log
lock-path=$dir/pgbr-$1/lock
log-level-console=warn
log-level-file=info

[bench]
pg1-path=$2
pg1-port=$port
pg1-socket-path=$dir
EOF
	chmod 600 "$dir/pgbr-$1/pgbackrest.conf"
	echo "$dir/pgbr-$1/pgbackrest.conf"
}

###########################################################################
log "generating >= $SEGS WAL segments with archiving paused"
initdb -D "$dir/pristine" -A trust >/dev/null
cat >> "$dir/pristine/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
archive_mode = on
archive_command = 'false'
shared_preload_libraries = 'pgbk'
pgbk.upload_workers = ${BENCH_UPLOAD_WORKERS:-2}
log_min_messages = warning
EOF
pg_ctl -D "$dir/pristine" -l "$dir/pristine.log" -w start >/dev/null
psql -X -q -c "CREATE EXTENSION pgbk"
# a bulk load (COPY, index builds) and then OLTP updates: the WAL of a
# database being filled and then used
pgbench -i -s $(( SEGS * 2 / 3 )) -q >/dev/null 2>&1
pgbench -c 4 -j 2 -T 10 >/dev/null 2>&1
i=0
while [ "$(ready_count "$dir/pristine")" -lt "$SEGS" ]; do
	# OLTP-like updates over the table (page images after each checkpoint)
	psql -X -q -c "CHECKPOINT" -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 50 = $((i % 50))"
	i=$((i + 1))
done
psql -X -q -c "CHECKPOINT"
pg_ctl -D "$dir/pristine" -m fast stop >/dev/null
n=$(ready_count "$dir/pristine")
raw=$(( n * 16 ))
log "$n segments ready ($raw MB of WAL)"

declare -A secs bytes
run_pgbk() {				# $1 round
	local b="pgbk-r$1" conf t0 t1 c0 c1
	"$top/scripts/rgw.sh" make-bucket "$dir/rgw" "$b" >/dev/null
	conf=$(pgbk_conf "$b")
	rm -rf "$dir/data"; cp -a "$dir/pristine" "$dir/data"
	# write the copy out now: its writeback is not the tools' work, and it
	# would land in whichever drain happens to run while it lasts
	sync
	cat >> "$dir/data/postgresql.conf" <<EOF
archive_library = 'pgbk'
pgbk.config = ''
EOF
	pg_ctl -D "$dir/data" -l "$dir/data.log" -w start >/dev/null
	# the setup step an operator runs first, as stanza-create is pgBackRest's
	# (which also writes into its bucket before the clock starts)
	pgbk check --config "$conf" >/dev/null
	psql -X -q -c "ALTER SYSTEM SET pgbk.config = '$conf'"
	t0=$(now); c0=$(cpu_ticks)
	[ -z "${BENCH_TRACE:-}" ] || echo "$t0 start pgbk $1" >> "$dir/trace"
	psql -X -q -c "SELECT pg_reload_conf()" >/dev/null
	if [ -n "${BENCH_PERF:-}" ]; then
		perf record -a -g -o "$dir/perf-pgbk-r$1.data" -- sleep 3 >/dev/null 2>&1 &
	fi
	wait_drained "$dir/data"
	t1=$(now); c1=$(cpu_ticks)
	wait
	for p in $(uploader_pids "$dir/data"); do
		awk -v p="$p" '/VmHWM/ {print "uploader " p " peak RSS " $2 " kB"}' /proc/$p/status >&2 || true
	done
	pg_ctl -D "$dir/data" -m fast stop >/dev/null
	secs[pgbk-$1]=$(echo "$t1 - $t0" | bc -l)
	bytes[pgbk-$1]=$(bucket_bytes "$b")
	log "pgbk round $1: ${secs[pgbk-$1]} s, ${bytes[pgbk-$1]} bytes stored, $(cpu_share "$c0" "$c1")"
}

run_pgbr() {				# $1 round
	local b="pgbr-r$1" conf t0 t1 c0 c1
	"$top/scripts/rgw.sh" make-bucket "$dir/rgw" "$b" >/dev/null
	rm -rf "$dir/data"; cp -a "$dir/pristine" "$dir/data"
	# write the copy out now: its writeback is not the tools' work, and it
	# would land in whichever drain happens to run while it lasts
	sync
	conf=$(pgbr_conf "$b" "$dir/data")
	pg_ctl -D "$dir/data" -l "$dir/data.log" -w start >/dev/null
	pgbackrest --config="$conf" --stanza=bench stanza-create >/dev/null
	psql -X -q -c "ALTER SYSTEM SET archive_command = 'pgbackrest --config=$conf --stanza=bench archive-push %p'"
	t0=$(now); c0=$(cpu_ticks)
	[ -z "${BENCH_TRACE:-}" ] || echo "$t0 start pgbr $1" >> "$dir/trace"
	psql -X -q -c "SELECT pg_reload_conf()" >/dev/null
	wait_drained "$dir/data"
	t1=$(now); c1=$(cpu_ticks)
	pg_ctl -D "$dir/data" -m fast stop >/dev/null
	secs[pgbr-$1]=$(echo "$t1 - $t0" | bc -l)
	bytes[pgbr-$1]=$(bucket_bytes "$b")
	log "pgBackRest round $1: ${secs[pgbr-$1]} s, ${bytes[pgbr-$1]} bytes stored, $(cpu_share "$c0" "$c1")"
}

if part 1; then
	for r in $(seq 1 "$ROUNDS"); do
		run_pgbk "$r"
		run_pgbr "$r"
	done

	echo
	echo "== 1. Archive drain: $n segments (16 MiB each), RadosGW over TLS, same run"
	printf '%-12s %6s %10s %12s %14s\n' tool round seconds "segments/s" "bytes stored"
	tot_k=0; tot_r=0; b_k=0; b_r=0
	for r in $(seq 1 "$ROUNDS"); do
		for t in pgbk pgbr; do
			s=${secs[$t-$r]}
			printf '%-12s %6s %10.2f %12.1f %14s\n' "$([ $t = pgbk ] && echo pgbk || echo pgBackRest)" "$r" "$s" \
				"$(echo "$n / $s" | bc -l)" "${bytes[$t-$r]}"
		done
		tot_k=$(echo "$tot_k + ${secs[pgbk-$r]}" | bc -l); tot_r=$(echo "$tot_r + ${secs[pgbr-$r]}" | bc -l)
		b_k=$(( b_k + ${bytes[pgbk-$r]:-0} )); b_r=$(( b_r + ${bytes[pgbr-$r]:-0} ))
	done
	for r in $(seq 1 "$ROUNDS"); do
		printf 'round %s: segments/s ratio %.2fx\n' "$r" "$(echo "${secs[pgbr-$r]} / ${secs[pgbk-$r]}" | bc -l)"
	done
	printf 'ratio pgbk/pgBackRest: segments/s %.2fx (target >= 2.0), bytes stored %.3fx (target <= 1.05)\n' \
		"$(echo "$tot_r / $tot_k" | bc -l)" "$(echo "$b_k / $b_r" | bc -l)"
fi

###########################################################################
# Twice: into a local repository (the embedded default: what pgbk itself
# costs the server) and into RadosGW over TLS (which here also takes its CPU
# from the same 2 cores, as a remote S3 would not).
tps_compare() {				# $1 label, $2 pgbk.conf
	local label=$1 conf=$2 r mode order tps on_sum=0 off_sum=0 t
	local -a tps_on=() tps_off=()
	rm -rf "$dir/data"; cp -a "$dir/pristine" "$dir/data"
	rm -f "$dir/data/pg_wal/archive_status/"*.ready
	mark_done "$dir/data"
	cat >> "$dir/data/postgresql.conf" <<EOF
archive_library = 'pgbk'
pgbk.config = '$conf'
archive_timeout = 60
archive_mode = off
EOF
	# a warm-up run, not counted: the first run after the copy is slower
	pg_ctl -D "$dir/data" -l "$dir/data.log" -w start >/dev/null
	pgbench -c 4 -j 2 -T 10 >/dev/null 2>&1
	pg_ctl -D "$dir/data" -m fast stop >/dev/null
	for r in $(seq 1 "$ROUNDS"); do
		# off-on, then on-off: each run leaves the tables a little bigger
		# (and later runs slower), so a fixed order would favour one mode
		order="off on"
		[ $((r % 2)) = 0 ] && order="on off"
		for mode in $order; do
			sed -i "/^archive_mode/d" "$dir/data/postgresql.conf"
			echo "archive_mode = $mode" >> "$dir/data/postgresql.conf"
			# WAL the "off" runs wrote is not this run's work: without
			# this, pgbk's start-up check for segments never marked ready
			# (scheduler.c) would archive it during the run
			[ $mode = on ] && mark_done "$dir/data"
			pg_ctl -D "$dir/data" -l "$dir/data.log" -w start >/dev/null
			tps=$(pgbench -c 4 -j 2 -T "$PGB_SECS" 2>/dev/null | awk '/^tps/ {print $3; exit}')
			if [ $mode = on ]; then
				tps_on+=("$tps")
				wait_drained "$dir/data"
				psql -X -At -c "SELECT '$label callbacks: ' || count(*) || ', p50 ' || percentile_disc(0.5) WITHIN GROUP (ORDER BY us) || ' us, p99 ' || percentile_disc(0.99) WITHIN GROUP (ORDER BY us) || ' us, max ' || max(us) || ' us' FROM pgbk.callback_times()"
			else
				tps_off+=("$tps")
			fi
			pg_ctl -D "$dir/data" -m fast stop >/dev/null
			log "$label round $r archive_mode=$mode: tps $tps"
		done
	done
	for t in "${tps_on[@]}"; do on_sum=$(echo "$on_sum + $t" | bc -l); done
	for t in "${tps_off[@]}"; do off_sum=$(echo "$off_sum + $t" | bc -l); done
	printf '%s: pgbench -c 4 -T %s: tps with pgbk archiving %s, without archiving %s; ratio %.3f (target >= 0.97)\n' \
		"$label" "$PGB_SECS" "${tps_on[*]}" "${tps_off[*]}" "$(echo "$on_sum / $off_sum" | bc -l)"
}
if part 2 || part 3; then
	echo
	echo "== 2 + 3. pgbench with pgbk archiving (callback times) vs archive_mode = off"
	mkdir -p "$dir/tps-repo"
	cat > "$dir/pgbk-tps-local.conf" <<EOF
repository = '$dir/tps-repo'
key_file = '$dir/pgbk.key'
compression = zstd
EOF
	tps_compare "local repository" "$dir/pgbk-tps-local.conf"
	"$top/scripts/rgw.sh" make-bucket "$dir/rgw" pgbk-tps >/dev/null
	tps_compare "RadosGW" "$(pgbk_conf pgbk-tps)"
fi

###########################################################################
part 4 || exit 0
echo
echo "== 4. Uploader memory vs backlog (1 MiB segments, local repository)"
for backlog in 100 2000; do
	rm -rf "$dir/small" "$dir/small-repo"; mkdir "$dir/small-repo"
	initdb -D "$dir/small" -A trust --wal-segsize=1 >/dev/null
	cat > "$dir/small.conf" <<EOF
repository = '$dir/small-repo'
key_file = '$dir/pgbk.key'
EOF
	cat >> "$dir/small/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
archive_mode = on
archive_library = 'pgbk'
shared_preload_libraries = 'pgbk'
pgbk.config = ''
max_wal_size = 4GB
EOF
	pg_ctl -D "$dir/small" -l "$dir/small.log" -w start >/dev/null
	psql -X -q -c "CREATE TABLE t (i int)"
	psql -X -q -c "DO \$\$ BEGIN FOR i IN 1..$backlog LOOP INSERT INTO t VALUES (i); PERFORM pg_switch_wal(); END LOOP; END \$\$" 2>/dev/null ||
		for i in $(seq 1 "$backlog"); do psql -X -q -c "INSERT INTO t VALUES (1); SELECT pg_switch_wal()" >/dev/null; done
	pending=$(ready_count "$dir/small")
	psql -X -q -c "ALTER SYSTEM SET pgbk.config = '$dir/small.conf'"
	psql -X -q -c "SELECT pg_reload_conf()" >/dev/null
	wait_drained "$dir/small"
	peak=$(for p in $(uploader_pids "$dir/small"); do awk '/VmHWM/ {print $2}' /proc/$p/status; done | sort -n | tail -1)
	anon=$(for p in $(uploader_pids "$dir/small"); do awk '/RssAnon/ {print $2}' /proc/$p/status; done | sort -n | tail -1)
	echo "backlog $pending segments: uploader peak RSS ${peak} kB (private ${anon} kB)"
	pg_ctl -D "$dir/small" -m fast stop >/dev/null
done
