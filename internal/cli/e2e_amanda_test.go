package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amandatest"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
)

// startServe runs `holdfast serve` in-process on a free loopback port and
// stops it (as SIGTERM would) when the test ends.
func (e *env) startServe(extra ...string) int {
	e.t.Helper()
	port, stop := e.serve(extra...)
	e.t.Cleanup(func() {
		if code := stop(); code != 0 {
			e.t.Errorf("serve exited %d", code)
		}
	})
	return port
}

// serve runs `holdfast serve` in-process on a free loopback port; stop
// sends it what SIGTERM would and returns its exit code.
func (e *env) serve(extra ...string) (port int, stop func() int) {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out bytes.Buffer
	go func() {
		args := append([]string{"--config-dir", e.configDir, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, extra...)
		done <- Main(ctx, args, strings.NewReader(""), &out, &out)
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(60 * time.Second):
				e.t.Error("serve did not stop within 60 s of SIGTERM")
			}
		})
		return code
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return port, stop
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	e.t.Fatalf("serve is not listening on %d: %s", port, out.String())
	return 0, nil
}

// amandaConfig writes a config whose host localhost (127.0.0.1, user
// backup) has two disks, one with a space in its name.
func (e *env) amandaConfig(c *pgtest.Cluster) {
	e.t.Helper()
	conn := c.ConnString(pgtest.BackupRole)
	y := fmt.Sprintf(`repository: %q
hosts:
  - name: localhost
    addresses: ["127.0.0.1"]
    users: ["backup", %q]
disks:
  - host: localhost
    disk: "pg main"
    postgres: %q
  - host: localhost
    disk: second
    postgres: %q
`, e.repoDir, currentUser(e.t), conn, conn)
	if err := os.WriteFile(filepath.Join(e.configDir, "amtest.yaml"), []byte(y), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// TestAmserviceDumpsWithRealEngine: Debian's real amservice drives
// `holdfast serve` through every command; its DUMP commits a real backup of
// only the selected disk, which verify accepts and which restores.
func TestAmserviceDumpsWithRealEngine(t *testing.T) {
	t.Parallel()
	paths := amandatest.RequireAmservice(t)
	pgtest.Require(t, 18)
	c := pgtest.Start(t, pgtest.Options{Version: 18})
	c.Exec(t, "postgres", `CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 10000) g`)
	e := newEnv(t)
	e.amandaConfig(c)
	port := e.startServe("--require-reserved-port")

	a := amandatest.StartAmservice(t, paths, port)
	step := func(cmd string, end *regexp.Regexp, quiet time.Duration) []string {
		t.Helper()
		a.Send(cmd)
		return a.Until(end, quiet)
	}
	expect := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	step("CONFIG amtest", nil, time.Second)
	expect("FEATURES", step("FEATURES "+amanda.Amanda351Features, amandatest.EndFeatures, 5*time.Second), "FEATURES "+amanda.Amanda351Features)
	expect("LIST", step("LIST", amandatest.EndList, 5*time.Second), `"pg main"`, "second", "ENDLIST")
	expect("DISK", step(`DISK "pg main"`, amandatest.EndDisk, 5*time.Second), "DISK pg main added")
	check := step("CHECK", amandatest.EndCheck, time.Minute)
	if len(check) < 3 || check[0] != "CHECKING" || check[len(check)-1] != "ENDCHECK" || !strings.Contains(strings.Join(check, "\n"), `OK localhost "pg main": wal_level is replica`) {
		t.Errorf("CHECK: %q", check)
	}
	expect("DUMP", step("DUMP", amandatest.EndDump, 2*time.Minute), "DUMPING", "ENDDUMP")
	step("END", nil, time.Second)
	if code := a.Wait(); code != 0 {
		t.Errorf("amservice exit status %d", code)
	}

	bs := e.backups("amtest")
	if len(bs) != 1 || bs[0].Disk != "pg main" || bs[0].Level != "full" {
		t.Fatalf("after DUMP of \"pg main\": %+v", bs)
	}
	e.must("verify", "amtest")
	want := c.Fingerprint(t)
	target := filepath.Join(t.TempDir(), "restored")
	e.must(append([]string{"restore", "amtest", bs[0].ID, "--to", target}, ownerArgs()...)...)
	if got := pgtest.StartOnDataDir(t, 18, target).Fingerprint(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored data differs: %v vs %v", got, want)
	}
}
