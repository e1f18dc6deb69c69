// Package pgproc reads what a running PostgreSQL server leaves on disk
// about itself: postmaster.pid and its log. The test helpers (pgtest) and
// the benchmark harness share it to manage the clusters they start.
package pgproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PIDFileLine returns line n (1-based, trimmed) of dataDir's
// postmaster.pid, or "" when the file or the line is missing.
func PIDFileLine(dataDir string, n int) string {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if n < 1 || len(lines) < n {
		return ""
	}
	return strings.TrimSpace(lines[n-1])
}

// PID is the postmaster's process id from postmaster.pid, or 0.
func PID(dataDir string) int {
	p, _ := strconv.Atoi(PIDFileLine(dataDir, 1))
	return p
}

// PortTaken reports whether the server start logged after the last line
// containing marker failed because its port was in use.
func PortTaken(logFile, marker string) bool {
	b, _ := os.ReadFile(logFile)
	i := bytes.LastIndex(b, []byte(marker))
	return i >= 0 && bytes.Contains(b[i:], []byte("Address already in use"))
}
