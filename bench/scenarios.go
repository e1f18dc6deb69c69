package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// begin starts a scenario: its directory, the load, a log line.
func (e *env) begin(id, title string) (*scenario, string) {
	sc := &scenario{ID: id, Title: title}
	sc.Load = append(sc.Load, loadavg())
	sc.Cores = append(sc.Cores, coreScaling())
	dir := filepath.Join(e.work, slug(id))
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sc.Error = err.Error()
	}
	logf("scenario %s: %s", id, title)
	return sc, dir
}

func (e *env) end(sc *scenario, dir string, err error) *scenario {
	if err != nil {
		sc.Error = err.Error()
		logf("scenario %s FAILED: %v", sc.ID, err)
	}
	sc.Load = append(sc.Load, loadavg())
	sc.Cores = append(sc.Cores, coreScaling())
	if !e.o.keep {
		os.RemoveAll(dir)
	}
	return sc
}

const fsyncNote = "Durability: pg_basebackup fsyncs every file it wrote and the directory at the end; Holdfast fsyncs each object (temp file, rename, directory) as it commits it. Both sides sync; neither runs with --no-sync."

// 1. Full backup, uncompressed.
func (e *env) scenarioFull(ctx context.Context, major int) *scenario {
	sc, dir := e.begin(fmt.Sprintf("1-pg%d", major), fmt.Sprintf("full backup, uncompressed, PostgreSQL %d", major))
	return e.end(sc, dir, func() error {
		c, err := e.cluster(ctx, major, e.o.scale)
		if err != nil {
			return err
		}
		cfg, err := e.hfConfig(fmt.Sprintf("full-none-%d", major), filepath.Join(dir, "hf-repo"), c, "none")
		if err != nil {
			return err
		}
		hfName := "holdfast dump (compression none)"
		pgName := fmt.Sprintf("pg_basebackup %d -Ft -X stream", major)
		bhName := "BASE_BACKUP blackhole (server ceiling)"
		sides := []side{
			e.hfDumpSide(hfName, c, cfg, "full", nil),
			e.pgbbSide(pgName, c, major, filepath.Join(dir, "pgbb")),
			blackholeSide(bhName, c),
		}
		shmName := "holdfast dump into tmpfs (no disk)"
		if shm := tmpfsDir(); shm != "" {
			repo := filepath.Join(shm, filepath.Base(e.work)+"-"+slug(sc.ID))
			defer removeAll(repo)
			cfg, err := e.hfConfig(fmt.Sprintf("full-none-shm-%d", major), repo, c, "none")
			if err != nil {
				return err
			}
			s := e.hfDumpSide(shmName, c, cfg, "full", nil)
			s.Profile = false
			sides = append(sides, s)
		}
		sc.note("Same cluster, same transport (see Connections above), role backup. Holdfast: compression none, CRC32C manifest checksums, WAL streamed on a second connection, fast checkpoint, server page-checksum verification on, PROGRESS on. pg_basebackup: -Ft -X stream -c fast --manifest-checksums=CRC32C (no -P, so no PROGRESS).")
		sc.note("Ceiling: the same BASE_BACKUP options as Holdfast (PROGRESS, fast checkpoint, MANIFEST 'yes', CRC32C) with TARGET 'blackhole', timed in process (connect to close); it streams no WAL and writes nothing.")
		sc.note(fsyncNote)
		sc.note("Holdfast into tmpfs (when /dev/shm is one): the same dump into a repository in memory, to show what is left of the gap to the ceiling without the disk; the server CPU ratios show what the walsender spends sending to a client that the blackhole does not.")
		if err := runRounds(ctx, sc, sides, e.o.warmup, e.o.pairs, nil); err != nil {
			return err
		}
		sc.addRatio("full backup vs pg_basebackup", hfName, pgName, "wall", 1.0)
		sc.addRatio("full backup vs the blackhole ceiling", hfName, bhName, "wall", 1.10)
		sc.addRatio("pg_basebackup vs the blackhole ceiling", pgName, bhName, "wall", 0)
		sc.addRatio("holdfast into tmpfs vs the blackhole ceiling", shmName, bhName, "wall", 0)
		sc.addRatio("server CPU, holdfast vs the blackhole", hfName, bhName, "server_cpu", 0)
		sc.addRatio("server CPU, pg_basebackup vs the blackhole", pgName, bhName, "server_cpu", 0)
		sc.addRatio("CPU, holdfast vs pg_basebackup", hfName, pgName, "cpu", 0)
		sc.addRatio("server CPU, holdfast vs pg_basebackup", hfName, pgName, "server_cpu", 0)
		sc.addRatio("stored size, holdfast vs pg_basebackup", hfName, pgName, "bytes", 0)
		e.profile(ctx, sc, sides)
		return nil
	}())
}

// 2. Compressed backups.
func (e *env) scenarioZstd(ctx context.Context, major int) *scenario {
	sc, dir := e.begin(fmt.Sprintf("2-pg%d", major), fmt.Sprintf("zstd-compressed full backup, PostgreSQL %d", major))
	return e.end(sc, dir, func() error {
		c, err := e.cluster(ctx, major, e.o.scale)
		if err != nil {
			return err
		}
		cfg, err := e.hfConfig(fmt.Sprintf("full-zstd-%d", major), filepath.Join(dir, "hf-repo"), c, "zstd")
		if err != nil {
			return err
		}
		hfName := "holdfast dump (zstd, default)"
		cliName := fmt.Sprintf("pg_basebackup %d --compress=client-zstd", major)
		srvName := fmt.Sprintf("pg_basebackup %d --compress=server-zstd", major)
		sides := []side{
			e.hfDumpSide(hfName, c, cfg, "full", nil),
			e.pgbbSide(cliName, c, major, filepath.Join(dir, "pgbb-client"), "--compress=client-zstd"),
			e.pgbbSide(srvName, c, major, filepath.Join(dir, "pgbb-server"), "--compress=server-zstd"),
		}
		sc.note("Each side at its default zstd level: Holdfast level 1 (libzstd, as the scripts build it), independent 4 MiB frames compressed on GOMAXPROCS goroutines, WAL archive compressed too; pg_basebackup level 3 (libzstd), client-zstd on one thread (no workers= given), server-zstd in the walsender, and pg_wal.tar left uncompressed by both. pg_basebackup options otherwise as in scenario 1. Compare the base archives in the file lists below as well as the totals.")
		sc.note(fsyncNote)
		if err := runRounds(ctx, sc, sides, e.o.warmup, e.o.pairs, nil); err != nil {
			return err
		}
		sc.addRatio("zstd backup vs pg_basebackup client-zstd", hfName, cliName, "wall", 0.8)
		sc.addRatio("zstd backup size vs pg_basebackup client-zstd", hfName, cliName, "bytes", 1.0)
		sc.addRatio("zstd backup vs pg_basebackup server-zstd", hfName, srvName, "wall", 0)
		sc.addRatio("zstd backup size vs pg_basebackup server-zstd", hfName, srvName, "bytes", 0)
		sc.addRatio("CPU, holdfast vs client-zstd", hfName, cliName, "cpu", 0)
		e.profile(ctx, sc, sides)
		return nil
	}())
}

// takeBackup runs one untimed holdfast dump and returns the new backup.
func (e *env) takeBackup(ctx context.Context, cfg *hfConfig, level string) (hfBackup, error) {
	if _, err := measure(ctx, e.hf(ctx, prof{}, cfg, "dump", cfg.name, "--level", level)); err != nil {
		return hfBackup{}, err
	}
	b, err := newest(cfg.repo)
	if err == nil && b.Level != level {
		err = fmt.Errorf("holdfast took a %s backup, not %s", b.Level, level)
	}
	return b, err
}

// 3. Verify.
func (e *env) scenarioVerify(ctx context.Context) []*scenario {
	out := []*scenario{e.verifyAt(ctx, "3-pg18", "verify a full backup, PostgreSQL 18", e.o.scale, true)}
	if !e.o.skipLarge {
		large := e.o.scale * e.o.largeFactor
		out = append(out, e.verifyAt(ctx, "3-pg18-large", fmt.Sprintf("verify a full backup at scale %d (%d×), PostgreSQL 18", large, e.o.largeFactor), large, false))
	}
	return out
}

// verifyAt compares holdfast verify with pg_verifybackup on backups of the
// cluster of the given scale. At the default size the fixed costs of a
// run (process start, the first frames) are a good part of the time; the
// large size shows the rate. reference adds pg_verifybackup on
// pg_basebackup's own backup.
func (e *env) verifyAt(ctx context.Context, id, title string, scale int, reference bool) *scenario {
	sc, dir := e.begin(id, title)
	return e.end(sc, dir, func() error {
		c, err := e.cluster(ctx, 18, scale)
		if err != nil {
			return err
		}
		var sides []side
		for _, comp := range []string{"zstd", "none"} {
			cfg, err := e.hfConfig(fmt.Sprintf("verify-%s-%d", comp, scale), filepath.Join(dir, "repo-"+comp), c, comp)
			if err != nil {
				return err
			}
			b, err := e.takeBackup(ctx, cfg, "full")
			if err != nil {
				return err
			}
			view := filepath.Join(dir, "view-"+comp)
			if err := linkView(b.Dir, view); err != nil {
				return err
			}
			hfName := fmt.Sprintf("holdfast verify (%s backup)", comp)
			pgName := fmt.Sprintf("pg_verifybackup 18 -F t -n (same %s backup)", comp)
			sides = append(sides, e.hfVerifySide(hfName, cfg, b.ID, treeBytes(b.Dir)), e.pgVerifySide(pgName, view))
			sc.addRatio(fmt.Sprintf("verify vs pg_verifybackup 18 (%s)", comp), hfName, pgName, "wall", 0.6)
			sc.addRatio(fmt.Sprintf("CPU, verify vs pg_verifybackup 18 (%s)", comp), hfName, pgName, "cpu", 0)
		}
		note := "One backup each, taken before the rounds: Holdfast zstd, Holdfast uncompressed"
		if reference {
			pgbb := filepath.Join(dir, "pgbb")
			if _, err := measure(ctx, exec.CommandContext(ctx, filepath.Join(e.toolsBin(18), "pg_basebackup"), "-h", c.host, "-p", fmt.Sprint(c.port), "-U", "backup", "-D", pgbb, "-Ft", "-X", "stream", "-c", "fast", "--manifest-checksums=CRC32C")); err != nil {
				return err
			}
			refName := "pg_verifybackup 18 -F t -n (pg_basebackup's own backup)"
			sides = append(sides, e.pgVerifySide(refName, pgbb))
			sc.addRatio("pg_verifybackup: Holdfast's uncompressed backup vs pg_basebackup's", "pg_verifybackup 18 -F t -n (same none backup)", refName, "wall", 0)
			note += ", pg_basebackup -Ft -X stream (uncompressed)"
			// What a run costs before and after its work: at this size it
			// is a good part of Holdfast's time, so every run shows it.
			hfStart, pgStart := "holdfast version (process start and exit)", "pg_verifybackup 18 --version (process start and exit)"
			sides = append(sides, startSide(hfStart, e.holdfast, "version"), startSide(pgStart, filepath.Join(e.toolsBin(18), "pg_verifybackup"), "--version"))
			sc.addRatio("process start and exit, holdfast vs pg_verifybackup 18", hfStart, pgStart, "wall", 0)
		}
		sc.note("%s. pg_verifybackup reads Holdfast's backups through a directory of hard links without backup.json and *.idx (made once, untimed). -n: pg_verifybackup does not parse the WAL; Holdfast checks pg_wal.tar only against its stored digest. Bytes = the backup's size.", note)
		if err := runRounds(ctx, sc, sides, e.o.warmup, e.o.pairs, nil); err != nil {
			return err
		}
		e.profile(ctx, sc, sides)
		return nil
	}())
}

// touch updates a contiguous ~1% of pgbench_accounts, starting at frac of
// its aid range, and returns the number of rows.
func (e *env) touch(ctx context.Context, c *cluster, scale int, frac float64) (int64, error) {
	n := int64(scale) * 100000
	k := n / 100
	from := int64(frac*float64(n)) + 1
	to := from + k - 1
	if err := c.exec(ctx, fmt.Sprintf("UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN %d AND %d", from, to)); err != nil {
		return 0, err
	}
	return k, nil
}

// 4. Restore of a chain: full + 2 incrementals.
func (e *env) scenarioRestore(ctx context.Context) []*scenario {
	var out []*scenario
	base := filepath.Join(e.work, "4-chains")
	defer os.RemoveAll(base)
	var setupErr error
	chains := map[string][]hfBackup{}
	cfgs := map[string]*hfConfig{}
	func() {
		c, err := e.cluster(ctx, 18, e.o.scale)
		if err != nil {
			setupErr = err
			return
		}
		logf("scenario 4: taking the chains (full, change, incremental, change, incremental)")
		for _, comp := range e.o.restoreComps {
			if cfgs[comp], err = e.hfConfig("chain-"+comp, filepath.Join(base, "repo-"+comp), c, comp); err != nil {
				setupErr = err
				return
			}
		}
		for step, level := range []string{"full", "incremental", "incremental"} {
			if step > 0 {
				if _, err := e.touch(ctx, c, e.o.scale, 0.1+0.3*float64(step)); err != nil {
					setupErr = err
					return
				}
			}
			for _, comp := range e.o.restoreComps {
				b, err := e.takeBackup(ctx, cfgs[comp], level)
				if err != nil {
					setupErr = err
					return
				}
				chains[comp] = append(chains[comp], b)
			}
		}
	}()
	for _, comp := range e.o.restoreComps {
		sc, dir := e.begin("4-"+comp, fmt.Sprintf("restore a chain (full + 2 incrementals), %s archives, PostgreSQL 18", comp))
		out = append(out, e.end(sc, dir, func() error {
			if setupErr != nil {
				return setupErr
			}
			chain := chains[comp]
			last := chain[len(chain)-1]
			hfName := "holdfast restore"
			pgName := "tar -x + pg_combinebackup 18"
			hfOut := filepath.Join(dir, "hf-out")
			combWork := filepath.Join(dir, "combine")
			sides := []side{
				e.hfRestoreSide(hfName, cfgs[comp], last.ID, hfOut),
				e.combineSide(pgName, chain, combWork),
			}
			var sizes []string
			for _, b := range chain {
				sizes = append(sizes, fmt.Sprintf("%s %.0f MiB stored", b.Level, float64(b.StoredBytes)/(1<<20)))
			}
			sc.note("The same stored chain for both sides (%s); each incremental follows an UPDATE of 1%% of pgbench_accounts. Both write into the same file system (%s).", strings.Join(sizes, ", "), e.work)
			sc.note("tar + pg_combinebackup, all timed: tar%s -xf base archive of each backup into its own directory, cp its backup_manifest, pg_combinebackup 18 dirs… -o out, tar -xf the newest pg_wal archive into out/pg_wal. Holdfast restore ends with syncfs(2) of the target file system; pg_combinebackup fsyncs its output; tar's intermediate directories are not synced.", map[bool]string{true: " --zstd", false: ""}[comp == "zstd"])
			check := func() {
				d := compareTrees(hfOut, filepath.Join(combWork, "out"))
				sc.note("Output check after the warm-up: %s", d)
				logf("  output check: %s", d)
			}
			if err := runRounds(ctx, sc, sides, e.o.warmup, e.o.pairs, check); err != nil {
				return err
			}
			sc.addRatio("chain restore vs tar + pg_combinebackup 18", hfName, pgName, "wall", 0.7)
			sc.addRatio("CPU, restore vs tar + pg_combinebackup", hfName, pgName, "cpu", 0)
			e.profile(ctx, sc, sides)
			return nil
		}()))
	}
	return out
}

// compareTrees compares two restored data directories file by file
// (backup_manifest aside) and describes the differences.
func compareTrees(a, b string) string {
	list := func(root string) map[string]fs.FileInfo {
		m := map[string]fs.FileInfo{}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == root {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if fi, err := d.Info(); err == nil {
				m[rel] = fi
			}
			return nil
		})
		return m
	}
	ma, mb := list(a), list(b)
	var onlyA, onlyB, differ []string
	same := 0
	for p, fa := range ma {
		fb, ok := mb[p]
		if !ok {
			onlyA = append(onlyA, p)
			continue
		}
		if !fa.Mode().IsRegular() || p == "backup_manifest" {
			continue
		}
		if fa.Size() != fb.Size() || !sameContent(filepath.Join(a, p), filepath.Join(b, p)) {
			differ = append(differ, p)
		} else {
			same++
		}
	}
	for p := range mb {
		if _, ok := ma[p]; !ok {
			onlyB = append(onlyB, p)
		}
	}
	show := func(v []string) string {
		sort.Strings(v)
		if len(v) > 8 {
			v = append(v[:8], fmt.Sprintf("… %d more", len(v)-8))
		}
		return strings.Join(v, ", ")
	}
	s := fmt.Sprintf("%d regular files identical", same)
	if len(differ) > 0 {
		s += fmt.Sprintf("; %d differ: %s", len(differ), show(differ))
	}
	if len(onlyA) > 0 {
		s += fmt.Sprintf("; only in Holdfast's: %s", show(onlyA))
	}
	if len(onlyB) > 0 {
		s += fmt.Sprintf("; only in pg_combinebackup's: %s", show(onlyB))
	}
	return s
}

func sameContent(a, b string) bool {
	fa, err := os.Open(a)
	if err != nil {
		return false
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return ea != nil && eb != nil
		}
	}
}

// 5. Incremental at 1% change vs full.
func (e *env) scenarioIncr(ctx context.Context) *scenario {
	sc, dir := e.begin("5-pg18", "incremental after a 1% change vs full, zstd, PostgreSQL 18")
	return e.end(sc, dir, func() error {
		c, err := e.cluster(ctx, 18, e.o.scale)
		if err != nil {
			return err
		}
		// The parent is taken under the config name the incremental runs
		// use (the config is part of the repository path), into its own
		// repository; each incremental run gets a hard-linked copy of it.
		parentCfg, err := e.hfConfig("incr-inc", filepath.Join(dir, "parent-repo"), c, "zstd")
		if err != nil {
			return err
		}
		if _, err := e.takeBackup(ctx, parentCfg, "full"); err != nil {
			return err
		}
		before, _ := c.queryInt(ctx, "SELECT pg_relation_size('pgbench_accounts')")
		rows, err := e.touch(ctx, c, e.o.scale, 0.55)
		if err != nil {
			return err
		}
		after, _ := c.queryInt(ctx, "SELECT pg_relation_size('pgbench_accounts')")
		sc.note("After a full backup, UPDATE pgbench_accounts SET abalance = abalance + 1 for %d contiguous aids (1%% of %d rows): the table grew from %d to %d blocks (non-HOT updates write new tuple versions into new blocks, so about 2%% of its blocks changed, plus the primary key's leaf pages).", rows, int64(e.o.scale)*100000, before/8192, after/8192)
		sc.note("Every incremental run starts from a hard-linked copy of the repository holding just that full backup (made untimed), so each round takes the same incremental. The full side starts from an empty repository. Bytes: the new backup's directory.")
		fullCfg, err := e.hfConfig("incr-full", filepath.Join(dir, "full-repo"), c, "zstd")
		if err != nil {
			return err
		}
		incCfg, err := e.hfConfig("incr-inc", filepath.Join(dir, "inc-repo"), c, "zstd")
		if err != nil {
			return err
		}
		fullName := "holdfast dump --level full"
		incName := "holdfast dump --level incremental"
		sides := []side{
			e.hfDumpSide(fullName, c, fullCfg, "full", nil),
			e.hfDumpSide(incName, c, incCfg, "incremental", func() error {
				if err := removeAll(incCfg.repo); err != nil {
					return err
				}
				return exec.Command("cp", "-al", parentCfg.repo, incCfg.repo).Run()
			}),
		}
		if err := runRounds(ctx, sc, sides, e.o.warmup, e.o.pairs, nil); err != nil {
			return err
		}
		sc.addRatio("incremental at 1% change vs full, time", incName, fullName, "wall", 0.15)
		sc.addRatio("incremental at 1% change vs full, stored size", incName, fullName, "bytes", 0.05)
		sc.addRatio("incremental vs full, server CPU", incName, fullName, "server_cpu", 0)
		e.profile(ctx, sc, sides[1:])
		return nil
	}())
}

// 6. Peak memory at 1× and at -large× the size.
func (e *env) scenarioMem(ctx context.Context) *scenario {
	large := e.o.scale * e.o.largeFactor
	title := fmt.Sprintf("peak RSS of dump and restore at scale %d and %d (%d×)", e.o.scale, large, e.o.largeFactor)
	if e.o.skipLarge {
		title = fmt.Sprintf("peak RSS of dump and restore at scale %d (large size skipped)", e.o.scale)
	}
	sc, dir := e.begin("6-pg18", title)
	return e.end(sc, dir, func() error {
		sizes := []int{e.o.scale}
		if !e.o.skipLarge {
			sizes = append(sizes, large)
		}
		var dumps, restores []side
		name := func(what string, i int) string {
			if i == 0 {
				return what + " 1×"
			}
			return fmt.Sprintf("%s %d×", what, e.o.largeFactor)
		}
		for i, s := range sizes {
			c, err := e.cluster(ctx, 18, s)
			if err != nil {
				return err
			}
			cfg, err := e.hfConfig(fmt.Sprintf("mem-dump-%d", s), filepath.Join(dir, fmt.Sprintf("dump-repo-%d", s)), c, "zstd")
			if err != nil {
				return err
			}
			dumps = append(dumps, e.hfDumpSide(name("holdfast dump", i), c, cfg, "full", nil))
			store, err := e.hfConfig(fmt.Sprintf("mem-store-%d", s), filepath.Join(dir, fmt.Sprintf("store-repo-%d", s)), c, "zstd")
			if err != nil {
				return err
			}
			b, err := e.takeBackup(ctx, store, "full")
			if err != nil {
				return err
			}
			restores = append(restores, e.hfRestoreSide(name("holdfast restore", i), store, b.ID, filepath.Join(dir, fmt.Sprintf("restore-out-%d", s))))
		}
		sc.note("Holdfast defaults (zstd), full backups into an empty repository; restore of one stored full backup into an empty directory. Peak RSS is the child's ru_maxrss.")
		if err := runRounds(ctx, sc, dumps, e.o.warmup, e.o.memPairs, nil); err != nil {
			return err
		}
		if err := runRounds(ctx, sc, restores, e.o.warmup, e.o.memPairs, nil); err != nil {
			return err
		}
		if !e.o.skipLarge {
			for _, what := range []string{"holdfast dump", "holdfast restore"} {
				sc.addRatio(what+" peak RSS, large vs 1×", name(what, 1), name(what, 0), "rss", 1.2)
				sc.addRatio(what+" wall time, large vs 1×", name(what, 1), name(what, 0), "wall", 0)
				sc.addLimit(what+" peak RSS at the large size", name(what, 1), "rss", 100<<20)
			}
			e.stopCluster(18, large)
		} else {
			for _, what := range []string{"holdfast dump", "holdfast restore"} {
				sc.addLimit(what+" peak RSS at 1× (large size skipped)", name(what, 0), "rss", 100<<20)
			}
		}
		return nil
	}())
}
