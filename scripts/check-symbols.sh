#!/usr/bin/env bash
# check-symbols.sh: fail if pgbk.so calls a library function whose name the
# postgres executable also exports.  The dynamic linker binds such calls to
# the server's function, not the library's (this is how jansson's
# json_object() turned into PostgreSQL's SQL function json_object() and
# crashed the backup worker).  pgbk now uses one JSON library, cJSON, whose
# names are all prefixed; this check stays as the guard against any library
# added later (or a cJSON release) bringing such a name back.
set -euo pipefail
so=${1:-pgbk.so}
postgres=$(pg_config --bindir)/postgres
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$postgres" | awk '$2 == "T" {print $NF}' | sed 's/@.*//' | sort -u > "$tmp/server"
nm -D --undefined-only "$so" | awk '{print $NF}' | sed 's/@.*//' | sort -u > "$tmp/needed"
: > "$tmp/libs"
for lib in $(ldd "$so" | awk '/=>/ {print $3}'); do
	case "$lib" in */libc.so*|*/libm.so*|*/ld-linux*|*/libpthread*|*/libdl*) continue ;; esac
	nm -D --defined-only "$lib" 2>/dev/null | awk '{print $NF}' | sed 's/@.*//' >> "$tmp/libs"
done
sort -u -o "$tmp/libs" "$tmp/libs"
clash=$(comm -12 "$tmp/needed" "$tmp/server" | comm -12 - "$tmp/libs" || true)
if [ -n "$clash" ]; then
	echo "check-symbols: $so calls library functions that the server also defines:" >&2
	echo "$clash" | sed 's/^/  /' >&2
	exit 1
fi
echo "check-symbols: ok"
