#!/usr/bin/env bash
# deps.sh GROUP...: install the Debian 12 packages a job needs, if missing.
#   build  compile the extension and the programs
#   test   run every test (PostgreSQL TAP modules, cmocka, RadosGW, restic)
#   demo   run `make demo`
#   bench  run the benchmarks (pgBackRest is the peer)
# Run as root (it calls apt-get); as another user it only lists what is
# missing and fails.
set -euo pipefail

declare -A groups=(
  [build]="build-essential pkg-config postgresql-15 postgresql-server-dev-15 libpq-dev
           libcurl4-openssl-dev libssl-dev libsodium-dev libzstd-dev libxxhash-dev libxml2-dev libcjson-dev
           clang-format"
  [test]="libipc-run-perl libcmocka-dev radosgw ceph-mon ceph-osd restic openssl
          inotify-tools curl procps"
  [demo]="restic openssl procps"
  [bench]="pgbackrest zstd radosgw ceph-mon ceph-osd openssl procps"
)

want=()
for g in "$@"; do
  [ -n "${groups[$g]+x}" ] || { echo "deps.sh: unknown group \"$g\"" >&2; exit 2; }
  for p in ${groups[$g]}; do want+=("$p"); done
done

missing=()
for p in "${want[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run as root: apt-get install --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps package scripts from starting services (the Debian
# "main" cluster, ceph daemons): tests start their own servers.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
exit 0
