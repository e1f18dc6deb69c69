package main

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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/holdfast-backup/holdfast/internal/pgproc"
	"github.com/jackc/pgx/v5"
)

// cluster is a throwaway PostgreSQL server run as OS user postgres. It is
// the harness's own small copy of what internal/pgtest does for tests
// (pgtest needs a testing.TB).
type cluster struct {
	major   int
	bin     string // initdb, postgres
	dir     string // holds data/, the socket and the log
	data    string
	port    int
	host    string // where the measured tools connect: dir (Unix socket) or 127.0.0.1 (TCP)
	logFile string
	proc    *exec.Cmd
	done    chan struct{}
}

const osUser = "postgres"

// serverSettings are appended to postgresql.conf. autovacuum is off so that
// nothing rewrites pages between the two sides of a pair (and so that the
// incremental scenario changes exactly the blocks its UPDATE changes);
// checkpoints happen only when a backup asks for one.
func serverSettings(major, port int, sock string) string {
	s := []string{
		fmt.Sprintf("port = %d", port),
		fmt.Sprintf("unix_socket_directories = '%s'", sock),
		"listen_addresses = '127.0.0.1'",
		"wal_level = replica",
		"max_wal_senders = 10",
		"max_replication_slots = 10",
		"autovacuum = off",
		"max_wal_size = '8GB'",
		"checkpoint_timeout = '1h'",
		"lc_messages = 'C'",
		"log_checkpoints = on",
	}
	if major >= 17 {
		s = append(s, "summarize_wal = on")
	}
	return "\n# written by holdfast bench\n" + strings.Join(s, "\n") + "\n"
}

// hbaConf trusts the Unix socket and the loopback address only; it is
// rewritten at every start, so reused clusters get it too.
const hbaConf = `# written by holdfast bench
local all all trust
local replication all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
`

// newCluster creates (initdb) a cluster in dir, or reuses an initialised
// one found there (with -cluster-cache).
func newCluster(ctx context.Context, major int, bin, dir, transport string) (*cluster, bool, error) {
	c := &cluster{major: major, bin: bin, dir: dir, data: filepath.Join(dir, "data"), logFile: filepath.Join(dir, "server.log"), host: dir}
	if transport == "tcp" {
		c.host = "127.0.0.1"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, false, err
	}
	if err := chownPostgres(dir, false); err != nil {
		return nil, false, err
	}
	if _, err := os.Stat(filepath.Join(c.data, "PG_VERSION")); err == nil {
		return c, true, nil
	}
	args := []string{"-D", c.data, "-U", "postgres", "-A", "trust", "--no-sync",
		"--encoding=UTF8", "--locale=C", "--data-checksums"}
	if out, err := asPostgres(ctx, dir, filepath.Join(bin, "initdb"), args...).CombinedOutput(); err != nil {
		return nil, false, fmt.Errorf("initdb %d in %s: %v: %s", major, c.data, err, tail(out, 10))
	}
	return c, false, nil
}

// start starts the postmaster on a free port and waits until it is ready.
func (c *cluster) start(ctx context.Context) error {
	for attempt := 1; attempt <= 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		// The port goes on the command line so that a reused cluster's
		// postgresql.conf need not change; the rest is in the file.
		if err := c.writeConf(); err != nil {
			return err
		}
		err = c.startOnce(ctx)
		if err == nil {
			return nil
		}
		if !c.portTaken() {
			return err
		}
	}
	return fmt.Errorf("start PostgreSQL %d: no free port after 5 attempts", c.major)
}

// writeConf (re)writes the harness's part of postgresql.conf.
func (c *cluster) writeConf() error {
	p := filepath.Join(c.data, "postgresql.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if i := bytes.Index(b, []byte("\n# written by holdfast bench\n")); i >= 0 {
		b = b[:i]
	}
	b = append(b, serverSettings(c.major, c.port, c.dir)...)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		return err
	}
	hba := filepath.Join(c.data, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(hbaConf), 0o600); err != nil {
		return err
	}
	return chownPostgres(hba, false)
}

func (c *cluster) startOnce(ctx context.Context) error {
	log, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "bench: starting on port %d\n", c.port)
	// exec.Command, not CommandContext: the server is stopped by stop(),
	// cleanly, not killed when the context ends.
	cmd := asPostgres(context.Background(), c.dir, filepath.Join(c.bin, "postgres"), "-D", c.data)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.proc, c.done = cmd, done
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case <-done:
			return fmt.Errorf("PostgreSQL %d exited at start: see %s", c.major, c.logFile)
		case <-ctx.Done():
			c.stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if pid := c.pid(); pid > 0 && c.pidLine(8) == "ready" {
			if pid == cmd.Process.Pid || parentOf(pid) == cmd.Process.Pid {
				return nil
			}
		}
		if time.Now().After(deadline) {
			c.stop()
			return fmt.Errorf("PostgreSQL %d not ready after 5 minutes: see %s", c.major, c.logFile)
		}
	}
}

func (c *cluster) portTaken() bool { return pgproc.PortTaken(c.logFile, "bench: starting on port") }

func (c *cluster) pidLine(n int) string { return pgproc.PIDFileLine(c.data, n) }

func (c *cluster) pid() int { return pgproc.PID(c.data) }

func (c *cluster) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop shuts the server down in fast mode (SIGINT to the postmaster).
func (c *cluster) stop() {
	if !c.running() {
		return
	}
	if pid := c.pid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGINT)
	} else {
		_ = c.proc.Process.Signal(syscall.SIGINT)
	}
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		if pid := c.pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
		}
		<-c.done
	}
}

// socketConn is a keyword/value connection string over the Unix socket,
// for the harness's own SQL.
func (c *cluster) socketConn(user string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", c.dir, c.port, user)
}

// backupConn is the connection string of the measured sides: over the
// transport of -transport, the same for Holdfast and PostgreSQL's tools.
func (c *cluster) backupConn(user string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", c.host, c.port, user)
}

// exec runs SQL as superuser postgres (simple protocol, several statements allowed).
func (c *cluster) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, c.socketConn("postgres"))
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL %d: %w", c.major, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("PostgreSQL %d: %s: %w", c.major, firstLine(sql), err)
	}
	return nil
}

// queryInt runs a query returning one bigint.
func (c *cluster) queryInt(ctx context.Context, sql string) (int64, error) {
	conn, err := pgx.Connect(ctx, c.socketConn("postgres"))
	if err != nil {
		return 0, fmt.Errorf("connect to PostgreSQL %d: %w", c.major, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v int64
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		return 0, fmt.Errorf("PostgreSQL %d: %s: %w", c.major, firstLine(sql), err)
	}
	return v, nil
}

func (c *cluster) queryString(ctx context.Context, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, c.socketConn("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL %d: %w", c.major, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v string
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		return "", fmt.Errorf("PostgreSQL %d: %s: %w", c.major, firstLine(sql), err)
	}
	return v, nil
}

// serverCPU is the CPU seconds (user+sys) the server has used so far: every
// live process of the cluster plus what the postmaster has collected from
// children that exited (walsenders are children of the postmaster). Read it
// after the backends of a measured run have exited (waitNoWalsender).
func (c *cluster) serverCPU() float64 {
	pm := c.pid()
	if pm <= 0 {
		return 0
	}
	total := 0.0
	if f := procStat(pm); f != nil {
		total += ticks(f, 14) + ticks(f, 15) + ticks(f, 16) + ticks(f, 17)
	}
	for _, ch := range childrenOf(pm) {
		if f := procStat(ch); f != nil {
			total += ticks(f, 14) + ticks(f, 15) + ticks(f, 16) + ticks(f, 17)
		}
	}
	return total
}

// settle waits (up to 10 s) until the server's children are quiet: no
// walsender, client backend or unreaped (zombie) child, and, when base is
// given, no child that was not in base. Only then has the postmaster
// collected the CPU time of the backends of a run. It returns the children.
func (c *cluster) settle(base map[int]bool) map[int]bool {
	pm := c.pid()
	deadline := time.Now().Add(10 * time.Second)
	for {
		kids := map[int]bool{}
		busy := false
		for _, ch := range childrenOf(pm) {
			kids[ch] = true
			if base != nil && !base[ch] {
				busy = true
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ch))
			s := string(cmd)
			if f := procStat(ch); len(f) > 0 && f[0] == "Z" {
				busy = true
			}
			if strings.Contains(s, "walsender") || strings.Contains(s, "[local]") {
				busy = true
			}
		}
		if !busy || time.Now().After(deadline) {
			return kids
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns the fields of /proc/PID/stat after the command name:
// index 0 is field 3 (state) of proc(5).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// ticks returns field n (1-based, as in proc(5)) of a procStat slice as seconds.
func ticks(f []string, n int) float64 {
	idx := n - 3
	if idx < 0 || idx >= len(f) {
		return 0
	}
	v, _ := strconv.ParseFloat(f[idx], 64)
	return v / 100 // USER_HZ is 100 on Linux
}

func childrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil && parentOf(p) == pid {
			out = append(out, p)
		}
	}
	return out
}

func parentOf(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// asPostgres runs a PostgreSQL server program as OS user postgres when we
// are root (the server refuses root).
func asPostgres(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", osUser, "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	return cmd
}

// chownPostgres gives path (recursively when rec) to OS user postgres when root.
func chownPostgres(path string, rec bool) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return fmt.Errorf("running as root needs an OS user %q to run PostgreSQL as: %w", osUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if !rec {
		return os.Lchown(path, uid, gid)
	}
	return filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// checkTraversable fails when OS user postgres cannot reach dir.
func checkTraversable(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not traversable by OS user postgres: chmod o+x it or pick another -workdir", d)
		}
	}
	return nil
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

var errUnavailable = errors.New("unavailable")
