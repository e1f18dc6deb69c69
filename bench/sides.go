package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

// hfConfig is one Holdfast config file of the run, with its repository.
type hfConfig struct {
	dir, name, repo string
}

// hfConfig writes <work>/etc/<name>.yaml: one disk, the cluster over its
// -transport connection as role backup, the given compression, CRC32C checksums
// (pg_basebackup's default), everything else Holdfast's defaults (WAL
// streamed, fast checkpoint, page checksums verified by the server).
func (e *env) hfConfig(name, repoDir string, c *cluster, compression string) (*hfConfig, error) {
	dir := filepath.Join(e.work, "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	y := fmt.Sprintf("repository: %q\ndisks:\n  - host: bench\n    disk: %q\n    postgres: %q\n    compression: %s\n    checksums: CRC32C\n",
		repoDir, fmt.Sprintf("pg%d", c.major), c.backupConn("backup"), compression)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(y), 0o644); err != nil {
		return nil, err
	}
	return &hfConfig{dir: dir, name: name, repo: repoDir}, nil
}

// hf is a holdfast command line, under perf record when p says so.
func (e *env) hf(ctx context.Context, p prof, cfg *hfConfig, args ...string) *exec.Cmd {
	full := append([]string{"--config-dir", cfg.dir}, args...)
	if p.out != "" {
		pa := []string{"record", "-g", "-F", strconv.Itoa(e.o.perfFreq), "-o", p.out, "--", e.holdfast}
		return exec.CommandContext(ctx, "perf", append(pa, full...)...)
	}
	return exec.CommandContext(ctx, e.holdfast, full...)
}

// hfBackup is what the harness reads from a backup.json.
type hfBackup struct {
	ID          string  `json:"id"`
	Level       string  `json:"level"`
	Parent      *string `json:"parent"`
	StoredBytes int64   `json:"stored_bytes"`
	SizeBytes   int64   `json:"size_bytes"`
	Archives    []struct {
		Name         string `json:"name"`
		Object       string `json:"object"`
		TablespaceID uint32 `json:"tablespace_oid"`
	} `json:"archives"`
	Dir string `json:"-"`
}

// listBackups finds the committed backups of a local repository, oldest first.
func listBackups(repoDir string) ([]hfBackup, error) {
	var out []hfBackup
	err := filepath.WalkDir(repoDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "backup.json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var hb hfBackup
		if err := json.Unmarshal(b, &hb); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hb.Dir = filepath.Dir(p)
		out = append(out, hb)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

func newest(repoDir string) (hfBackup, error) {
	bs, err := listBackups(repoDir)
	if err != nil {
		return hfBackup{}, err
	}
	if len(bs) == 0 {
		return hfBackup{}, fmt.Errorf("no backup in %s", repoDir)
	}
	return bs[len(bs)-1], nil
}

// serverTimed runs fn and adds the server's CPU time over it.
func serverTimed(c *cluster, fn func() (sample, error)) (sample, error) {
	base := c.settle(nil)
	before := c.serverCPU()
	s, err := fn()
	c.settle(base)
	s.ServerCPU = c.serverCPU() - before
	return s, err
}

// hfDumpSide runs holdfast dump --level LEVEL. prep runs untimed first; by
// default it empties the repository so that every run starts alike.
// Bytes is the new backup's directory: archives, indexes, manifest, backup.json.
func (e *env) hfDumpSide(name string, c *cluster, cfg *hfConfig, level string, prep func() error) side {
	if prep == nil {
		prep = func() error { return removeAll(cfg.repo) }
	}
	return side{Name: name, Profile: true, Run: func(ctx context.Context, p prof) (sample, error) {
		if err := prep(); err != nil {
			return sample{}, err
		}
		s, err := serverTimed(c, func() (sample, error) {
			return measure(ctx, e.hf(ctx, p, cfg, "dump", cfg.name, "--level", level))
		})
		if err != nil {
			return s, err
		}
		b, err := newest(cfg.repo)
		if err != nil {
			return s, err
		}
		if b.Level != level {
			return s, fmt.Errorf("holdfast took a %s backup, not %s", b.Level, level)
		}
		s.Bytes = treeBytes(b.Dir)
		s.Files = topFiles(b.Dir)
		return s, nil
	}}
}

// pgbbSide runs pg_basebackup -Ft -X stream with a fast checkpoint (as
// Holdfast's default) and CRC32C manifest checksums (both defaults), into
// a fresh directory; pg_basebackup fsyncs its output at the end.
func (e *env) pgbbSide(name string, c *cluster, major int, out string, extra ...string) side {
	return side{Name: name, Run: func(ctx context.Context, p prof) (sample, error) {
		if err := removeAll(out); err != nil {
			return sample{}, err
		}
		args := append([]string{"-h", c.host, "-p", strconv.Itoa(c.port), "-U", "backup", "-D", out,
			"-Ft", "-X", "stream", "-c", "fast", "--manifest-checksums=CRC32C"}, extra...)
		s, err := serverTimed(c, func() (sample, error) {
			return measure(ctx, exec.CommandContext(ctx, filepath.Join(e.toolsBin(major), "pg_basebackup"), args...))
		})
		if err != nil {
			return s, err
		}
		s.Bytes = treeBytes(out)
		s.Files = topFiles(out)
		return s, nil
	}}
}

// blackholeOptions is the BASE_BACKUP Holdfast sends, with TARGET 'blackhole':
// the server reads every file, checks page checksums, computes the manifest
// checksums and throws the result away.
func blackholeOptions() pgrepl.BaseBackupOptions {
	return pgrepl.BaseBackupOptions{
		Label:             "holdfast bench blackhole",
		Progress:          true, // as Holdfast asks
		Checkpoint:        pgrepl.CheckpointFast,
		Manifest:          pgrepl.ManifestYes,
		ManifestChecksums: "CRC32C",
		Target:            pgrepl.TargetBlackhole,
	}
}

// blackholeSide times BASE_BACKUP (TARGET 'blackhole') in process: connect,
// the command, close. Only wall time and server CPU mean anything.
func blackholeSide(name string, c *cluster) side {
	return side{Name: name, Run: func(ctx context.Context, p prof) (sample, error) {
		return serverTimed(c, func() (sample, error) {
			syscall.Sync()
			s := sample{Load1: load1(), InProc: true}
			t0 := time.Now()
			conn, err := pgrepl.Connect(ctx, c.backupConn("backup"))
			if err != nil {
				return s, err
			}
			_, err = conn.BaseBackup(ctx, blackholeOptions(), discardSink{})
			conn.Close(context.WithoutCancel(ctx))
			s.WallS = time.Since(t0).Seconds()
			return s, err
		})
	}}
}

type discardSink struct{}

func (discardSink) Start(pgrepl.Start) error          { return nil }
func (discardSink) BeginArchive(string, string) error { return nil }
func (discardSink) ArchiveData([]byte) error          { return nil }
func (discardSink) EndArchive() error                 { return nil }
func (discardSink) ManifestData([]byte) error         { return nil }
func (discardSink) Progress(int64)                    {}
func (discardSink) Notice(*pgconn.Notice)             {}

// hfVerifySide runs holdfast verify on one backup.
func (e *env) hfVerifySide(name string, cfg *hfConfig, id string, bytes int64) side {
	return side{Name: name, Profile: true, Run: func(ctx context.Context, p prof) (sample, error) {
		s, err := measure(ctx, e.hf(ctx, p, cfg, "verify", cfg.name, id))
		s.Bytes = bytes
		return s, err
	}}
}

// pgVerifySide runs pg_verifybackup 18 -F t -n (no WAL parsing) on a tar backup.
func (e *env) pgVerifySide(name, dir string) side {
	bytes := treeBytes(dir)
	return side{Name: name, Run: func(ctx context.Context, p prof) (sample, error) {
		s, err := measure(ctx, exec.CommandContext(ctx, filepath.Join(e.toolsBin(18), "pg_verifybackup"), "-F", "t", "-n", dir))
		s.Bytes = bytes
		return s, err
	}}
}

// startSide runs a program that only starts, prints its version and
// exits: the fixed cost of every run of that program.
func startSide(name, program string, args ...string) side {
	return side{Name: name, Run: func(ctx context.Context, p prof) (sample, error) {
		return measure(ctx, exec.CommandContext(ctx, program, args...))
	}}
}

// linkView hard-links a stored Holdfast backup's archives and manifest into
// view, leaving out backup.json and the indexes, which pg_verifybackup would
// report as extra files.
func linkView(backupDir, view string) error {
	if err := os.MkdirAll(view, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(backupDir)
	if err != nil {
		return err
	}
	for _, en := range ents {
		n := en.Name()
		if n == "backup.json" || strings.HasSuffix(n, ".idx") {
			continue
		}
		if err := os.Link(filepath.Join(backupDir, n), filepath.Join(view, n)); err != nil {
			return err
		}
	}
	return nil
}

// hfRestoreSide runs holdfast restore of one backup into a fresh directory.
func (e *env) hfRestoreSide(name string, cfg *hfConfig, id, out string) side {
	return side{Name: name, Profile: true, Run: func(ctx context.Context, p prof) (sample, error) {
		if err := removeAll(out); err != nil {
			return sample{}, err
		}
		s, err := measure(ctx, e.hf(ctx, p, cfg, "restore", cfg.name, id, "--to", out))
		if err != nil {
			return s, err
		}
		s.Bytes = treeBytes(out)
		return s, nil
	}}
}

// combineSide restores a chain of Holdfast's stored backups the way a user
// without Holdfast would (docs/format.md): extract each backup's base
// archive with GNU tar into its own directory, add its backup_manifest,
// run pg_combinebackup 18 on the directories, then extract the newest
// backup's pg_wal archive into the result. Every step is timed; only
// creating the empty directories is not. pg_combinebackup fsyncs its
// output (as Holdfast's restore syncs the file system); tar does not sync
// the intermediate directories, which a user would delete.
func (e *env) combineSide(name string, chain []hfBackup, work string) side {
	return side{Name: name, Run: func(ctx context.Context, p prof) (sample, error) {
		if err := removeAll(work); err != nil {
			return sample{}, err
		}
		var cmds []*exec.Cmd
		var dirs []string
		tarArgs := func(object string) []string {
			if strings.HasSuffix(object, ".zst") {
				return []string{"--zstd", "-xf"}
			}
			return []string{"-xf"}
		}
		for i, b := range chain {
			d := filepath.Join(work, strconv.Itoa(i))
			if err := os.MkdirAll(d, 0o700); err != nil {
				return sample{}, err
			}
			dirs = append(dirs, d)
			for _, a := range b.Archives {
				switch {
				case a.Name == "base.tar":
					cmds = append(cmds, exec.CommandContext(ctx, "tar", append(tarArgs(a.Object), filepath.Join(b.Dir, a.Object), "-C", d)...))
				case a.Name == "pg_wal.tar":
				default:
					return sample{}, fmt.Errorf("backup %s has tablespace archive %s: the harness does not map tablespaces", b.ID, a.Name)
				}
			}
			cmds = append(cmds, exec.CommandContext(ctx, "cp", filepath.Join(b.Dir, "backup_manifest"), filepath.Join(d, "backup_manifest")))
		}
		out := filepath.Join(work, "out")
		cmds = append(cmds, exec.CommandContext(ctx, filepath.Join(e.toolsBin(18), "pg_combinebackup"), append(dirs, "-o", out)...))
		last := chain[len(chain)-1]
		for _, a := range last.Archives {
			if a.Name == "pg_wal.tar" {
				cmds = append(cmds, exec.CommandContext(ctx, "tar", append(tarArgs(a.Object), filepath.Join(last.Dir, a.Object), "-C", filepath.Join(out, "pg_wal"))...))
			}
		}
		s, err := measure(ctx, cmds...)
		if err != nil {
			return s, err
		}
		s.Bytes = treeBytes(out)
		return s, nil
	}}
}

// profile runs each Holdfast side once more under perf record and writes
// the reports next to bench/out/results.json.
func (e *env) profile(ctx context.Context, sc *scenario, sides []side) {
	if !e.o.perf {
		return
	}
	dir := filepath.Join(filepath.Dir(e.o.jsonPath), "perf")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		sc.note("perf: %v", err)
		return
	}
	for _, s := range sides {
		if r := sc.find(s.Name); !s.Profile || ctx.Err() != nil || r == nil || r.Unavailable != "" {
			continue
		}
		base := filepath.Join(dir, slug(sc.ID+" "+s.Name))
		logf("  perf record: %s", s.Name)
		if _, err := s.Run(ctx, prof{out: base + ".data"}); err != nil {
			sc.note("perf record of %s failed: %v", s.Name, err)
			continue
		}
		var text strings.Builder
		for _, rep := range [][]string{
			{"--no-children", "--sort", "dso", "--percent-limit", "0.5"},
			{"--no-children", "--sort", "dso,symbol", "--percent-limit", "0.4"},
			{"--children", "--sort", "symbol", "--percent-limit", "3"},
		} {
			args := append([]string{"report", "-i", base + ".data", "--stdio", "-g", "none"}, rep...)
			out, err := exec.CommandContext(ctx, "perf", args...).Output()
			fmt.Fprintf(&text, "##### perf %s\n", strings.Join(args, " "))
			if err != nil {
				fmt.Fprintf(&text, "failed: %v\n", err)
			}
			text.Write(out)
			text.WriteString("\n")
		}
		if err := os.WriteFile(base+".txt", []byte(text.String()), 0o644); err != nil {
			sc.note("perf: %v", err)
			continue
		}
		rel, err := filepath.Rel(e.root, base+".txt")
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = base + ".txt"
		}
		sc.Perf = append(sc.Perf, rel)
	}
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// tmpfsDir is a directory for a repository in memory (/dev/shm when it is
// a tmpfs), or "" when there is none.
func tmpfsDir() string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC {
		return ""
	}
	return "/dev/shm"
}
