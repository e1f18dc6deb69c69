package amdumpd_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amandatest"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
	"github.com/holdfast-backup/holdfast/internal/envtest"
)

func startForAmservice(t *testing.T, backend amdumpd.Backend, users ...string) int {
	t.Helper()
	s := &amanda.Server{
		RequireReservedPort: true,
		Hosts:               []amanda.Host{{Name: "localhost", Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Users: users}},
		Services:            map[string]amanda.Handler{"amdumpd": &amdumpd.Service{Backend: backend}},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAmserviceDrivesServer: Debian's real amservice, from a reserved
// port, through every command of the service (spec §9.3).
func TestAmserviceDrivesServer(t *testing.T) {
	paths := amandatest.RequireAmservice(t)
	backend, cfg := newLab()
	cfg.failDisk = map[string]error{diskDir1: errors.New("connect to db1: connection refused")}
	port := startForAmservice(t, backend, "backup")

	a := amandatest.StartAmservice(t, paths, port)
	step := func(cmd string, end *regexp.Regexp, want ...string) {
		t.Helper()
		a.Send(cmd)
		quiet := 5 * time.Second
		if end == nil {
			quiet = time.Second
		}
		got := a.Until(end, quiet)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", cmd, diff)
		}
	}
	step("CONFIG amtest", nil)
	step("FEATURES "+amanda.Amanda351Features, amandatest.EndFeatures, "FEATURES "+amanda.Amanda351Features)
	step("LIST", amandatest.EndList, `"`+diskSpace+`"`, diskDir1, "ENDLIST")
	step(`DISK "`+diskSpace+`"`, amandatest.EndDisk, "DISK "+diskSpace+" added")
	step("DISK /nonexistent", amandatest.EndDisk, "ERROR unknown disk /nonexistent")
	step("BOGUS cmd", regexp.MustCompile(`^invalid`), "invalid command 'BOGUS cmd'")
	step("CHECK", amandatest.EndCheck, append(append([]string{"CHECKING"}, specAmcheck...), "ENDCHECK")...)
	step("DUMP", amandatest.EndDump, "DUMPING", "ENDDUMP")
	step("DISK "+diskDir1, amandatest.EndDisk, "DISK "+diskDir1+" added")
	step("DUMP", amandatest.EndDump, "DUMPING", "FAILED "+diskDir1+" connect to db1: connection refused", "ENDDUMP")
	step("END", nil, "Connected")
	if code := a.Wait(); code != 0 {
		t.Errorf("amservice exit status %d", code)
	}
	if dumps, dumped := cfg.stats(); dumps != 2 || !cmp.Equal(dumped, []string{diskSpace, diskSpace}) {
		t.Errorf("dumps %d of %q", dumps, dumped)
	}
}

// TestAmserviceRefused: a user the host does not list gets a NAK that
// amservice prints, with exit status 1.
func TestAmserviceRefused(t *testing.T) {
	paths := amandatest.RequireAmservice(t)
	backend, _ := newLab()
	port := startForAmservice(t, backend, "nobody")
	a := amandatest.StartAmservice(t, paths, port)
	start := time.Now()
	got := a.Until(nil, 20*time.Second)
	t.Logf("amservice ended after %v", time.Since(start))
	want := []string{"ERROR user backup from localhost is not allowed to execute the service amdumpd: user backup is not among the users of host localhost"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("amservice output (-want +got):\n%s", diff)
	}
	if code := a.Wait(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

// TestAmdumpClient: Debian's amdump_client (which wraps amservice) lists,
// checks and dumps through Holdfast, and prints a failed disk's line.
func TestAmdumpClient(t *testing.T) {
	paths := amandatest.RequireAmservice(t)
	client := filepath.Join(filepath.Dir(paths.Amservice), "amdump_client")
	if _, err := os.Stat(client); err != nil {
		envtest.Missing(t, "amdump_client (Debian package amanda-client): %v", err)
	}
	backend, cfg := newLab()
	cfg.failDisk = map[string]error{diskDir1: errors.New("no space left on device")}
	port := startForAmservice(t, backend, "backup")
	run := func(args ...string) string {
		t.Helper()
		argv := append([]string{"-u", "backup", "--", client, "--config", "amtest",
			"-o", "amdump_server=localhost", "-o", "auth=bsdtcp", "-o", fmt.Sprintf("client_port=%d", port)}, args...)
		out, err := exec.Command(amandatest.Runuser(), argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("amdump_client %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("list"); out != `"`+diskSpace+`"`+"\n"+diskDir1+"\n" {
		t.Errorf("list printed %q", out)
	}
	if out := run("check"); out != "CHECKING\n"+strings.Join(specAmcheck, "\n")+"\nThe check is finished\n" {
		t.Errorf("check printed %q", out)
	}
	if out := run("dump", diskSpace); out != "DUMPING\nThe backup is finished\n" {
		t.Errorf("dump %s printed %q", diskSpace, out)
	}
	if out := run("dump"); out != "DUMPING\nFAILED "+diskDir1+" no space left on device\nThe backup is finished\n" {
		t.Errorf("dump printed %q", out)
	}
	if dumps, dumped := cfg.stats(); dumps != 2 || !cmp.Equal(dumped, []string{diskSpace, diskSpace}) {
		t.Errorf("dumps %d of %q", dumps, dumped)
	}
}
