#!/usr/bin/env bash
# fuzz.sh runs every fuzz test of the module for a while each (default 10s;
# FUZZTIME=1m bash scripts/fuzz.sh for longer). The seed corpora already run
# as ordinary tests in scripts/test.sh; this explores beyond them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${FUZZTIME:-10s}
base_goflags=${GOFLAGS:-}
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=libzstd" # as scripts/test.sh builds
log=$(mktemp /tmp/holdfast-fuzz.XXXXXX)
trap 'rm -f "$log"' EXIT
rc=0
while read -r pkg dir; do
	for name in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
		echo "fuzz: $pkg $name ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
			cat "$log"
			rc=1
		fi
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r p d; do
	if grep -lq '^func Fuzz' "$d"/*_test.go 2>/dev/null; then echo "$p $d"; fi
done)
# The pure-Go frame decoder too: libzstd is not coverage-instrumented, so
# FuzzDecodeFrame explores far more with klauspost (it found the RLE frame
# that outgrew its buffer there).
echo "fuzz: ./internal/archive FuzzDecodeFrame, pure Go ($fuzztime)"
if ! GOFLAGS=$base_goflags go test -run '^$' -fuzz '^FuzzDecodeFrame$' -fuzztime "$fuzztime" ./internal/archive >"$log" 2>&1; then
	cat "$log"
	rc=1
fi
exit "$rc"
