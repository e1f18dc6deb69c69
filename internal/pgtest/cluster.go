package pgtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/holdfast-backup/holdfast/internal/envtest"
	"github.com/holdfast-backup/holdfast/internal/pgproc"
)

// Options describe a throwaway cluster. The zero value of every field but Version is a
// sensible default.
type Options struct {
	// Version is the PostgreSQL major: 15, 16, 17 or 18.
	Version int
	// DataChecksums turns on data checksums (initdb --data-checksums). Off means off on
	// every major, although initdb 18 turns them on by default.
	DataChecksums bool
	// Tablespaces is the number of user tablespaces to create: ts1, ts2, … located in
	// directories whose names contain a space ("<dir>/ts dir 1").
	Tablespaces int
	// Auth is the pg_hba method for every role but postgres: "trust" (default),
	// "scram-sha-256", "md5" or "password". The superuser postgres is always trusted on the
	// socket, which the helpers use.
	Auth string
	// Password is the password of role backup; it defaults to "backup-secret" when Auth is not
	// trust.
	Password string
	// NoReplicationHBA leaves out every pg_hba line for replication connections.
	NoReplicationHBA bool
	// NoReplicationRole creates role backup without the REPLICATION attribute.
	NoReplicationRole bool
	// NoWALSummarizer leaves summarize_wal off on 17+ (incremental backups then fail).
	NoWALSummarizer bool
	// Settings are extra postgresql.conf settings, written after the defaults so they win.
	Settings map[string]string
}

// BackupRole is the role Start creates for backups: LOGIN REPLICATION (see
// Options.NoReplicationRole).
const BackupRole = "backup"

// Cluster is a running (or stopped) throwaway PostgreSQL server.
type Cluster struct {
	// Version is the PostgreSQL major.
	Version int
	// BinDir holds initdb, pg_ctl and postgres.
	BinDir string
	// DataDir is the data directory.
	DataDir string
	// Port is the TCP port (on 127.0.0.1) and the number of the socket file.
	Port int
	// SocketDir is the Unix socket directory.
	SocketDir string
	// LogFile is the server's log (stderr).
	LogFile string
	// TablespaceDirs are the locations of tablespaces ts1, ts2, … in order.
	TablespaceDirs []string
	// Password is role backup's password ("" with trust authentication).
	Password string

	dir  string // holds the socket, the log and, for Start, the data and tablespaces
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited
}

// Start creates and starts a cluster for the test; t.Cleanup stops it and removes its files.
// It skips the test when the binaries are missing, or fails it when CI=true.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	bin := Require(t, opts.Version)
	c := newCluster(t, opts.Version, bin)
	c.DataDir = filepath.Join(c.dir, "data")
	if opts.Auth != "" && opts.Auth != "trust" {
		c.Password = opts.Password
		if c.Password == "" {
			c.Password = "backup-secret"
		}
	}

	args := []string{"-D", c.DataDir, "-U", "postgres", "-A", "trust", "--no-sync",
		"--encoding=UTF8", "--locale=C"}
	switch {
	case opts.DataChecksums:
		args = append(args, "--data-checksums")
	case opts.Version >= 18:
		args = append(args, "--no-data-checksums")
	}
	if out, err := asPostgres(c.dir, filepath.Join(bin, "initdb"), args...).CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb %d in %s: %v: %s", opts.Version, c.DataDir, err, lastLines(out, 10))
	}
	if err := os.WriteFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba(opts)), 0o600); err != nil {
		t.Fatalf("pgtest: write pg_hba.conf: %v", err)
	}
	conf, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = conf.WriteString(settings(opts))
		if cerr := conf.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("pgtest: write postgresql.conf: %v", err)
	}
	for i := 1; i <= opts.Tablespaces; i++ {
		d := filepath.Join(c.dir, fmt.Sprintf("ts dir %d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("pgtest: create tablespace directory: %v", err)
		}
		if err := giveToPostgres(d); err != nil {
			t.Fatalf("pgtest: chown tablespace directory %s: %v", d, err)
		}
		c.TablespaceDirs = append(c.TablespaceDirs, d)
	}

	c.start(t)

	role := "CREATE ROLE " + BackupRole + " LOGIN REPLICATION"
	if opts.NoReplicationRole {
		role = "CREATE ROLE " + BackupRole + " LOGIN NOREPLICATION"
	}
	if c.Password != "" {
		role += " PASSWORD " + quoteLiteral(c.Password)
	}
	c.Exec(t, "postgres", role)
	for i, d := range c.TablespaceDirs {
		c.Exec(t, "postgres", fmt.Sprintf("CREATE TABLESPACE ts%d LOCATION %s", i+1, quoteLiteral(d)))
	}
	return c
}

// StartOnDataDir starts a server of the given major on an existing data directory, typically
// a restored backup, and stops it in t.Cleanup (the directory itself is left to the caller).
// As root, it hands the data directory and the targets of its tablespace links to the OS user
// postgres and makes their parent directories traversable. Port, socket directory and
// listen address are set on the command line, so the data directory's configuration files are
// not edited.
func StartOnDataDir(t testing.TB, version int, dataDir string) *Cluster {
	t.Helper()
	bin := Require(t, version)
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatalf("pgtest: data directory %s: %v", dataDir, err)
	}
	c := newCluster(t, version, bin)
	c.DataDir = dataDir

	dirs := []string{dataDir}
	links, err := os.ReadDir(filepath.Join(dataDir, "pg_tblspc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pgtest: read tablespace links of %s: %v", dataDir, err)
	}
	for _, l := range links {
		target, err := filepath.EvalSymlinks(filepath.Join(dataDir, "pg_tblspc", l.Name()))
		if err != nil {
			t.Fatalf("pgtest: tablespace link %s in %s: %v: restore its tablespace first", l.Name(), dataDir, err)
		}
		dirs = append(dirs, target)
		c.TablespaceDirs = append(c.TablespaceDirs, target)
	}
	for _, d := range dirs {
		if err := giveToPostgres(d); err != nil {
			t.Fatalf("pgtest: hand %s to user postgres: %v", d, err)
		}
		if err := makeTraversable(d); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	// PostgreSQL refuses a data directory readable by others.
	if err := os.Chmod(dataDir, 0o700); err != nil {
		t.Fatalf("pgtest: chmod %s: %v", dataDir, err)
	}
	c.start(t)
	return c
}

// newCluster reserves the cluster's directory and registers its teardown.
func newCluster(t testing.TB, version int, bin string) *Cluster {
	t.Helper()
	// Under /tmp, whatever TMPDIR says: a socket path must fit in 107 bytes.
	dir, err := os.MkdirTemp("/tmp", "pgtest-")
	if err != nil {
		t.Fatalf("pgtest: create cluster directory: %v", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgtest: chmod %s: %v", dir, err)
	}
	if err := giveToPostgres(dir); err != nil {
		t.Fatalf("pgtest: chown %s: %v", dir, err)
	}
	c := &Cluster{
		Version:   version,
		BinDir:    bin,
		SocketDir: dir,
		LogFile:   filepath.Join(dir, "server.log"),
		dir:       dir,
	}
	t.Cleanup(func() {
		if c.running() {
			c.signal(syscall.SIGQUIT) // immediate shutdown: the data is thrown away
			if !c.wait(30 * time.Second) {
				c.signal(syscall.SIGKILL)
				c.wait(10 * time.Second)
			}
		}
		if t.Failed() {
			c.logTail(t, 40)
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("pgtest: remove %s: %v", dir, err)
		}
	})
	return c
}

// start starts the postmaster and waits until it accepts connections. A port taken between
// choosing and binding it is retried with another port.
func (c *Cluster) start(t testing.TB) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		if c.Port == 0 || attempt > 1 {
			c.Port = envtest.FreePort(t)
		}
		err := c.startOnce()
		if err == nil {
			return
		}
		if attempt < 5 && c.portTaken() {
			continue
		}
		t.Fatalf("pgtest: start PostgreSQL %d on %s: %v: the server log follows", c.Version, c.DataDir, err)
	}
}

func (c *Cluster) startOnce() error {
	log, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy
	if _, err := fmt.Fprintf(log, "pgtest: starting on port %d\n", c.Port); err != nil {
		return err
	}
	cmd := asPostgres(c.dir, filepath.Join(c.BinDir, "postgres"), "-D", c.DataDir,
		"-p", strconv.Itoa(c.Port), "-k", c.SocketDir, "-c", "listen_addresses=127.0.0.1")
	cmd.Stdout, cmd.Stderr = log, log
	// If the test binary dies without running its cleanups, the server goes too: runuser
	// passes SIGTERM on to postgres (and SIGKILLs it 2 s later).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.proc, c.done = cmd, done

	deadline := time.Now().Add(2 * time.Minute) // a restored backup may replay WAL first
	for {
		select {
		case <-done:
			return fmt.Errorf("server exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		// A crashed server leaves its postmaster.pid behind: only trust our own postmaster's.
		if pid := c.pid(); pid == cmd.Process.Pid || parentOf(pid) == cmd.Process.Pid {
			if st := c.pidFileLine(8); st == "ready" || st == "standby" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			c.signal(syscall.SIGQUIT)
			c.wait(10 * time.Second)
			return errors.New("not ready after 2 minutes")
		}
	}
}

// portTaken reports whether the last start failed because its port was in use.
func (c *Cluster) portTaken() bool { return pgproc.PortTaken(c.LogFile, "pgtest: starting on port") }

func (c *Cluster) pidFileLine(n int) string { return pgproc.PIDFileLine(c.DataDir, n) }

func (c *Cluster) pid() int { return pgproc.PID(c.DataDir) }

func (c *Cluster) running() bool {
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

// signal sends sig to the postmaster (not to runuser, which would only relay it).
func (c *Cluster) signal(sig syscall.Signal) {
	if pid := c.pid(); pid > 0 {
		_ = syscall.Kill(pid, sig)
	} else if c.running() {
		_ = c.proc.Process.Signal(sig)
	}
}

// wait reports whether the server exited within d.
func (c *Cluster) wait(d time.Duration) bool {
	if c.done == nil {
		return true
	}
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop shuts the server down cleanly (fast mode: pg_ctl stop -m fast).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if !c.running() {
		t.Fatalf("pgtest: stop PostgreSQL %d: it is not running", c.Version)
	}
	c.signal(syscall.SIGINT)
	if !c.wait(time.Minute) {
		t.Fatalf("pgtest: stop PostgreSQL %d: still running after a minute", c.Version)
	}
}

// Kill simulates a crash: SIGKILL to the postmaster and to every one of its children at once.
// It returns when they are all gone; Restart then runs crash recovery.
func (c *Cluster) Kill(t testing.TB) {
	t.Helper()
	pm := c.pid()
	if !c.running() || pm <= 0 {
		t.Fatalf("pgtest: kill PostgreSQL %d: it is not running", c.Version)
	}
	children := childrenOf(pm)
	_ = syscall.Kill(pm, syscall.SIGKILL)
	for _, p := range children {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	if !c.wait(30 * time.Second) {
		t.Fatalf("pgtest: kill PostgreSQL %d: postmaster %d still running", c.Version, pm)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range children {
		for syscall.Kill(p, 0) == nil {
			if time.Now().After(deadline) {
				t.Fatalf("pgtest: kill PostgreSQL %d: process %d survived SIGKILL", c.Version, p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// childrenOf returns the pids of the processes whose parent is pid.
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

// parentOf returns the parent pid of process pid, or 0 when it is gone or unreadable.
func parentOf(pid int) int {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// Restart stops the server if it runs (fast mode) and starts it again on the same port.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	if c.running() {
		c.Stop(t)
	}
	c.start(t)
}

// Reload makes the server re-read its configuration files (pg_ctl reload).
func (c *Cluster) Reload(t testing.TB) {
	t.Helper()
	if !c.running() {
		t.Fatalf("pgtest: reload PostgreSQL %d: it is not running", c.Version)
	}
	c.signal(syscall.SIGHUP)
}

// logTail writes the last n lines of the server log to the test log.
func (c *Cluster) logTail(t testing.TB, n int) {
	t.Helper()
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return
	}
	t.Logf("pgtest: last lines of the PostgreSQL %d server log %s:\n%s", c.Version, c.LogFile, lastLines(b, n))
}

// ConnString returns a keyword/value connection string for user to database postgres over the
// Unix socket, with role backup's password when it has one. Append " dbname=…" to choose
// another database: later keywords win.
func (c *Cluster) ConnString(user string) string {
	return c.connString(c.SocketDir, user)
}

// TCPConnString is ConnString over TCP to 127.0.0.1.
func (c *Cluster) TCPConnString(user string) string {
	return c.connString("127.0.0.1", user)
}

// ReplConnString is ConnString for a physical replication connection (replication=true).
func (c *Cluster) ReplConnString(user string) string {
	return c.ConnString(user) + " replication=true"
}

func (c *Cluster) connString(host, user string) string {
	s := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable", quoteConnValue(host), c.Port, quoteConnValue(user))
	if user == BackupRole && c.Password != "" {
		s += " password=" + quoteConnValue(c.Password)
	}
	return s
}

// Exec runs sql with args in database db as superuser postgres. Without args, sql may hold
// several statements (simple protocol).
func (c *Cluster) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := c.connect(t, ctx, db)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: exec in PostgreSQL %d database %s: %v (sql: %s)", c.Version, db, err, sql)
	}
}

// Query runs sql with args in database db as superuser postgres and returns every row's
// values, decoded by pgx (int8 as int64, text as string, NULL as nil, …).
func (c *Cluster) Query(t testing.TB, db, sql string, args ...any) [][]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := c.connect(t, ctx, db)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("pgtest: query in PostgreSQL %d database %s: %v (sql: %s)", c.Version, db, err, sql)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
	if err != nil {
		t.Fatalf("pgtest: query in PostgreSQL %d database %s: %v (sql: %s)", c.Version, db, err, sql)
	}
	return out
}

// CreateDatabase creates database name.
func (c *Cluster) CreateDatabase(t testing.TB, name string) {
	t.Helper()
	c.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// Fingerprint is Fingerprint(t, c.ConnString("postgres")).
func (c *Cluster) Fingerprint(t testing.TB) map[string]string {
	t.Helper()
	return Fingerprint(t, c.ConnString("postgres"))
}

func (c *Cluster) connect(t testing.TB, ctx context.Context, db string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, c.ConnString("postgres")+" dbname="+quoteConnValue(db))
	if err != nil {
		t.Fatalf("pgtest: connect to PostgreSQL %d database %s: %v", c.Version, db, err)
	}
	return conn
}

func hba(o Options) string {
	m := o.Auth
	if m == "" {
		m = "trust"
	}
	var b strings.Builder
	b.WriteString("# written by pgtest\n")
	fmt.Fprintf(&b, "local all postgres trust\n")
	if !o.NoReplicationHBA {
		fmt.Fprintf(&b, "local replication postgres trust\n")
	}
	fmt.Fprintf(&b, "local all all %s\nhost all all 127.0.0.1/32 %s\n", m, m)
	if !o.NoReplicationHBA {
		fmt.Fprintf(&b, "local replication all %s\nhost replication all 127.0.0.1/32 %s\n", m, m)
	}
	return b.String()
}

func settings(o Options) string {
	s := map[string]string{
		"wal_level":             "replica",
		"max_wal_senders":       "10",
		"max_replication_slots": "10",
		"fsync":                 "off",
		"lc_messages":           "C",
	}
	if o.Version >= 17 && !o.NoWALSummarizer {
		s["summarize_wal"] = "on"
	}
	if o.Auth == "md5" {
		s["password_encryption"] = "md5"
	}
	maps.Copy(s, o.Settings)
	var b strings.Builder
	b.WriteString("\n# written by pgtest\n")
	for _, k := range slices.Sorted(maps.Keys(s)) {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteLiteral(s[k]))
	}
	return b.String()
}

// makeTraversable makes sure the OS user postgres can enter every ancestor of path. It gives
// o+x to the temporary directories of tests (t.TempDir is 0700) and to nothing else.
func makeTraversable(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	tmp := []string{filepath.Clean(os.TempDir()), "/tmp"}
	for d := filepath.Dir(path); d != filepath.Dir(d); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		inTmp := false
		for _, p := range tmp {
			inTmp = inTmp || strings.HasPrefix(d, p+"/")
		}
		if !inTmp {
			return fmt.Errorf("%s is not traversable by OS user postgres: chmod o+x it, or restore under %s", d, os.TempDir())
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o001); err != nil {
			return err
		}
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings is on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// quoteConnValue quotes s for a keyword/value connection string.
func quoteConnValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\\\t\n") {
		return s
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// lastLines returns the last n lines of b, trimmed.
func lastLines(b []byte, n int) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
