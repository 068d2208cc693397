#!/usr/bin/env bash
# bench_incr.sh: the incremental backup benchmark of issue 12, pgbk against
# pgBackRest 2.45 on the same machine, the same RadosGW (over TLS), the same
# cluster and the same changes, in one run.  Run by hand (as root: it
# installs what is missing, builds and installs, then runs as postgres):
#
#   scripts/bench_incr.sh        # BENCH_SCALE=140 (2.1 GB) BENCH_INCREMENTALS=7
#
# Setup: one cluster archives every WAL file into both repositories
# (archive_command = 'pgbk wal-push ... && pgbackrest archive-push ...'; pgbk
# wal-push stores each segment's change summary as the archive module
# does); both take a full backup (bk_base_backup(type => 'full'); pgbackrest
# backup --type=full, process-max=2, zst, aes-256-cbc, start-fast).
# Changes touching about 1 % of the pages: a contiguous UPDATE of
# pgbench_accounts and a short pgbench run.  Then, after archiving has
# drained (so that neither tool waits for the other's archive backlog), an
# incremental by both: bk_base_backup(type => 'incremental'),
# pgbackrest backup --type=incr.  Printed:
#   - seconds and bytes stored (bucket growth) of each incremental, ratios;
#   - bytes the backup processes read (rchar of /proc/PID/io, sampled every
#     20 ms: pgbk's backup workers, pgBackRest's processes) against the
#     changed pages (counted independently: pages whose LSN is past the
#     full's start, by pageinspect) plus the files pgbk copies whole;
#   - restore of a chain of one full and BENCH_INCREMENTALS incrementals
#     (more rounds of changes) against the restore of a full backup taken
#     at the same moment, both to the end of the same WAL, two rounds;
#   - the projected storage of a 180-day depth, daily incrementals and
#     weekly fulls against daily fulls, at the measured change rate.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build bench
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-incr}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- env BENCH_SCALE="${BENCH_SCALE:-}" \
		BENCH_INCREMENTALS="${BENCH_INCREMENTALS:-}" \
		"$top/scripts/bench_incr.sh" --as-user "$dir"
fi
dir=${2:-${BENCH_DIR:-/var/tmp/pgbk-bench-incr}}
mkdir -p "$dir"
cd "$dir"
SCALE=${BENCH_SCALE:-140}
INCS=${BENCH_INCREMENTALS:-7}
bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
port=5593
rport=5594
export PGHOST="$dir" PGPORT=$port PGDATABASE=postgres
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sampler=
cleanup() {
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
	for d in src r-chain r-full; do
		pg_ctl -D "$dir/$d" -m immediate stop >/dev/null 2>&1 || true
	done
	"$top/scripts/rgw.sh" stop "$dir/rgw" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s.%N; }
calc() { echo "$*" | bc -l; }
ready_count() { find "$1/pg_wal/archive_status" -name '*.ready' | wc -l; }
wait_drained() {
	local deadline=$(( $(date +%s) + 1800 ))
	psql -X -q -At -c "SELECT pg_switch_wal()" >/dev/null
	while [ "$(ready_count "$dir/src")" -gt 0 ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "archiving timed out"; exit 1; }
		sleep 0.1
	done
}
wait_promoted() {
	local deadline=$(( $(date +%s) + 3600 ))
	until [ "$(psql -X -At -h "$dir" -p $rport -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
		[ "$(date +%s)" -lt "$deadline" ] || { log "promotion timed out"; exit 1; }
		sleep 0.05
	done
}
bucket_bytes() {
	radosgw-admin -c "$dir/rgw/ceph.conf" -n client.rgw.a bucket stats --bucket="$1" 2>/dev/null |
		perl -0ne 'print $1 if /"rgw.main":\s*\{[^}]*?"size":\s*(\d+)/s' || true
}
# Sample rchar of every process whose command line matches $1 into
# $2/<pid> every 20 ms (the last sample before the process exits is kept).
start_sampler() {
	local pattern=$1 out=$2
	rm -rf "$out"; mkdir -p "$out"
	(
		while :; do
			for p in $(pgrep -u "$(id -u)" -f "$pattern" || true); do
				r=$(sed -n 's/^rchar: //p' "/proc/$p/io" 2>/dev/null) && [ -n "$r" ] && echo "$r" > "$out/$p"
			done
			sleep 0.02
		done
	) &
	sampler=$!
}
stop_sampler() {
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	sampler=
	cat "$1"/* 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}

log "starting RadosGW"
RGW_MEMSTORE_BYTES=$((14 * 1024 * 1024 * 1024)) "$top/scripts/rgw.sh" start "$dir/rgw" >/dev/null
. "$dir/rgw/env"
host_port=${RGW_ENDPOINT_HTTPS#https://}
rgw_port=${host_port##*:}
"$top/scripts/rgw.sh" make-bucket "$dir/rgw" pgbk-incr >/dev/null
"$top/scripts/rgw.sh" make-bucket "$dir/rgw" pgbr-incr >/dev/null
umask 077
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
	"$RGW_ACCESS_KEY" "$RGW_SECRET_KEY" > "$dir/credentials"
pgbk keygen "$dir/pgbk.key" 2>/dev/null
cat > "$dir/pgbk.conf" <<EOF
repository = 's3://pgbk-incr/bench'
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
repo1-s3-bucket=pgbr-incr
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
start-fast=y
spool-path=$dir/pgbr/spool
log-path=$dir/pgbr/log
lock-path=$dir/pgbr/lock
log-level-console=warn

[bench]
pg1-path=$dir/src
pg1-port=$port
pg1-socket-path=$dir
EOF
pgbr_conf=$dir/pgbr/pgbackrest.conf
umask 022
pgbr() { pgbackrest --config="$pgbr_conf" --stanza=bench "$@"; }

###########################################################################
log "source cluster: pgbench scale $SCALE"
initdb -D "$dir/src" -A trust >/dev/null
cat >> "$dir/src/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
archive_mode = on
archive_command = 'pgbk wal-push --config $dir/pgbk.conf --quiet %p && pgbackrest --config=$pgbr_conf --stanza=bench archive-push %p'
shared_preload_libraries = 'pgbk'
pgbk.config = '$dir/pgbk.conf'
pgbk.database = 'postgres'
pgbk.backup_parallel = 2
log_min_messages = warning
EOF
pg_ctl -D "$dir/src" -l "$dir/src.log" -w start >/dev/null
psql -X -q -c "CREATE EXTENSION pgbk" -c "CREATE EXTENSION pageinspect"
pgbr stanza-create >/dev/null
pgbench -i -s "$SCALE" -q >/dev/null 2>&1
psql -X -q -c "CHECKPOINT"
size=$(psql -X -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")
apages=$(psql -X -At -c "SELECT pg_relation_size('pgbench_accounts') / 8192")
log "database size $size, pgbench_accounts $apages pages; archiving the load"
wait_drained

declare -A secs stored readb
# $1 tool (pgbk|pgbr), $2 type, $3 label: one timed backup after a drain
backup() {
	local tool=$1 type=$2 label=$3 b0 b1 t0 t1 id=
	wait_drained
	b0=$(bucket_bytes "$tool-incr")
	if [ "$tool" = pgbk ]; then
		start_sampler 'postgres: pgbk backup' "$dir/io-$label"
		# the backup worker's phases with their start times (its phase is
		# in pg_stat_activity.query), polled every 5 ms from another session
		psql -X -q -At -c "DO \$\$
			DECLARE p text; last text := ''; t0 timestamptz := clock_timestamp(); seen bool := false;
			BEGIN
				FOR i IN 1 .. 12000 LOOP
					PERFORM pg_stat_clear_snapshot();
					SELECT query INTO p FROM pg_stat_activity WHERE backend_type = 'pgbk backup';
					IF p IS NOT NULL THEN seen := true; END IF;
					EXIT WHEN seen AND p IS NULL;
					IF p IS DISTINCT FROM last AND p IS NOT NULL THEN
						RAISE NOTICE '% ms %', round(extract(epoch FROM clock_timestamp() - t0) * 1000), p;
						last := p;
					END IF;
					PERFORM pg_sleep(0.005);
				END LOOP;
			END \$\$" 2> "$dir/phases-$label" &
		phases=$!
		t0=$(now)
		id=$(psql -X -At -c "SELECT bk_base_backup(type => '$type')")
		t1=$(now)
		wait "$phases" || true
		[ "$(psql -X -At -c "SELECT type FROM pgbk.backup WHERE id = '$id'")" = "$type" ] ||
			{ log "pgbk backup $id is not $type"; exit 1; }
		echo "$id" > "$dir/id-$label"
	else
		start_sampler 'pgbackrest.* backup' "$dir/io-$label"
		t0=$(now)
		pgbr backup --type="$type" >/dev/null
		t1=$(now)
	fi
	readb[$label]=$(stop_sampler "$dir/io-$label")
	wait_drained
	b1=$(bucket_bytes "$tool-incr")
	secs[$label]=$(calc "$t1 - $t0")
	stored[$label]=$(( b1 - b0 ))
	log "$label ($tool $type${id:+ $id}): ${secs[$label]} s, ${stored[$label]} bytes stored, ${readb[$label]} bytes read"
}
# about 1 % of the pages: a contiguous update of 0.35 % of the accounts'
# rows (old and new versions: 0.7 % of its pages) and a short pgbench run
changes() {
	local n=$(( apages * 61 * 35 / 10000 )) a
	a=$(( ($1 * 7919 * n) % (apages * 61 - n) + 1 ))
	psql -X -q -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN $a AND $(( a + n - 1 ))"
	pgbench -c 2 -j 2 -t 300 >/dev/null 2>&1
}

log "full backups"
backup pgbk full pgbk-full
backup pgbr full pgbr-full
start_lsn=$(psql -X -At -c "SELECT start_lsn FROM pgbk.backup WHERE id = '$(cat "$dir/id-pgbk-full")'")

log "changes (round 1)"
changes 1
# changed pages, counted by PostgreSQL itself: every page of every relation
# of this database whose LSN is past the full backup's start (the other
# databases do not change)
changed=$(psql -X -At -c "SELECT count(*) FROM pg_class c,
	LATERAL generate_series(0, pg_relation_size(c.oid) / 8192 - 1) b
	WHERE c.relkind IN ('r', 'i', 't', 'm', 'S') AND c.relpersistence = 'p'
	  AND (page_header(get_raw_page(c.oid::regclass::text, b::int))).lsn > '$start_lsn'::pg_lsn")
total_pages=$(psql -X -At -c "SELECT (sum(pg_relation_size(oid)) / 8192)::bigint FROM pg_class WHERE relkind IN ('r', 'i', 't', 'm', 'S')")
# the same pages compressed (zstd -3, one stream: a lower bound for any
# per-object compression), for the "stored <= 1.25x compressed" target
changed_zst=$(psql -X -At -c "SELECT encode(get_raw_page(c.oid::regclass::text, b::int), 'hex') FROM pg_class c,
	LATERAL generate_series(0, pg_relation_size(c.oid) / 8192 - 1) b
	WHERE c.relkind IN ('r', 'i', 't', 'm', 'S') AND c.relpersistence = 'p'
	  AND (page_header(get_raw_page(c.oid::regclass::text, b::int))).lsn > '$start_lsn'::pg_lsn" |
	perl -ne 'chomp; print pack("H*", $_)' | zstd -3 -q -c | wc -c)
log "changed pages: $changed of $total_pages in this database"

log "incremental backups"
backup pgbk incremental pgbk-inc1
backup pgbr incr pgbr-inc1
inc1=$(cat "$dir/id-pgbk-inc1")
# what pgbk copies whole (files without a block list: non-relation files,
# FSM and VM forks), what it read and found unchanged since the parent's
# copy (the same files, a block list "" but not a relation's main fork) and
# the blocks it stored, from its manifest
read -r whole same blocks < <("$top/common/test/itest_repo" "$dir/pgbk.conf" cat "manifest/$inc1" |
	perl -MJSON::PP -0ne '$m = decode_json($_); ($w, $s, $b) = (0, 0, 0);
		for $f (@{ $m->{files} }) {
			if (!defined $f->{blocks}) { $w += $f->{size} }
			elsif ($f->{blocks} eq "" && $f->{path} !~ m{^(base/\d+|global|pg_tblspc/\d+/[^/]+/\d+)/\d+(\.\d+)?$}) { $s += $f->{size} }
			else { for (split /,/, $f->{blocks}) { my ($x, $y) = split /-/; $b += defined $y ? $y - $x + 1 : 1 } }
		} print "$w $s $b\n"')
log "pgbk's incremental: $blocks blocks stored, $whole bytes of files copied whole, $same bytes of files read and found unchanged"
# those files and the manifest, compressed the same way
whole_zst=$("$top/common/test/itest_repo" "$dir/pgbk.conf" cat "manifest/$inc1" |
	perl -MJSON::PP -0ne '$m = decode_json($_); for $f (@{ $m->{files} }) { print "$f->{path}\0" unless defined $f->{blocks} }' |
	(cd "$dir/src" && xargs -0 -r cat 2>/dev/null) | zstd -3 -q -c | wc -c)
manifest_zst=$("$top/common/test/itest_repo" "$dir/pgbk.conf" cat "manifest/$inc1" | zstd -3 -q -c | wc -c)

for r in $(seq 2 "$INCS"); do
	changes "$r"
	backup pgbk incremental "pgbk-inc$r"
done
log "a full backup at the same moment"
backup pgbk full pgbk-full2
chain_id=$(cat "$dir/id-pgbk-inc$INCS")
full_id=$(cat "$dir/id-pgbk-full2")
[ "$(psql -X -At -c "SELECT chain_length FROM pgbk.backup WHERE id = '$chain_id'")" = "$INCS" ] ||
	{ log "backup $chain_id is not the end of a chain of $INCS"; exit 1; }
checksum=$(psql -X -At -c "SELECT sum(abalance), count(*) FROM pgbench_accounts")
wait_drained
pg_ctl -D "$dir/src" -m fast stop >/dev/null

###########################################################################
declare -A rfiles rtotal
restore() {			# $1 label, $2 backup id, $3 round
	local d=$dir/r-$1 t0 t1 t2 opt k="$1-$3"
	rm -rf "$d" "$d.log"
	t0=$(now)
	PGBK_DEBUG_RESTORE_OPENS=1 pgbk restore --config "$dir/pgbk.conf" --to "$d" --backup "$2" \
		--target latest --parallel 4 --port $rport --quiet > "$d.out" 2> "$d.err"
	t1=$(now)
	opt=$(sed -n "s/^  pg_ctl .* -o '\(.*\)' start\$/\1/p" "$d.out")
	pg_ctl -D "$d" -l "$d.log" ${opt:+-o "$opt"} -W start >/dev/null
	wait_promoted
	t2=$(now)
	[ "$(psql -X -At -h "$dir" -p $rport -c "SELECT sum(abalance), count(*) FROM pgbench_accounts")" = "$checksum" ] ||
		{ log "restore of $2: data differs from the source's"; exit 1; }
	pg_ctl -D "$d" -m fast stop >/dev/null
	rfiles[$k]=$(calc "$t1 - $t0")
	rtotal[$k]=$(calc "$t2 - $t0")
	log "restore $1 ($2) round $3: files ${rfiles[$k]} s, total ${rtotal[$k]} s"
}
for r in 1 2; do
	restore chain "$chain_id" "$r"
	restore full "$full_id" "$r"
done
# each output file opened once for writing (PGBK_DEBUG_RESTORE_OPENS logs every open)
opens=$(grep -c 'debug: open for write' "$dir/r-chain.err" || true)
uniq_opens=$(sed -n 's/.*debug: open for write "\([^"]*\)".*/\1/p' "$dir/r-chain.err" | sort -u | wc -l)

###########################################################################
echo
echo "== Incremental backup after changes to about 1 % of the pages of a $size database (scale $SCALE), RadosGW over TLS, same run"
printf '%-28s %10s %16s %16s\n' backup seconds "bytes stored" "bytes read"
for l in pgbk-full pgbr-full pgbk-inc1 pgbr-inc1; do
	printf '%-28s %10.2f %16s %16s\n' "$l" "${secs[$l]}" "${stored[$l]}" "${readb[$l]}"
done
printf 'changed pages (page LSN past the full'"'"'s start): %s of %s (%.2f %%), %s bytes\n' \
	"$changed" "$total_pages" "$(calc "100 * $changed / $total_pages")" "$(( changed * 8192 ))"
printf 'pgbk stored %s blocks; files copied whole %s bytes; files read and found unchanged since the parent %s bytes (not stored)\n' "$blocks" "$whole" "$same"
printf 'stored: pgBackRest/pgbk %.1fx (target >= 10)\n' "$(calc "${stored[pgbr-inc1]} / ${stored[pgbk-inc1]}")"
printf 'time:   pgBackRest/pgbk %.2fx (target >= 5)\n' "$(calc "${secs[pgbr-inc1]} / ${secs[pgbk-inc1]}")"
printf 'read:   pgbk read / (changed pages + whole files, copied or found unchanged) %.2f (target <= 1.25)\n' \
	"$(calc "${readb[pgbk-inc1]} / ($changed * 8192 + $whole + $same)")"
printf 'stored: pgbk stored / (changed pages + whole files) %.3f (compressed and encrypted)\n' \
	"$(calc "${stored[pgbk-inc1]} / ($changed * 8192 + $whole)")"
printf 'stored: pgbk stored / compressed (changed pages %s + whole files %s + manifest %s bytes) %.2f (target <= 1.25)\n' \
	"$changed_zst" "$whole_zst" "$manifest_zst" \
	"$(calc "${stored[pgbk-inc1]} / ($changed_zst + $whole_zst + $manifest_zst)")"
echo "pgbk's incremental, phases of its backup worker (ms after the call):"
sed -n 's/^NOTICE: */  /p' "$dir/phases-pgbk-inc1"
echo
echo "== Restore of a chain (1 full + $INCS incrementals) against a full backup of the same moment, to the same WAL end"
printf '%-8s %6s %12s %10s\n' from round "files (s)" "total (s)"
tc=0; tf=0
for r in 1 2; do
	for l in chain full; do
		printf '%-8s %6s %12.2f %10.2f\n' "$l" "$r" "${rfiles[$l-$r]}" "${rtotal[$l-$r]}"
	done
	tc=$(calc "$tc + ${rtotal[chain-$r]}"); tf=$(calc "$tf + ${rtotal[full-$r]}")
done
printf 'chain/full restore time %.2fx (target <= 1.2); files opened for writing %s, distinct %s\n' \
	"$(calc "$tc / $tf")" "$opens" "$uniq_opens"
echo
inc_avg=0
for r in $(seq 1 "$INCS"); do inc_avg=$(calc "$inc_avg + ${stored[pgbk-inc$r]} / $INCS"); done
full=${stored[pgbk-full]}
printf '180-day depth at this change rate per day (base backups only, WAL alike in both):\n'
printf '  weekly full + daily incrementals: %.2f GB (26 fulls, 154 incrementals of %.1f MB)\n' \
	"$(calc "(26 * $full + 154 * $inc_avg) / 1000000000")" "$(calc "$inc_avg / 1000000")"
printf '  daily full backups:               %.2f GB (180 fulls of %.1f MB)\n' \
	"$(calc "180 * $full / 1000000000")" "$(calc "$full / 1000000")"
