#!/usr/bin/env bash
# test.sh: `make test`.  Sets up everything the tests need and runs them all:
# format check, unit tests (cmocka), pg_regress (SQL API), TAP tests
# (PostgreSQL::Test::Cluster, a real RadosGW on 127.0.0.1, real restic).
#
# As root (the README's fresh Debian 12 machine, and CI): installs missing
# Debian packages, builds, installs the extension and the programs, then runs
# the tests as the unprivileged "postgres" user (PostgreSQL refuses to run as
# root) in a copy of the tree under $PGBK_TEST_DIR (default
# /var/tmp/pgbk-check), because the checkout itself may not be readable by
# that user.  As any other user: builds and runs the tests in place and
# expects the packages and `make install` to be done already.
#
# Environment: PROVE_TESTS="t/020_x.pl ..." to run a subset; PROVE_FLAGS.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

report_failures() {
	local dir=$1
	echo "=== test logs of failures (from $dir) ==="
	if [ -f "$dir/tmp_check/regress-out/regression.diffs" ]; then
		echo "--- regression.diffs"
		head -c 200000 "$dir/tmp_check/regress-out/regression.diffs"
	fi
	for f in "$dir"/tmp_check/tap/tmp_check/log/regress_log_*; do
		[ -f "$f" ] || continue
		if grep -q "^not ok\|Dubious\|died\|# Looks like" "$f" 2>/dev/null; then
			echo "--- $f (last 300 lines)"
			tail -n 300 "$f"
		fi
	done
}

if [ "$(id -u)" = 0 ]; then
	scripts/deps.sh build test
	make -s format-check
	make -s
	make -s install
	run=${PGBK_TEST_DIR:-/var/tmp/pgbk-check}
	rm -rf "$run"
	mkdir -p "$run"
	tar -C "$top" --exclude=./.git --exclude=./tmp_check -cf - . | tar -C "$run" -xf -
	chown -R postgres:postgres "$run"
	if ! runuser -u postgres -- env PROVE_TESTS="${PROVE_TESTS:-t/*.pl}" \
		PROVE_FLAGS="${PROVE_FLAGS:---timer}" CI="${CI:-}" \
		make -C "$run" -s check-all; then
		report_failures "$run"
		echo "make test: FAILED"
		exit 1
	fi
else
	make -s format-check
	make -s
	if ! make -s check-all PROVE_FLAGS="${PROVE_FLAGS:---timer}"; then
		report_failures "$top"
		echo "make test: FAILED"
		exit 1
	fi
fi
echo "make test: all tests passed"
