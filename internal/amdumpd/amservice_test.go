package amdumpd_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
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

// requireAmanda returns Amanda's programs, and checks what the tests with
// them need: root (amservice and amandad run as the Amanda user
// "backup", through runuser) and that user.
func requireAmanda(t *testing.T) amandatest.Paths {
	t.Helper()
	paths := amandatest.Require(t)
	if os.Geteuid() != 0 {
		envtest.Missing(t, "the tests with Debian's Amanda run as root (they start amservice/amandad as user backup)")
	}
	if _, err := user.Lookup("backup"); err != nil {
		envtest.Missing(t, "user backup (Debian's Amanda user): %v", err)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		envtest.Missing(t, "runuser (util-linux): %v", err)
	}
	return paths
}

// amservice runs the real amservice as user backup against a server on
// 127.0.0.1:port, with its CTL stream on stdin/stdout (spec §9.3).
type amservice struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{} // closed when amservice has exited
	err   error         // its Wait error, once done
}

func startAmservice(t *testing.T, paths amandatest.Paths, port int, extra ...string) *amservice {
	t.Helper()
	args := append([]string{"-u", "backup", "--", paths.Amservice,
		"-o", fmt.Sprintf("client_port=%d", port),
		"-o", "connect_tries=1", "-o", "req_tries=1", "-o", "ctimeout=15"},
		extra...)
	args = append(args, "-f", "/dev/null", "-s", "localhost", "bsdtcp", "amdumpd")
	cmd := exec.Command("runuser", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &amservice{t: t, cmd: cmd, in: in, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			a.lines <- sc.Text()
		}
		close(a.lines)
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		in.Close()
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
		}
	})
	return a
}

func (a *amservice) send(line string) {
	a.t.Helper()
	if _, err := io.WriteString(a.in, line+"\n"); err != nil {
		a.t.Fatalf("amservice stdin: %v", err)
	}
}

// until collects lines until one matches end (included), the output ends,
// or quiet passes without a line.
func (a *amservice) until(end *regexp.Regexp, quiet time.Duration) []string {
	var got []string
	for {
		select {
		case l, ok := <-a.lines:
			if !ok {
				return got
			}
			got = append(got, l)
			if end != nil && end.MatchString(l) {
				return got
			}
		case <-time.After(quiet):
			return got
		}
	}
}

// wait returns amservice's exit status.
func (a *amservice) wait() int {
	a.t.Helper()
	select {
	case <-a.done:
		var ee *exec.ExitError
		if errors.As(a.err, &ee) {
			return ee.ExitCode()
		}
		if a.err != nil {
			a.t.Fatal(a.err)
		}
		return 0
	case <-time.After(30 * time.Second):
		a.t.Fatal("amservice did not exit")
		return -1
	}
}

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

var (
	endList     = regexp.MustCompile(`^(ENDLIST|CONFIG must)`)
	endCheck    = regexp.MustCompile(`^(ENDCHECK|BUSY|CONFIG must)`)
	endDump     = regexp.MustCompile(`^(ENDDUMP|BUSY|CONFIG must)`)
	endFeatures = regexp.MustCompile(`^FEATURES `)
	endDisk     = regexp.MustCompile(`^(DISK |ERROR |CONFIG must)`)
)

// TestAmserviceDrivesServer: Debian's real amservice, from a reserved
// port, through every command of the service (spec §9.3).
func TestAmserviceDrivesServer(t *testing.T) {
	paths := requireAmanda(t)
	backend, cfg := newLab()
	cfg.failDisk = map[string]error{diskDir1: errors.New("connect to db1: connection refused")}
	port := startForAmservice(t, backend, "backup")

	a := startAmservice(t, paths, port)
	step := func(cmd string, end *regexp.Regexp, want ...string) {
		t.Helper()
		a.send(cmd)
		quiet := 5 * time.Second
		if end == nil {
			quiet = time.Second
		}
		got := a.until(end, quiet)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", cmd, diff)
		}
	}
	step("CONFIG amtest", nil)
	step("FEATURES "+amanda.Amanda351Features, endFeatures, "FEATURES "+amanda.Amanda351Features)
	step("LIST", endList, `"`+diskSpace+`"`, diskDir1, "ENDLIST")
	step(`DISK "`+diskSpace+`"`, endDisk, "DISK "+diskSpace+" added")
	step("DISK /nonexistent", endDisk, "ERROR unknown disk /nonexistent")
	step("BOGUS cmd", regexp.MustCompile(`^invalid`), "invalid command 'BOGUS cmd'")
	step("CHECK", endCheck, append(append([]string{"CHECKING"}, specAmcheck...), "ENDCHECK")...)
	step("DUMP", endDump, "DUMPING", "ENDDUMP")
	step("DISK "+diskDir1, endDisk, "DISK "+diskDir1+" added")
	step("DUMP", endDump, "DUMPING", "FAILED "+diskDir1+" connect to db1: connection refused", "ENDDUMP")
	step("END", nil, "Connected")
	if code := a.wait(); code != 0 {
		t.Errorf("amservice exit status %d", code)
	}
	if dumps, dumped := cfg.stats(); dumps != 2 || !cmp.Equal(dumped, []string{diskSpace, diskSpace}) {
		t.Errorf("dumps %d of %q", dumps, dumped)
	}
}

// TestAmserviceRefused: a user the host does not list gets a NAK that
// amservice prints, with exit status 1.
func TestAmserviceRefused(t *testing.T) {
	paths := requireAmanda(t)
	backend, _ := newLab()
	port := startForAmservice(t, backend, "nobody")
	a := startAmservice(t, paths, port)
	start := time.Now()
	got := a.until(nil, 20*time.Second)
	t.Logf("amservice ended after %v", time.Since(start))
	want := []string{"ERROR user backup from localhost is not allowed to execute the service amdumpd: user backup is not among the users of host localhost"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("amservice output (-want +got):\n%s", diff)
	}
	if code := a.wait(); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

// TestAmdumpClient: Debian's amdump_client (which wraps amservice) lists,
// checks and dumps through Holdfast, and prints a failed disk's line.
func TestAmdumpClient(t *testing.T) {
	requireAmanda(t)
	client, err := exec.LookPath("amdump_client")
	if err != nil {
		envtest.Missing(t, "amdump_client (Debian package amanda-client): %v", err)
	}
	backend, cfg := newLab()
	cfg.failDisk = map[string]error{diskDir1: errors.New("no space left on device")}
	port := startForAmservice(t, backend, "backup")
	run := func(args ...string) string {
		t.Helper()
		argv := append([]string{"-u", "backup", "--", client, "--config", "amtest",
			"-o", "amdump_server=localhost", "-o", "auth=bsdtcp", "-o", fmt.Sprintf("client_port=%d", port)}, args...)
		out, err := exec.Command("runuser", argv...).CombinedOutput()
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
