#!/usr/bin/env bash
# test.sh runs Holdfast's whole test suite the way CI does: set up (or check) the test
# environment, go vet, then every test with the race detector against real servers.
#
# CI=true is exported unless already set, so a missing server or tool fails the run instead
# of skipping tests (see internal/envtest). Extra arguments go to "go test" (e.g. -run X).
#
# Environment: HOLDFAST_CACHE (default <repo>/.cache), CI, HOLDFAST_TEST_PKGS (packages to
# vet and test, default ./...), HOLDFAST_TEST_P (packages tested at once, default 2: the
# integration tests mostly wait on servers, and the machines have 2 cores).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
export HOLDFAST_CACHE=${HOLDFAST_CACHE:-$repo/.cache}
export CI=${CI:-true}
# libzstd (cgo) compresses archives; the pure-Go encoder is tested below too.
base_goflags=${GOFLAGS:-}
export GOFLAGS="${base_goflags:+$base_goflags }-tags=libzstd"

"$repo/scripts/setup-testenv.sh"

t0=$EPOCHREALTIME
read -r -a pkgs <<<"${HOLDFAST_TEST_PKGS:-./...}"
echo "test: go vet ${pkgs[*]}"
go vet "${pkgs[@]}"

# Two passes, run at the same time (the integration tests mostly wait on servers):
# 1. every package but internal/cli with the race detector;
# 2. internal/cli, the end-to-end proofs, without it: their time goes to zstd and hashing,
#    where the race detector costs 5-10x, and the concurrency they drive is tested under
#    -race in the amanda, amdumpd, archive, blob and pgrepl packages themselves.
mapfile -t all < <(go list "${pkgs[@]}")
race=()
e2e=()
for p in "${all[@]}"; do
	if [ "$p" = github.com/holdfast-backup/holdfast/internal/cli ]; then e2e+=("$p"); else race+=("$p"); fi
done
log=$(mktemp /tmp/holdfast-test.XXXXXX)
log2=$(mktemp /tmp/holdfast-test.XXXXXX)
trap 'rm -f "$log" "$log2"' EXIT
set +e
echo "test: go test -race -count=1 -timeout 45m -p ${HOLDFAST_TEST_P:-2} -parallel 4 $* (${#race[@]} packages)"
go test -race -count=1 -timeout 45m -p "${HOLDFAST_TEST_P:-2}" -parallel 4 "$@" "${race[@]}" >"$log" 2>&1 &
racepid=$!
rc2=0
if [ ${#e2e[@]} -gt 0 ]; then
	echo "test: go test -count=1 -timeout 45m -parallel 3 $* ${e2e[*]}"
	go test -count=1 -timeout 45m -parallel 3 "$@" "${e2e[@]}" >"$log2" 2>&1
	rc2=$?
fi
# Tests named ...NoRace check what the race detector's runtime changes
# (allocation counts); they run here, in a build without it.
echo "test: go test -count=1 -run NoRace ./internal/archive"
go test -count=1 -run NoRace ./internal/archive >>"$log2" 2>&1 || rc2=$?
# The archive package once more with the pure-Go zstd encoder and decoder (a plain go build).
echo "test: go test -count=1 ./internal/archive (pure-Go zstd, GOFLAGS=$base_goflags)"
GOFLAGS=$base_goflags go test -count=1 ./internal/archive >>"$log2" 2>&1 || rc2=$?
# CRC-32C without the AVX-512 fold (what CPUs without it run).
echo "test: go test -count=1 -tags purego ./internal/crc32c"
GOFLAGS=$base_goflags go test -count=1 -tags purego ./internal/crc32c >>"$log2" 2>&1 || rc2=$?
wait "$racepid"
rc=$?
cat "$log" "$log2"
cat "$log2" >>"$log"
[ "$rc" -eq 0 ] && rc=$rc2
set -e

dur=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0fs", b - a }')
echo
echo "== test summary (CI=$CI, $dur) =="
grep -E '^(ok|FAIL|--- FAIL|panic:)' "$log" || true
echo "packages: $(grep -c '^ok' "$log" || true) ok, $(grep -cE '^FAIL[[:space:]]' "$log" || true) failed"
if [ "$rc" -eq 0 ]; then
	echo "test: PASS"
else
	echo "test: FAIL (go test exit $rc)"
fi
exit "$rc"
