// Command bench is Holdfast's benchmark harness: it compares Holdfast with
// PostgreSQL's own tools on one machine, in one run, on the same data. It is
// run by hand (go run ./bench, make bench) and is no part of the test suite.
// See bench/README.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	scale        int
	largeFactor  int
	skipLarge    bool
	pairs        int
	warmup       int
	memPairs     int
	only         map[string]bool
	majors       []int
	restoreComps []string
	jsonPath     string
	mdPath       string
	workdir      string
	keep         bool
	clusterCache string
	src          string
	perf         bool
	perfFreq     int
	transport    string
}

var allScenarios = []string{"full", "zstd", "verify", "restore", "incr", "mem"}

func main() {
	var o options
	var only, majors, comps string
	flag.IntVar(&o.scale, "scale", 70, "pgbench scale of the data (70 ≈ 1 GB)")
	flag.IntVar(&o.largeFactor, "large", 4, "memory and verify scenarios: the large cluster is this many times -scale")
	flag.BoolVar(&o.skipLarge, "skip-large", false, "memory and verify scenarios: skip the large cluster (quick runs)")
	flag.IntVar(&o.pairs, "pairs", 5, "measured rounds per scenario (each side once per round, order alternating)")
	flag.IntVar(&o.warmup, "warmup", 1, "warm-up rounds per scenario, not counted")
	flag.IntVar(&o.memPairs, "mem-pairs", 3, "measured rounds of the memory scenario")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run, by name or number: 1/full, 2/zstd, 3/verify, 4/restore, 5/incr, 6/mem (default all)")
	flag.StringVar(&majors, "majors", "15,18", "PostgreSQL majors of the full and zstd scenarios (15 and/or 17, 18)")
	flag.StringVar(&comps, "restore-compression", "zstd,none", "compressions of the chains the restore scenario restores")
	flag.StringVar(&o.jsonPath, "json", "bench/out/results.json", "write the results as JSON here")
	flag.StringVar(&o.mdPath, "md", "bench/out/results.md", "write the markdown tables here too (empty: stdout only)")
	flag.StringVar(&o.workdir, "workdir", "/var/tmp", "parent of the run's work directory (clusters, backups, restores: one file system)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.clusterCache, "cluster-cache", "", "keep loaded clusters in this directory and reuse them in later runs (debugging; the restore and incr scenarios update rows, so reused data drifts a little)")
	flag.StringVar(&o.src, "src", "tree", "what to build: tree (the working tree as it is) or head (git archive HEAD, read-only)")
	flag.BoolVar(&o.perf, "perf", false, "after timing, run each Holdfast side once more under perf record -g and save perf reports in bench/out/perf")
	flag.IntVar(&o.perfFreq, "perf-freq", 999, "perf record sampling frequency (Hz)")
	flag.StringVar(&o.transport, "transport", "tcp", "how every measured side reaches the server: tcp (127.0.0.1, as between hosts) or unix (the socket directory)")
	flag.Parse()
	if flag.NArg() != 0 {
		fatalf("unexpected arguments %q", flag.Args())
	}

	o.only = map[string]bool{}
	if only == "" {
		for _, s := range allScenarios {
			o.only[s] = true
		}
	} else {
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(allScenarios) {
				s = allScenarios[n-1]
			}
			if !slices.Contains(allScenarios, s) {
				fatalf("-only: unknown scenario %q (want %s or 1-6)", s, strings.Join(allScenarios, ", "))
			}
			o.only[s] = true
		}
	}
	for _, s := range strings.Split(majors, ",") {
		m, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || (m != 15 && m != 17 && m != 18) {
			fatalf("-majors: %q is not 15, 17 or 18 (there are no PostgreSQL 16 client tools)", s)
		}
		o.majors = append(o.majors, m)
	}
	for _, c := range strings.Split(comps, ",") {
		c = strings.TrimSpace(c)
		if c != "zstd" && c != "none" {
			fatalf("-restore-compression: %q is not zstd or none", c)
		}
		o.restoreComps = append(o.restoreComps, c)
	}
	if o.transport != "tcp" && o.transport != "unix" {
		fatalf("-transport: %q is not tcp or unix", o.transport)
	}
	if o.scale < 1 || o.pairs < 1 || o.warmup < 0 || o.memPairs < 1 || o.largeFactor < 1 {
		fatalf("-scale, -pairs, -mem-pairs and -large must be positive, -warmup not negative")
	}
	if os.Geteuid() != 0 {
		logf("not root: PostgreSQL runs as the current user")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, o)
	os.Exit(code)
}

func run(ctx context.Context, o options) int {
	root, err := repoRoot()
	if err != nil {
		fatalf("%v", err)
	}
	if !filepath.IsAbs(o.jsonPath) {
		o.jsonPath = filepath.Join(root, o.jsonPath)
	}
	if o.mdPath != "" && !filepath.IsAbs(o.mdPath) {
		o.mdPath = filepath.Join(root, o.mdPath)
	}
	cache := os.Getenv("HOLDFAST_CACHE")
	if cache == "" {
		cache = filepath.Join(root, ".cache")
	}
	work, err := os.MkdirTemp(o.workdir, "hfbench-")
	if err != nil {
		fatalf("work directory: %v", err)
	}
	if err := os.Chmod(work, 0o755); err != nil {
		fatalf("%v", err)
	}
	if err := checkTraversable(work); err != nil {
		fatalf("%v", err)
	}
	e := &env{o: o, root: root, cache: cache, work: work, clusters: map[string]*cluster{}}
	defer func() {
		for _, c := range e.clusters {
			c.stop()
		}
		if !o.keep {
			os.RemoveAll(work)
		} else {
			logf("work directory kept: %s", work)
		}
	}()

	res := &results{
		Command:  "go run ./bench " + strings.Join(os.Args[1:], " "),
		Started:  time.Now().UTC().Format(time.RFC3339),
		Machine:  machineInfo(),
		Settings: map[string]any{"scale": o.scale, "pairs": o.pairs, "warmup": o.warmup, "mem_pairs": o.memPairs, "large_factor": o.largeFactor, "skip_large": o.skipLarge, "majors": o.majors, "restore_compression": o.restoreComps, "workdir": work, "src": o.src, "perf": o.perf, "transport": o.transport},
	}
	logf("work directory %s; machine: %s", work, machineLine(res.Machine))

	src, err := e.buildHoldfast(ctx)
	res.Source = src
	if err != nil {
		fatalf("build holdfast: %v", err)
	}
	logf("holdfast built from %v", src["describe"])

	type entry struct {
		name string
		fn   func(context.Context) []*scenario
	}
	plan := []entry{
		{"full", func(ctx context.Context) []*scenario {
			var out []*scenario
			for _, m := range o.majors {
				out = append(out, e.scenarioFull(ctx, m))
			}
			return out
		}},
		{"zstd", func(ctx context.Context) []*scenario {
			var out []*scenario
			for _, m := range o.majors {
				out = append(out, e.scenarioZstd(ctx, m))
			}
			return out
		}},
		{"verify", func(ctx context.Context) []*scenario { return e.scenarioVerify(ctx) }},
		{"restore", func(ctx context.Context) []*scenario { return e.scenarioRestore(ctx) }},
		{"incr", func(ctx context.Context) []*scenario { return []*scenario{e.scenarioIncr(ctx)} }},
		{"mem", func(ctx context.Context) []*scenario { return []*scenario{e.scenarioMem(ctx)} }},
	}
	flush := func() {
		res.Finished = time.Now().UTC().Format(time.RFC3339)
		res.Machine["load_end"] = loadavg()
		res.Machine["core_scaling_end"] = fmt.Sprintf("%.2f", coreScaling())
		res.Data = e.data
		if err := writeJSON(o.jsonPath, res); err != nil {
			logf("write %s: %v", o.jsonPath, err)
		}
	}
	for _, p := range plan {
		if !o.only[p.name] || ctx.Err() != nil {
			continue
		}
		for _, sc := range p.fn(ctx) {
			sc.finish()
			res.Scenarios = append(res.Scenarios, sc)
		}
		flush() // partial results survive an interrupted run
	}
	flush()
	var md bytes.Buffer
	writeMarkdown(&md, res)
	os.Stdout.Write(md.Bytes())
	if o.mdPath != "" {
		if err := os.WriteFile(o.mdPath, md.Bytes(), 0o644); err != nil {
			logf("write %s: %v", o.mdPath, err)
		}
	}
	logf("results: %s", o.jsonPath)
	if ctx.Err() != nil {
		return 130
	}
	for _, sc := range res.Scenarios {
		if sc.Error != "" {
			return 1
		}
	}
	return 0
}

// env is the run's shared state.
type env struct {
	o        options
	root     string
	cache    string
	work     string
	holdfast string
	clusters map[string]*cluster
	data     []string // descriptions of the loaded clusters
	seq      int
}

func (e *env) serverBin(major int) string {
	return filepath.Join(e.cache, "pg", strconv.Itoa(major), "bin")
}

// toolsBin holds pg_basebackup, pg_verifybackup, pg_combinebackup of a major:
// Debian's for 15, built by scripts/setup-testenv.sh for 17 and 18.
func (e *env) toolsBin(major int) string {
	if major == 15 {
		return "/usr/lib/postgresql/15/bin"
	}
	return filepath.Join(e.cache, "pg-tools", strconv.Itoa(major), "bin")
}

const pgbench = "/usr/lib/postgresql/15/bin/pgbench"

// cluster returns a running, loaded cluster of the given major and scale.
func (e *env) cluster(ctx context.Context, major, scale int) (*cluster, error) {
	key := fmt.Sprintf("pg%d-s%d", major, scale)
	if c, ok := e.clusters[key]; ok {
		return c, nil
	}
	for _, p := range []string{filepath.Join(e.serverBin(major), "initdb"), filepath.Join(e.serverBin(major), "postgres"), pgbench} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s is missing: run bash scripts/setup-testenv.sh", p)
		}
	}
	dir := filepath.Join(e.work, key)
	if e.o.clusterCache != "" {
		dir = filepath.Join(e.o.clusterCache, key)
		if err := os.MkdirAll(e.o.clusterCache, 0o755); err != nil {
			return nil, err
		}
		if err := checkTraversable(dir); err != nil {
			return nil, err
		}
	}
	c, reused, err := newCluster(ctx, major, e.serverBin(major), dir, e.o.transport)
	if err != nil {
		return nil, err
	}
	loaded := filepath.Join(dir, "loaded")
	if _, err := os.Stat(loaded); err != nil {
		reused = false
	}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	e.clusters[key] = c
	if !reused {
		logf("PostgreSQL %d: loading pgbench scale %d (load %s)…", major, scale, loadavg())
		t0 := time.Now()
		if err := c.exec(ctx, "CREATE ROLE backup LOGIN REPLICATION"); err != nil {
			return nil, err
		}
		cmd := exec.CommandContext(ctx, pgbench, "-i", "-q", "-s", strconv.Itoa(scale), "-h", c.dir, "-p", strconv.Itoa(c.port), "-U", "postgres", "postgres")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgbench -i -s %d: %v: %s", scale, err, tail(out, 10))
		}
		if err := c.exec(ctx, "CHECKPOINT"); err != nil {
			return nil, err
		}
		if err := os.WriteFile(loaded, nil, 0o644); err != nil {
			return nil, err
		}
		logf("PostgreSQL %d: loaded in %s", major, time.Since(t0).Round(time.Second))
	} else {
		logf("PostgreSQL %d: reusing the loaded cluster in %s", major, dir)
	}
	size, _ := c.queryInt(ctx, "SELECT sum(pg_database_size(oid))::bigint FROM pg_database")
	ver, _ := c.queryString(ctx, "SHOW server_version")
	e.data = append(e.data, fmt.Sprintf("PostgreSQL %s, pgbench scale %d, %.2f GiB in databases, data checksums on, autovacuum off", ver, scale, float64(size)/(1<<30)))
	return c, nil
}

// stopCluster stops and forgets a cluster (the large one, after use).
func (e *env) stopCluster(major, scale int) {
	key := fmt.Sprintf("pg%d-s%d", major, scale)
	if c, ok := e.clusters[key]; ok {
		c.stop()
		delete(e.clusters, key)
		if e.o.clusterCache == "" {
			os.RemoveAll(c.dir)
		}
	}
}

// buildHoldfast builds the binary once, into the work directory.
func (e *env) buildHoldfast(ctx context.Context) (map[string]any, error) {
	src := map[string]any{}
	git := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", e.root}, args...)...)
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	head := git("rev-parse", "HEAD")
	status := git("status", "--porcelain", "--untracked-files=no")
	src["commit"] = head
	var dirty []string
	for _, l := range strings.Split(status, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			dirty = append(dirty, l)
		}
	}
	src["modified"] = dirty
	src["go"] = runtime.Version()
	buildDir := e.root
	switch e.o.src {
	case "tree":
		d := "working tree at " + short(head)
		if len(dirty) > 0 {
			d += fmt.Sprintf(" + %d modified tracked files (uncommitted: %s)", len(dirty), strings.Join(dirty, "; "))
		}
		src["describe"] = d
	case "head":
		buildDir = filepath.Join(e.work, "src")
		if err := os.MkdirAll(buildDir, 0o755); err != nil {
			return src, err
		}
		// git archive reads the object store only: no change to the repository's state.
		arch := exec.CommandContext(ctx, "git", "-C", e.root, "archive", "--format=tar", "HEAD")
		untar := exec.CommandContext(ctx, "tar", "-x", "-C", buildDir)
		pipe, err := arch.StdoutPipe()
		if err != nil {
			return src, err
		}
		untar.Stdin = pipe
		if err := arch.Start(); err != nil {
			return src, err
		}
		if out, err := untar.CombinedOutput(); err != nil {
			return src, fmt.Errorf("extract HEAD: %v: %s", err, out)
		}
		if err := arch.Wait(); err != nil {
			return src, fmt.Errorf("git archive HEAD: %v", err)
		}
		src["describe"] = "commit " + short(head) + " (git archive HEAD; working-tree changes not included)"
	default:
		return src, fmt.Errorf("-src %q: want tree or head", e.o.src)
	}
	e.holdfast = filepath.Join(e.work, "bin", "holdfast")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "libzstd", "-o", e.holdfast, "./cmd/holdfast")
	cmd.Dir = buildDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return src, fmt.Errorf("go build: %v\n%s\n(if another engineer's edit is half done, try -src head)", err, out)
	}
	return src, nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/holdfast-backup/holdfast\n")) {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New("run bench from inside the holdfast repository (go run ./bench)")
		}
	}
}

func machineInfo() map[string]any {
	m := map[string]any{"cpus": runtime.NumCPU(), "load_start": loadavg(), "core_scaling_start": fmt.Sprintf("%.2f", coreScaling())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu_model"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				fmt.Sscan(strings.TrimPrefix(l, "MemTotal:"), &kb)
			}
		}
		m["memory"] = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m["kernel"] = cstr(u.Release[:])
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		m["debian"] = strings.TrimSpace(string(b))
	}
	return m
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}
