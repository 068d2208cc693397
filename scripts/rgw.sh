#!/usr/bin/env bash
# rgw.sh: a throwaway Ceph RadosGW (a real, signature-checking S3 server) on
# 127.0.0.1 for tests and benchmarks.  One monitor, one memstore OSD and a
# radosgw (beast, plain HTTP + HTTPS with a generated CA) all live under DIR.
#
#   rgw.sh start DIR             start everything, create a user and a bucket,
#                                write DIR/env (shell-sourceable)
#   rgw.sh stop DIR              stop exactly the processes start started
#   rgw.sh stop-gateway DIR      stop radosgw only (mon/osd keep the data)
#   rgw.sh start-gateway DIR     start radosgw again on the same ports
#   rgw.sh make-bucket DIR NAME  create another bucket
#
# Environment overrides for start: RGW_MON_PORT, RGW_HTTP_PORT,
# RGW_HTTPS_PORT (default: free ports), RGW_ACCESS_KEY, RGW_SECRET_KEY,
# RGW_BUCKET (default pgbk-test), RGW_MEMSTORE_BYTES (default 4 GB).
#
# Works as root and as an unprivileged user (PostgreSQL tests run as one).
# memstore keeps objects in the OSD's memory: `stop` loses all data, while
# stop-gateway/start-gateway keep it (the mon and the OSD keep running).
# See shared/notes/s3-test-server.md for why ceph.conf looks like this.
set -euo pipefail

me=rgw.sh
die() { echo "$me: $*" >&2; exit 1; }

usage() {
	echo "usage: $me start DIR | stop DIR | stop-gateway DIR | start-gateway DIR | make-bucket DIR NAME" >&2
	exit 2
}

# Pick N distinct free TCP ports on 127.0.0.1 (all bound at once, then
# released, so they differ; a tiny race with other programs remains).
free_ports() {
	perl -MIO::Socket::INET -e '
		my @s;
		for (1 .. $ARGV[0]) {
			my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
				Proto => "tcp", Listen => 1, ReuseAddr => 1) or die "bind: $!\n";
			push @s, $s;
		}
		print join(" ", map { $_->sockport } @s), "\n";' "$1"
}

# true while PID runs and is the program we started (its comm is PROG).  A
# zombie counts as gone once it has no threads left: the leader of a
# multi-threaded daemon turns zombie before its other threads have exited and
# its sockets are closed.
pid_alive() {
	local pid=$1 prog=$2 comm state ntasks
	[ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
	comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
	[ "$comm" = "$prog" ] || return 1
	state=$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	if [ "$state" = Z ]; then
		ntasks=$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ "$ntasks" -gt 1 ] || return 1
	fi
	return 0
}

# wait_port_closed PORT: until nothing accepts connections on 127.0.0.1:PORT
# (a dying radosgw can still complete TCP handshakes and then reset them)
wait_port_closed() {
	perl -MIO::Socket::INET -MTime::HiRes=sleep -e '
		for (1 .. 100) {
			my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0],
				Proto => "tcp", Timeout => 1);
			exit 0 unless $s;
			close $s;
			sleep 0.1;
		}
		exit 1;' "$1" || echo "$me: port $1 still accepts connections" >&2
}

# kill_pids SIGNAL PID:PROG...: signal those of our processes still alive
# (checking each is still the program we started), then wait until all are
# gone.  Data lives in memory, so there is nothing to flush: SIGKILL is the
# fast and sure way to stop (about 1 s for all three).
kill_pids() {
	local sig=$1 p left
	shift
	for p in "$@"; do
		if pid_alive "${p%%:*}" "${p#*:}"; then
			kill "-$sig" "${p%%:*}" 2>/dev/null || true
		fi
	done
	for _ in $(seq 1 100); do
		left=0
		for p in "$@"; do
			pid_alive "${p%%:*}" "${p#*:}" && left=1
		done
		[ $left = 0 ] && return 0
		sleep 0.1
	done
	echo "$me: some of $* did not stop" >&2
	return 1
}

# wait_http URL SECONDS: until the gateway answers anything over HTTP
wait_http() {
	local url=$1 secs=$2
	for _ in $(seq 1 $((secs * 10))); do
		if curl -s -o /dev/null --max-time 2 -k "$url"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Run a ceph command against this cluster, quietly.
ceph_cmd() {
	ceph -c "$dir/ceph.conf" --connect-timeout 20 "$@"
}

# A monitor that has just started can turn the first commands away ("EPERM:
# problem getting command descriptions", the client's fsid still zero): try a
# few times.  Both commands used this way are idempotent.
ceph_cmd_retry() {
	local i
	for i in 1 2 3 4 5; do
		ceph_cmd "$@" && return 0
		sleep 1
	done
	return 1
}

start_radosgw() {
	radosgw -c "$dir/ceph.conf" -n client.rgw.a -f </dev/null >>"$dir/log/radosgw.out" 2>&1 &
	echo $! > "$dir/radosgw.pid"
	disown
	if ! wait_http "http://127.0.0.1:$RGW_HTTP_PORT/" 30; then
		tail -n 20 "$dir/log/radosgw.out" "$dir/log/client.rgw.a.log" >&2 2>/dev/null || true
		die "radosgw did not answer on port $RGW_HTTP_PORT (logs in $dir/log)"
	fi
}

gen_certs() {
	local t=$dir/tls
	mkdir -p "$t"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$t/ca.key" -out "$t/ca.crt" -days 3650 -subj "/CN=pgbk test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$t/server.key" -out "$t/server.csr" -subj "/CN=s3.localhost" 2>/dev/null
	cat > "$t/server.ext" <<-EOF
	basicConstraints=CA:FALSE
	keyUsage=critical,digitalSignature,keyEncipherment
	extendedKeyUsage=serverAuth
	subjectAltName=IP:127.0.0.1,DNS:127.0.0.1,DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost
	EOF
	openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" \
		-CAcreateserial -out "$t/server.crt" -days 3650 -extfile "$t/server.ext" 2>/dev/null
	chmod 600 "$t/ca.key" "$t/server.key"
}

# make_bucket NAME: a signed PUT without a query string, which curl's
# built-in SigV4 signs correctly (see the notes)
make_bucket() {
	local name=$1 code
	code=$(curl -s -o "$dir/log/make-bucket.out" -w '%{http_code}' -X PUT \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$RGW_ACCESS_KEY:$RGW_SECRET_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		"http://127.0.0.1:$RGW_HTTP_PORT/$name") || true
	[ "$code" = 200 ] || die "could not create bucket \"$name\": HTTP $code $(cat "$dir/log/make-bucket.out" 2>/dev/null)"
}

cmd_start() {
	local fsid osd_uuid ports
	[ -e "$dir/env" ] && die "\"$dir\" already holds a server (run stop first)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# a DIR used before (start, stop, start again) keeps its logs and its CA
	rm -rf "$dir/mon" "$dir/osd" "$dir/run" "$dir/rgw" "$dir/crash" "$dir/monmap" "$dir/keyring"
	mkdir -p "$dir/log" "$dir/mon/a" "$dir/osd/0" "$dir/rgw" "$dir/crash"
	# admin sockets are Unix sockets (path limit 107 bytes): a deep DIR gets
	# a short run directory of its own under /tmp
	RGW_RUN_DIR=$dir/run
	if [ ${#RGW_RUN_DIR} -gt 70 ]; then
		RGW_RUN_DIR=$(mktemp -d /tmp/rgw-run.XXXXXX)
	fi
	mkdir -p "$RGW_RUN_DIR"

	read -r -a ports <<< "$(free_ports 3)"
	RGW_MON_PORT=${RGW_MON_PORT:-${ports[0]}}
	RGW_HTTP_PORT=${RGW_HTTP_PORT:-${ports[1]}}
	RGW_HTTPS_PORT=${RGW_HTTPS_PORT:-${ports[2]}}
	RGW_ACCESS_KEY=${RGW_ACCESS_KEY:-PGBKTESTACCESSKEY001}
	RGW_SECRET_KEY=${RGW_SECRET_KEY:-pgbkTestSecretKey0000000000000000000000x}
	RGW_BUCKET=${RGW_BUCKET:-pgbk-test}
	local memstore_bytes=${RGW_MEMSTORE_BYTES:-4294967296}

	fsid=$(cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(cat /proc/sys/kernel/random/uuid)
	if [ ! -s "$dir/tls/server.crt" ] || [ ! -s "$dir/tls/ca.crt" ]; then
		gen_certs
	fi

	cat > "$dir/ceph.conf" <<-EOF
	[global]
	fsid = $fsid
	mon host = v1:127.0.0.1:$RGW_MON_PORT
	mon initial members = a
	public addr = 127.0.0.1
	cluster addr = 127.0.0.1
	ms bind msgr2 = false
	auth cluster required = none
	auth service required = none
	auth client required = none
	run dir = $RGW_RUN_DIR
	admin socket = $RGW_RUN_DIR/\$name.asok
	pid file = $RGW_RUN_DIR/\$name.pid
	log file = $dir/log/\$name.log
	crash dir = $dir/crash
	keyring = $dir/keyring
	mon data = $dir/mon/\$id
	osd data = $dir/osd/\$id
	osd objectstore = memstore
	memstore device bytes = $memstore_bytes
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg num = 8
	osd pool default pgp num = 8
	osd pool default pg autoscale mode = off
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon warn on pool no redundancy = false
	mon data avail warn = 1
	mon max pg per osd = 1000
	paxos propose interval = 0.05
	[osd]
	osd class update on start = false
	osd crush update on start = false
	[client.rgw.a]
	rgw data = $dir/rgw
	rgw dns name = s3.localhost
	rgw frontends = beast tcp_nodelay=1 endpoint=127.0.0.1:$RGW_HTTP_PORT ssl_endpoint=127.0.0.1:$RGW_HTTPS_PORT ssl_certificate=$dir/tls/server.crt ssl_private_key=$dir/tls/server.key
	EOF

	# Write what we know so far; a failure from here on stops whatever
	# was started already.
	write_env
	trap 'echo "$me: start failed, stopping what was started" >&2; cmd_stop || true' EXIT

	ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$RGW_MON_PORT]" "$dir/monmap" >/dev/null
	ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" \
		>>"$dir/log/mkfs.out" 2>&1 || die "ceph-mon --mkfs failed (see $dir/log)"
	ceph-mon -c "$dir/ceph.conf" -i a -f </dev/null >>"$dir/log/ceph-mon.out" 2>&1 &
	echo $! > "$dir/mon.pid"
	disown
	write_env

	ceph_cmd_retry osd new "$osd_uuid" >/dev/null 2>>"$dir/log/ceph-cli.out" ||
		die "ceph osd new failed (see $dir/log)"
	ceph_cmd_retry osd crush add osd.0 1.0 root=default host=localhost >/dev/null 2>>"$dir/log/ceph-cli.out" ||
		die "ceph osd crush add failed (see $dir/log)"
	ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/mkfs.out" 2>&1 ||
		die "ceph-osd --mkfs failed (see $dir/log)"
	ceph-osd -c "$dir/ceph.conf" -i 0 -f </dev/null >>"$dir/log/ceph-osd.out" 2>&1 &
	echo $! > "$dir/osd.pid"
	disown
	write_env

	start_radosgw
	write_env

	radosgw-admin -c "$dir/ceph.conf" -n client.rgw.a user create --uid=pgbk --display-name=pgbk \
		--access-key="$RGW_ACCESS_KEY" --secret-key="$RGW_SECRET_KEY" \
		>/dev/null 2>>"$dir/log/radosgw-admin.out" || die "radosgw-admin user create failed (see $dir/log)"
	make_bucket "$RGW_BUCKET"
	trap - EXIT
	echo "$me: S3 on https://127.0.0.1:$RGW_HTTPS_PORT and http://127.0.0.1:$RGW_HTTP_PORT, bucket $RGW_BUCKET"
}

write_env() {
	local f=$dir/env
	{
		echo "RGW_DIR='$dir'"
		echo "RGW_RUN_DIR='$RGW_RUN_DIR'"
		echo "RGW_MON_PORT=$RGW_MON_PORT"
		echo "RGW_HTTP_PORT=$RGW_HTTP_PORT"
		echo "RGW_HTTPS_PORT=$RGW_HTTPS_PORT"
		echo "RGW_ENDPOINT_HTTP='http://127.0.0.1:$RGW_HTTP_PORT'"
		echo "RGW_ENDPOINT_HTTPS='https://127.0.0.1:$RGW_HTTPS_PORT'"
		echo "RGW_CA_FILE='$dir/tls/ca.crt'"
		echo "RGW_ACCESS_KEY='$RGW_ACCESS_KEY'"
		echo "RGW_SECRET_KEY='$RGW_SECRET_KEY'"
		echo "RGW_BUCKET='$RGW_BUCKET'"
		echo "RGW_MON_PID=$(cat "$dir/mon.pid" 2>/dev/null || true)"
		echo "RGW_OSD_PID=$(cat "$dir/osd.pid" 2>/dev/null || true)"
		echo "RGW_RADOSGW_PID=$(cat "$dir/radosgw.pid" 2>/dev/null || true)"
	} > "$f.tmp"
	chmod 600 "$f.tmp"
	mv "$f.tmp" "$f"
}

load_env() {
	[ -r "$dir/env" ] || die "no server in \"$dir\" (no $dir/env)"
	# shellcheck disable=SC1091
	. "$dir/env"
	dir=$RGW_DIR
}

cmd_stop() {
	local rc=0 port
	if [ ! -e "$dir/env" ]; then
		return 0
	fi
	load_env
	kill_pids KILL "$(cat "$dir/radosgw.pid" 2>/dev/null || true):radosgw" \
		"$(cat "$dir/osd.pid" 2>/dev/null || true):ceph-osd" \
		"$(cat "$dir/mon.pid" 2>/dev/null || true):ceph-mon" || rc=1
	for port in "${RGW_HTTP_PORT:-}" "${RGW_HTTPS_PORT:-}" "${RGW_MON_PORT:-}"; do
		[ -z "$port" ] || wait_port_closed "$port"
	done
	rm -f "$dir/radosgw.pid" "$dir/osd.pid" "$dir/mon.pid" "$dir/env"
	# the OSD's memstore and the monitor store are useless without the
	# processes; drop the bulky parts, keep logs for post-mortems
	rm -rf "$dir/osd" "$dir/mon" "$dir/run"
	case "${RGW_RUN_DIR:-}" in
		/tmp/rgw-run.*) rm -rf "$RGW_RUN_DIR" ;;
	esac
	return $rc
}

cmd_stop_gateway() {
	load_env
	kill_pids KILL "$(cat "$dir/radosgw.pid" 2>/dev/null || true):radosgw"
	wait_port_closed "$RGW_HTTP_PORT"
	wait_port_closed "$RGW_HTTPS_PORT"
	rm -f "$dir/radosgw.pid"
	write_env
}

cmd_start_gateway() {
	load_env
	if pid_alive "$(cat "$dir/radosgw.pid" 2>/dev/null || true)" radosgw; then
		return 0
	fi
	start_radosgw
	write_env
}

[ $# -ge 2 ] || usage
action=$1
dir=$2
case "$action" in
	start) cmd_start ;;
	stop) cmd_stop ;;
	stop-gateway) cmd_stop_gateway ;;
	start-gateway) cmd_start_gateway ;;
	make-bucket)
		[ $# -eq 3 ] || usage
		load_env
		make_bucket "$3"
		;;
	*) usage ;;
esac
