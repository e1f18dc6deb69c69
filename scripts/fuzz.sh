#!/usr/bin/env bash
# fuzz.sh runs every fuzz test of the module for a while each (default 10s;
# FUZZTIME=1m bash scripts/fuzz.sh for longer). The seed corpora already run
# as ordinary tests in scripts/test.sh; this explores beyond them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-10s}
rc=0
while IFS= read -r pkg; do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		echo "fuzz: $pkg $name ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/holdfast-fuzz.log 2>&1; then
			cat /tmp/holdfast-fuzz.log
			rc=1
		fi
	done
done < <(go list ./... | while read -r p; do
	d=$(go list -f '{{.Dir}}' "$p")
	grep -lq '^func Fuzz' "$d"/*_test.go 2>/dev/null && echo "$p"
done)
exit "$rc"
