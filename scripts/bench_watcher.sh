#!/usr/bin/env bash
# bench_watcher.sh: the pgbk-watcher benchmark of issue 4, beside a plain
# `inotifywait -m -r` + restic loop on the same tree, in the same run.
# Run by hand (as root: it installs what is missing, builds and installs,
# then runs as postgres, which PostgreSQL needs):
#
#   scripts/bench_watcher.sh      # BENCH_DIRS=10000 BENCH_FILES_PER_DIR=10
#                                 # BENCH_BURSTS=5 BENCH_SETTLE=2 BENCH_IDLE=30
#
# On a tree of BENCH_DIRS directories with BENCH_FILES_PER_DIR files each
# (100,000 files in 10,000 directories by default) it prints, for both:
#   - time to set up the recursive watches;
#   - RSS after setup and peak RSS over the whole run (target for
#     pgbk-watcher: <= 32 MB);
#   - CPU used while idle for BENCH_IDLE seconds (target: ~0);
#   - for BENCH_BURSTS bursts of changes (files modified, created, deleted,
#     a directory renamed): the time from the last change of the burst to
#     the catalog row (pgbk-watcher) or to the end of restic (the loop,
#     which records nothing), next to restic's own run time; pgbk-watcher's
#     target is settle delay + restic's run + 1 s.
# Both use the same settle delay (BENCH_SETTLE seconds), restic binary and
# password; each has its own local restic repository.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" = 0 ] && [ "${1:-}" != --as-user ]; then
	cd "$top"
	scripts/deps.sh build test
	make -s && make -s install
	dir=${BENCH_DIR:-/var/tmp/pgbk-bench-watcher}
	rm -rf "$dir"
	install -d -o postgres -g postgres "$dir"
	exec runuser -u postgres -- env BENCH_DIRS="${BENCH_DIRS:-}" \
		BENCH_FILES_PER_DIR="${BENCH_FILES_PER_DIR:-}" BENCH_BURSTS="${BENCH_BURSTS:-}" \
		BENCH_SETTLE="${BENCH_SETTLE:-}" BENCH_IDLE="${BENCH_IDLE:-}" \
		"$top/scripts/bench_watcher.sh" --as-user "$dir"
fi
dir=${2:-${BENCH_DIR:-/var/tmp/pgbk-bench-watcher}}
mkdir -p "$dir"
cd "$dir"
DIRS=${BENCH_DIRS:-10000}
FPD=${BENCH_FILES_PER_DIR:-10}
BURSTS=${BENCH_BURSTS:-5}
SETTLE=${BENCH_SETTLE:-2}
IDLE=${BENCH_IDLE:-30}
bindir=$(pg_config --bindir)
export PATH="$bindir:/usr/local/bin:$PATH"
port=5591
export PGHOST="$dir" PGPORT=$port PGDATABASE=postgres
tree=$dir/tree
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
# wait_for WHAT CMD...: until CMD succeeds, at most 600 s
wait_for() {
	local what=$1 i
	shift
	for i in $(seq 1 12000); do
		"$@" && return 0
		sleep 0.05
	done
	echo "bench_watcher.sh: timed out waiting for $what" >&2
	exit 1
}
hz=$(getconf CLK_TCK)

watcher_pid=
loop_pid=
cleanup() {
	[ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null && wait "$watcher_pid" 2>/dev/null
	[ -n "$loop_pid" ] && kill -- -"$loop_pid" 2>/dev/null
	pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

for t in restic inotifywait pgbk-watcher pgbk perl psql; do
	command -v "$t" >/dev/null || { echo "bench_watcher.sh: $t is not installed" >&2; exit 1; }
done

# ---------------------------------------------------------------------------
log "generating $((DIRS * FPD)) files in $DIRS directories"
perl -e '
	my ($tree, $dirs, $fpd) = @ARGV;
	my $top = int(sqrt($dirs)) || 1;
	my $n = 0;
	for my $i (0 .. $dirs - 1) {
		my $d = sprintf("%s/d%03d/s%04d", $tree, $i % $top, $i);
		mkdir("$tree"); mkdir(sprintf("%s/d%03d", $tree, $i % $top)); mkdir($d) or die "$d: $!";
		for my $f (1 .. $fpd) {
			open(my $fh, ">", "$d/f$f.dat") or die;
			print $fh ("x" x (100 + ($n++ * 7919) % 3900)), "\n";
			close($fh);
		}
	}' "$tree" "$DIRS" "$FPD"
mkdir -p "$tree/var/cache" "$tree/var/log"
files=$(find "$tree" -type f | wc -l)
ndirs=$(find "$tree" -type d | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
log "tree: $files files, $ndirs directories, $((bytes / 1048576)) MB"

# ---------------------------------------------------------------------------
log "PostgreSQL with the pgbk extension on port $port"
initdb -D "$dir/data" -A trust >/dev/null
cat >> "$dir/data/postgresql.conf" <<EOF
port = $port
unix_socket_directories = '$dir'
listen_addresses = ''
shared_preload_libraries = 'pgbk'
EOF
pg_ctl -D "$dir/data" -l "$dir/pg.log" -w start >/dev/null
psql -qX -c 'CREATE EXTENSION pgbk' -c 'CREATE ROLE pgbk_watcher LOGIN IN ROLE pgbk_recorder'

echo 'bench restic password' > "$dir/restic.pw"
chmod 600 "$dir/restic.pw"
mkdir -p "$dir/pgbkrepo"
pgbk keygen "$dir/pgbk.key" >/dev/null 2>&1
cat > "$dir/pgbk.conf" <<EOF
repository = '$dir/pgbkrepo'
key_file = '$dir/pgbk.key'
EOF
cat > "$dir/watcher.conf" <<EOF
pgbk_config = '$dir/pgbk.conf'
roots = '$tree'
host = 'bench'
conninfo = 'host=$dir port=$port dbname=postgres user=pgbk_watcher'
spool_dir = '$dir/spool'
cache_dir = '$dir/cache'
restic_password_file = '$dir/restic.pw'
settle_delay = ${SETTLE}s
max_wait = $((SETTLE * 10))s
forget_interval = 0
EOF
pgbk-watcher -c "$dir/watcher.conf" --init 2>>"$dir/watcher.log"
export RESTIC_PASSWORD_FILE=$dir/restic.pw RESTIC_CACHE_DIR=$dir/cache
restic -r "$dir/loop-repo" init -q >/dev/null

# /proc figures of a process
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rows() { psql -XAtqc 'SELECT count(*) FROM pgbk.file_snapshot'; }
rows_gt() { [ "$(rows)" -gt "$1" ]; }
lines_gt() { [ "$(wc -l < "$1")" -gt "$2" ]; }

# One burst of changes; prints the time of its last change.
burst() {
	local b=$1
	perl -e '
		my ($tree, $dirs, $b) = @ARGV;
		my $top = int(sqrt($dirs)) || 1;
		for my $k (0 .. 99) {            # 100 files modified across the tree
			my $i = ($k * 97 + $b * 13) % $dirs;
			my $f = sprintf("%s/d%03d/s%04d/f%d.dat", $tree, $i % $top, $i, 1 + $k % 5);
			open(my $fh, ">>", $f) or next; print $fh "burst $b\n"; close($fh);
		}
		my $nd = "$tree/new-$b/a/b";        # a new tree with files
		system("mkdir", "-p", $nd);
		for my $f (1 .. 10) { open(my $fh, ">", "$nd/n$f") or die; print $fh "new $f\n"; close($fh); }
		for my $k (0 .. 4) {               # 5 files deleted
			my $i = ($k * 301 + $b * 17) % $dirs;
			unlink(sprintf("%s/d%03d/s%04d/f%d.dat", $tree, $i % $top, $i, 6 + $k % 4));
		}
		my $i = ($b * 1009) % $dirs;       # a directory renamed
		my $d = sprintf("%s/d%03d/s%04d", $tree, $i % $top, $i);
		rename($d, "$d-renamed-$b");
	' "$tree" "$DIRS" "$b"
	now
}

# "start end" timestamps (epoch seconds) of the watcher's last restic backup
watcher_restic_span() {
	perl -MTime::Local -ne '
		next unless /^(\d+)-(\d+)-(\d+) (\d+):(\d+):(\d+)\.(\d+) .*(taking a snapshot|snapshot [0-9a-f]{8} taken in)/;
		my $t = timelocal($6, $5, $4, $3, $2 - 1, $1) + $7 / 1000;
		if ($8 =~ /^taking/) { $s = $t } else { $e = $t }
		END { printf "%.3f %.3f\n", $s, $e }' "$dir/watcher.log"
}

# ---------------------------------------------------------------------------
log "pgbk-watcher: start, watches, first snapshot of the whole tree"
t0=$(now)
pgbk-watcher -c "$dir/watcher.conf" 2>>"$dir/watcher.log" &
watcher_pid=$!
wait_for 'the watches' grep -q 'watching .* directories' "$dir/watcher.log"
w_setup=$(grep -o 'watching [0-9]* directories under [0-9]* root(s) in [0-9]* ms' "$dir/watcher.log" |
	tail -1 | awk '{printf "%.2f", $(NF-1) / 1000}')
w_watches=$(grep -o 'watching [0-9]* directories' "$dir/watcher.log" | tail -1 | awk '{print $2}')
w_rss_setup=$(rss_kb $watcher_pid)
wait_for 'the first snapshot' rows_gt 0
w_first=$(perl -e 'printf "%.1f", $ARGV[1] - $ARGV[0]' "$t0" "$(now)")
log "pgbk-watcher: $w_watches watches in $w_setup s, first snapshot recorded after $w_first s"

sleep 2
c0=$(cpu_ticks $watcher_pid)
log "pgbk-watcher: idle for $IDLE s"
sleep "$IDLE"
c1=$(cpu_ticks $watcher_pid)
w_idle=$(perl -e 'printf "%.3f", ($ARGV[1] - $ARGV[0]) / $ARGV[2] / $ARGV[3] * 100' "$c0" "$c1" "$hz" "$IDLE")
w_rss_idle=$(rss_kb $watcher_pid)

w_lat=() w_run=() w_rs=()
for b in $(seq 1 "$BURSTS"); do
	n=$(rows)
	last=$(burst "w$b")
	wait_for "the snapshot of burst $b" rows_gt "$n"
	rec=$(psql -XAtqc 'SELECT extract(epoch FROM max(recorded_at)), (SELECT extract(epoch FROM duration) FROM pgbk.file_snapshot ORDER BY recorded_at DESC LIMIT 1) FROM pgbk.file_snapshot')
	read -r span_s span_e <<< "$(watcher_restic_span)"
	lat=$(perl -e 'printf "%.2f", $ARGV[0] - $ARGV[1]' "${rec%%|*}" "$last")
	run=$(perl -e 'printf "%.2f", $ARGV[1] - $ARGV[0]' "$span_s" "$span_e")
	w_lat+=("$lat") w_run+=("$run") w_rs+=("${rec##*|}")
	log "pgbk-watcher burst $b: last change -> catalog row ${lat} s (restic process ${run} s, restic's own summary ${rec##*|} s)"
	sleep $((SETTLE + 1))
done
w_hwm=$(hwm_kb $watcher_pid)
w_rss_end=$(rss_kb $watcher_pid)
kill "$watcher_pid"
wait "$watcher_pid" || true
watcher_pid=

# ---------------------------------------------------------------------------
# The plain loop: inotifywait -m -r, debounce with `read -t`, restic backup.
log "loop: initial restic backup of the tree (not timed against the watcher)"
restic -r "$dir/loop-repo" backup -q --host loop "$tree" --exclude "$tree/var/cache" \
	--exclude "$tree/var/log" >/dev/null
cat > "$dir/loop.sh" <<'EOF'
#!/usr/bin/env bash
# the naive alternative: watch, wait for quiet, back up, note the time
tree=$1 settle=$2 repo=$3 out=$4
inotifywait -m -r -e modify,close_write,attrib,create,delete,move \
	--exclude "^$tree/var/(cache|log)" --format '%w%f' "$tree" 2>"$out.inotify" |
while read -r path; do
	while read -r -t "$settle" path; do :; done
	restic -r "$repo" backup -q --host loop "$tree" --exclude "$tree/var/cache" \
		--exclude "$tree/var/log" >/dev/null 2>>"$out.restic"
	date +%s.%N >> "$out"
done
EOF
chmod +x "$dir/loop.sh"
: > "$dir/loop.done"
t0=$(now)
setsid "$dir/loop.sh" "$tree" "$SETTLE" "$dir/loop-repo" "$dir/loop.done" &
loop_pid=$!
wait_for "inotifywait's watches" grep -q 'Watches established' "$dir/loop.done.inotify"
l_setup=$(perl -e 'printf "%.2f", $ARGV[1] - $ARGV[0]' "$t0" "$(now)")
ipid=$(pgrep -s "$loop_pid" -x inotifywait | head -1)
l_rss_setup=$(rss_kb "$ipid")
sleep 2
c0=$(cpu_ticks "$ipid")
log "loop: idle for $IDLE s"
sleep "$IDLE"
c1=$(cpu_ticks "$ipid")
l_idle=$(perl -e 'printf "%.3f", ($ARGV[1] - $ARGV[0]) / $ARGV[2] / $ARGV[3] * 100' "$c0" "$c1" "$hz" "$IDLE")
l_rss_idle=$(rss_kb "$ipid")
l_lat=()
for b in $(seq 1 "$BURSTS"); do
	n=$(wc -l < "$dir/loop.done")
	last=$(burst "l$b")
	wait_for "the loop's backup of burst $b" lines_gt "$dir/loop.done" "$n"
	lat=$(perl -e 'printf "%.2f", $ARGV[0] - $ARGV[1]' "$(tail -1 "$dir/loop.done")" "$last")
	l_lat+=("$lat")
	log "loop burst $b: last change -> restic done ${lat} s"
	sleep $((SETTLE + 1))
done
l_hwm=$(hwm_kb "$ipid")
kill -- -"$loop_pid" 2>/dev/null || true
loop_pid=

# ---------------------------------------------------------------------------
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maxv() { printf '%s\n' "$@" | sort -n | tail -1; }
mb() { perl -e 'printf "%.1f", $ARGV[0] / 1024' "$1"; }
w_lat_med=$(med "${w_lat[@]}") w_run_med=$(med "${w_run[@]}")
target_ok=$(perl -e '
	my ($settle, @pairs) = @ARGV; my $ok = 1;
	while (@pairs) { my ($l, $r) = splice(@pairs, 0, 2); $ok = 0 if $l > $settle + $r + 1; }
	print $ok ? "met in every burst" : "NOT met in some burst"' "$SETTLE" \
	$(for i in "${!w_lat[@]}"; do echo "${w_lat[$i]} ${w_run[$i]}"; done))

echo
echo "pgbk-watcher benchmark: $files files in $ndirs directories ($((bytes / 1048576)) MB), settle delay ${SETTLE} s, $(nproc) cores"
printf '%-44s %16s %22s\n' '' 'pgbk-watcher' 'inotifywait+restic'
printf '%-44s %16s %22s\n' 'recursive watch setup (s)' "$w_setup" "$l_setup"
printf '%-44s %16s %22s\n' 'RSS after setup (MB)' "$(mb "$w_rss_setup")" "$(mb "$l_rss_setup")"
printf '%-44s %16s %22s\n' 'RSS idle (MB)' "$(mb "$w_rss_idle")" "$(mb "$l_rss_idle")"
printf '%-44s %16s %22s\n' 'peak RSS over the run (MB, target <= 32)' "$(mb "$w_hwm")" "$(mb "$l_hwm")"
printf '%-44s %16s %22s\n' "CPU while idle for $IDLE s (%)" "$w_idle" "$l_idle"
printf '%-44s %16s %22s\n' 'last change -> recorded, median (s)' "$w_lat_med" "$(med "${l_lat[@]}")"
printf '%-44s %16s %22s\n' 'last change -> recorded, max (s)' "$(maxv "${w_lat[@]}")" "$(maxv "${l_lat[@]}")"
printf '%-44s %16s %22s\n' "restic process per burst, median (s)" "$w_run_med" '-'
printf '%-44s %16s %22s\n' "restic's own summary duration, median (s)" "$(med "${w_rs[@]}")" '-'
printf '%-44s %16s %22s\n' 'first snapshot of the tree, recorded (s)' "$w_first" '-'
echo "pgbk-watcher target (settle + restic process + 1 s per burst): $target_ok"
echo "(the loop's 'recorded' is restic's end: it keeps no catalog, spool or full snapshot id)"
echo "pgbk-watcher bursts (latency/restic): $(for i in "${!w_lat[@]}"; do printf '%s/%s ' "${w_lat[$i]}" "${w_run[$i]}"; done)"
echo "loop bursts (latency): ${l_lat[*]}"
