package pgproc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	if PID(dir) != 0 || PIDFileLine(dir, 1) != "" {
		t.Fatal("no postmaster.pid should give nothing")
	}
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("4242\n/data\n1700000000\n5432\n/tmp\n"), 0o600)
	if PID(dir) != 4242 || PIDFileLine(dir, 4) != "5432" || PIDFileLine(dir, 9) != "" || PIDFileLine(dir, 0) != "" {
		t.Fatalf("PID %d, line 4 %q", PID(dir), PIDFileLine(dir, 4))
	}
	log := filepath.Join(dir, "log")
	os.WriteFile(log, []byte("x: starting on port 1\nLOG: could not bind: Address already in use\nx: starting on port 2\nLOG: ready\n"), 0o600)
	if PortTaken(log, "x: starting on port") {
		t.Fatal("the last start did not fail")
	}
	os.WriteFile(log, []byte("x: starting on port 2\nFATAL: Address already in use\n"), 0o600)
	if !PortTaken(log, "x: starting on port") {
		t.Fatal("the last start failed on its port")
	}
}
