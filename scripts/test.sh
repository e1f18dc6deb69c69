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

"$repo/scripts/setup-testenv.sh"

t0=$EPOCHREALTIME
read -r -a pkgs <<<"${HOLDFAST_TEST_PKGS:-./...}"
echo "test: go vet ${pkgs[*]}"
go vet "${pkgs[@]}"

echo "test: go test -race -count=1 -timeout 60m -p ${HOLDFAST_TEST_P:-2} $* ${pkgs[*]}"
log=$(mktemp /tmp/holdfast-test.XXXXXX)
trap 'rm -f "$log"' EXIT
set +e
go test -race -count=1 -timeout 60m -p "${HOLDFAST_TEST_P:-2}" "$@" "${pkgs[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
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
