// Package s3test runs a throwaway S3-compatible server for tests: versitygw (posix backend,
// with versioning) on 127.0.0.1, with random root credentials, in a temporary directory.
// t.Cleanup stops it.
//
// The binary is $HOLDFAST_CACHE/bin/versitygw, installed by scripts/setup-testenv.sh; when it
// is missing a test skips, or fails when CI=true (see package envtest).
package s3test
