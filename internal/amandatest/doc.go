// Package amandatest finds Debian's Amanda 3.5.1 programs for interoperability tests: the
// real amservice (a client of Holdfast's amandad service) and the real amandad. When they are
// missing a test skips, or fails when CI=true (see package envtest); scripts/setup-testenv.sh
// installs them (amanda-client, amanda-server).
package amandatest
