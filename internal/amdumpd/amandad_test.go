package amdumpd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amandatest"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

// amandaLab is a throw-away Amanda configuration (spec §9.1) in a
// temporary directory, reached through a symbolic link
// /etc/amanda/holdfast-test-* that the test removes. (A CONFIG name like
// "../../tmp/x" also loads it in amdumpd, but the client side of amcheck
// refuses such a name: "invalid character in config option".)
type amandaLab struct {
	dir    string // the temporary directory
	config string // the CONFIG name that reaches it
	disks  []string
}

func newAmandaLab(t *testing.T, backup *user.User) *amandaLab {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "holdfast-amanda-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfgDir := filepath.Join(dir, "amtest")
	data := filepath.Join(dir, "data")
	state := filepath.Join(dir, "state")
	l := &amandaLab{dir: dir, config: filepath.Base(dir), disks: []string{filepath.Join(data, "dir1"), filepath.Join(data, "with space")}}
	for _, d := range []string{cfgDir, l.disks[0], l.disks[1], state + "/curinfo", state + "/log", state + "/index", state + "/holding",
		state + "/vtapes/slot1", state + "/vtapes/slot2"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(l.disks[0], "file1.txt"): "hello amanda\n",
		filepath.Join(l.disks[1], "f.txt"):     "x\n",
		filepath.Join(cfgDir, "amanda.conf"): fmt.Sprintf(`org "amtest"
mailto ""
dumpuser "backup"
dumpcycle 1
runspercycle 1
tapecycle 2
netusage 10000 kbps
infofile "%[1]s/curinfo"
logdir   "%[1]s/log"
indexdir "%[1]s/index"
tpchanger "chg-disk:%[1]s/vtapes"
labelstr "^AMTEST-[0-9][0-9]*$"
autolabel "AMTEST-%%%%%%" empty
tapetype "DISKTAPE"
define tapetype DISKTAPE {
    length 20 mbytes
}
holdingdisk hd1 {
    directory "%[1]s/holding"
    use 20 mbytes
    chunksize 0
}
define dumptype amtest-tar {
    program "GNUTAR"
    compress none
    index no
    record no
    estimate calcsize
    auth "local"
    holdingdisk required
    dump-limit same-host server
}
`, state),
		filepath.Join(cfgDir, "disklist"): fmt.Sprintf("localhost %s amtest-tar\nlocalhost %s amtest-tar\n",
			amanda.Quote(l.disks[0]), amanda.Quote(l.disks[1])),
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(backup.Uid)
	gid, _ := strconv.Atoi(backup.Gid)
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			err = os.Lchown(p, uid, gid)
		}
		return err
	})
	link := filepath.Join("/etc/amanda", l.config)
	if err := os.Symlink(cfgDir, link); err != nil {
		t.Fatalf("link the configuration into /etc/amanda: %v", err)
	}
	t.Cleanup(func() { os.Remove(link) })
	return l
}

// amandahostsLine is what the lab needs in the Amanda user's
// .amandahosts (spec §9.1 step 5).
const amandahostsLine = "localhost backup amdump amdumpd"

// allowAmdumpd makes sure the Amanda user's .amandahosts lets user backup
// on localhost run amdumpd, and restores the file after the test.
func allowAmdumpd(t *testing.T, backup *user.User) {
	t.Helper()
	path, err := filepath.EvalSymlinks(filepath.Join(backup.HomeDir, ".amandahosts"))
	if errors.Is(err, os.ErrNotExist) {
		path = filepath.Join(backup.HomeDir, ".amandahosts")
	} else if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if slices.Contains(strings.Split(string(old), "\n"), amandahostsLine) {
		return
	}
	content := string(old)
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	uid, _ := strconv.Atoi(backup.Uid)
	gid, _ := strconv.Atoi(backup.Gid)
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o600)
		os.Chown(path, uid, gid)
	}
	write([]byte(content + amandahostsLine + "\n"))
	t.Cleanup(func() {
		if old == nil {
			os.Remove(path)
			return
		}
		write(old)
	})
}

// startAmandad listens on 127.0.0.1 and runs the real amandad, as user
// backup, on each accepted connection (inetd style: the socket is its
// stdin and stdout), with amdumpd enabled (spec §9.1 step 6).
func startAmandad(t *testing.T, amandad string, backup *user.User) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(backup.Uid)
	gid, _ := strconv.Atoi(backup.Gid)
	var groups []uint32
	if gids, err := backup.GroupIds(); err == nil {
		for _, g := range gids {
			n, _ := strconv.Atoi(g)
			groups = append(groups, uint32(n))
		}
	}
	type proc struct {
		cmd    *exec.Cmd
		exited chan struct{}
	}
	var mu sync.Mutex
	var procs []proc
	var stderr bytes.Buffer
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			f, err := nc.(*net.TCPConn).File()
			nc.Close()
			if err != nil {
				continue
			}
			cmd := exec.Command(amandad, "-auth=bsdtcp", "amdump", "amdumpd")
			cmd.Stdin, cmd.Stdout = f, f
			cmd.Stderr = &lockedWriter{mu: &mu, w: &stderr}
			cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + backup.HomeDir, "LANG=C"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
			err = cmd.Start()
			f.Close()
			if err != nil {
				t.Errorf("start amandad: %v", err)
				continue
			}
			p := proc{cmd: cmd, exited: make(chan struct{})}
			mu.Lock()
			procs = append(procs, p)
			mu.Unlock()
			go func() {
				cmd.Wait()
				close(p.exited)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		started := slices.Clone(procs)
		mu.Unlock()
		for _, p := range started {
			// amandad exits by itself once its connection is gone; give it
			// the time, then end the one we started (by its pid).
			select {
			case <-p.exited:
			case <-time.After(5 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if stderr.Len() > 0 {
			t.Logf("amandad stderr:\n%s", stderr.String())
		}
	})
	return ln.Addr().String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestClientAgainstRealAmandad: Holdfast's client talks to Debian's real
// amandad + amdumpd (spec §9.4), which answers from its own configuration.
func TestClientAgainstRealAmandad(t *testing.T) {
	paths := amandatest.RequireAmservice(t)
	backup, _ := user.Lookup("backup")
	lab := newAmandaLab(t, backup)
	allowAmdumpd(t, backup)
	addr := startAmandad(t, paths.Amandad, backup)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := &amanda.Dialer{User: "backup", ReservedPort: true}

	c, err := amdumpd.Dial(ctx, d, addr, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Config(ctx, lab.config); err != nil {
		t.Fatal(err)
	}
	disks, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(disks)
	if diff := cmp.Diff(lab.disks, disks); diff != "" {
		t.Fatalf("LIST (-want +got):\n%s", diff)
	}
	if err := c.Select(ctx, lab.disks[1]); err != nil {
		t.Fatalf("DISK with a space: %v", err)
	}
	lines, err := c.Check(ctx)
	if err != nil {
		t.Fatalf("CHECK: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "Client check: 1 host checked") && strings.HasSuffix(l, "0 problems found.")
	}) {
		t.Errorf("CHECK printed no client check:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("CHECK:\n%s", strings.Join(lines, "\n"))
	res, err := c.Dump(ctx, nil)
	t.Logf("DUMP printed %q", res.Lines)
	if err != nil || len(res.Done) != 0 {
		t.Errorf("DUMP = %+v, %v", res, err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// An unknown configuration.
	c, err = amdumpd.Dial(ctx, d, addr, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Config(ctx, "holdfast-no-such-config")
	var re *amdumpd.ReplyError
	if !errors.As(err, &re) || re.Line != amdumpd.ReplyConfigErrors || !errors.Is(err, amdumpd.ErrRefused) {
		t.Errorf("CONFIG of an unknown configuration = %v", err)
	}
	c.Close(ctx)

	// A user .amandahosts does not allow, and a port that is not reserved.
	_, err = amdumpd.Dial(ctx, &amanda.Dialer{User: "nobody", ReservedPort: true}, addr, "localhost")
	var ref *amanda.RefusedError
	if !errors.As(err, &ref) || ref.Type != amanda.NAK ||
		!strings.HasPrefix(strings.Join(ref.Lines, "\n"), "user nobody from localhost is not allowed to execute the service amdumpd:") {
		t.Errorf("Dial as nobody = %v", err)
	}
	_, err = amdumpd.Dial(ctx, &amanda.Dialer{User: "backup"}, addr, "localhost")
	if !errors.As(err, &ref) || ref.Type != amanda.NAK || len(ref.Lines) != 1 ||
		!strings.HasPrefix(ref.Lines[0], "host localhost: port ") || !strings.HasSuffix(ref.Lines[0], " not secure") {
		t.Errorf("Dial from an unreserved port = %v", err)
	}
}
