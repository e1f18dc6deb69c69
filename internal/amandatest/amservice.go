package amandatest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/envtest"
)

// RequireAmservice returns Amanda's programs, and checks what the tests with
// them need: root (amservice and amandad run as the Amanda user
// "backup", through runuser) and that user.
func RequireAmservice(t *testing.T) Paths {
	t.Helper()
	paths := Require(t)
	if os.Geteuid() != 0 {
		envtest.Missing(t, "the tests with Debian's Amanda run as root (they start amservice/amandad as user backup)")
	}
	if _, err := user.Lookup("backup"); err != nil {
		envtest.Missing(t, "user backup (Debian's Amanda user): %v", err)
	}
	if Runuser() == "" {
		envtest.Missing(t, "runuser (util-linux) in PATH or /usr/sbin")
	}
	return paths
}

// Runuser finds util-linux's runuser, also when PATH lacks /usr/sbin.
func Runuser() string {
	if p, err := exec.LookPath("runuser"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/runuser"); err == nil {
		return "/usr/sbin/runuser"
	}
	return ""
}

// Amservice runs the real amservice as user backup against a server on
// 127.0.0.1:port, with its CTL stream on stdin/stdout (spec §9.3).
type Amservice struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	done  chan struct{} // closed when amservice has exited
	err   error         // its Wait error, once done
}

// StartAmservice starts amservice against 127.0.0.1:port; extra are more options.
func StartAmservice(t *testing.T, paths Paths, port int, extra ...string) *Amservice {
	t.Helper()
	args := append([]string{"-u", "backup", "--", paths.Amservice,
		"-o", fmt.Sprintf("client_port=%d", port),
		"-o", "connect_tries=1", "-o", "req_tries=1", "-o", "ctimeout=15"},
		extra...)
	args = append(args, "-f", "/dev/null", "-s", "localhost", "bsdtcp", "amdumpd")
	cmd := exec.Command(Runuser(), args...)
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
	a := &Amservice{t: t, cmd: cmd, in: in, lines: make(chan string, 1024), done: make(chan struct{})}
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

// Send writes one command line to amservice.
func (a *Amservice) Send(line string) {
	a.t.Helper()
	if _, err := io.WriteString(a.in, line+"\n"); err != nil {
		a.t.Fatalf("amservice stdin: %v", err)
	}
}

// Until collects lines until one matches end (included), the output ends,
// or quiet passes without a line.
func (a *Amservice) Until(end *regexp.Regexp, quiet time.Duration) []string {
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

// Wait returns amservice's exit status.
func (a *Amservice) Wait() int {
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

// Patterns for the last line of each amdumpd reply, for Amservice.Until:
// the normal end, BUSY, or the error for a command sent before CONFIG.
var (
	EndList     = regexp.MustCompile(`^(ENDLIST|CONFIG must)`)
	EndCheck    = regexp.MustCompile(`^(ENDCHECK|BUSY|CONFIG must)`)
	EndDump     = regexp.MustCompile(`^(ENDDUMP|BUSY|CONFIG must)`)
	EndFeatures = regexp.MustCompile(`^FEATURES `)
	EndDisk     = regexp.MustCompile(`^(DISK |ERROR |CONFIG must)`)
)
