package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/backup"
)

type dumpOptions struct {
	config string
	host   string
	disks  []string
	level  string
}

func newDumpCmd(g *globals) *cobra.Command {
	var o dumpOptions
	cmd := &cobra.Command{
		Use:   "dump CONFIG [HOST [DISK...]]",
		Short: "Back up the disks of a config (all, a host's, or the named ones)",
		Long: `Back up the named disks: every disk of CONFIG, every disk of HOST, or the
listed DISKs of HOST. Exit status 0 only if every disk was backed up.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.config = args[0]
			if len(args) > 1 {
				o.host = args[1]
				o.disks = args[2:]
			}
			return classify(runDump(cmd.Context(), g, o))
		},
	}
	cmd.Flags().StringVar(&o.level, "level", "", "full, incremental or auto (default: each disk's level, else auto)")
	return cmd
}

func runDump(ctx context.Context, g *globals, o dumpOptions) error {
	defer tuneDumpGC()()
	switch o.level {
	case "", "full", "incremental", "auto":
	default:
		return usagef("--level %q is not a level; use full, incremental or auto", o.level)
	}
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	c, err := loadConfig(a, o.config)
	if err != nil {
		return err
	}
	disks := c.Disks
	if o.host != "" {
		if disks, err = c.Select(o.host, o.disks); err != nil {
			return withCode(ExitConfig, err)
		}
	}
	lock, err := a.Lock(c)
	if err != nil {
		return err
	}
	defer lock.Release()
	r, err := a.Repo(ctx, c)
	if err != nil {
		return err
	}
	var failed []error
	for _, d := range disks {
		t := app.Target(c, d)
		p := newProgress(g, t.String())
		res, err := a.Engine(r, p.update).Run(ctx, t, backup.Options{Level: o.level})
		p.done()
		if err != nil {
			fmt.Fprintf(g.stdout, "%s: FAILED: %s\n", t, oneLine(err.Error()))
			failed = append(failed, err)
			continue
		}
		e := res.Entry
		note := ""
		if res.LevelNote != "" {
			note = " (full because " + res.LevelNote + ")"
		}
		fmt.Fprintf(g.stdout, "%s: %s backup %s committed: %s in %s, stored %s%s\n", t, e.Level, e.ID,
			humanBytes(e.SizeBytes), e.FinishedAt.Sub(e.StartedAt).Round(time.Millisecond), humanBytes(e.StoredBytes), note)
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	return fmt.Errorf("%d of %d disks failed; first: %w", len(failed), len(disks), failed[0])
}

// progress shows a bar on a terminal; otherwise it logs a line every
// progressEvery.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	log   *slog.Logger
	name  string
	tty   bool
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(g *globals, name string) *progress {
	tty := false
	if f, ok := g.stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	now := time.Now()
	return &progress{w: g.stderr, log: g.log, name: name, tty: tty, start: now, last: now}
}

// progressEvery is how often progress is logged when stderr is not a
// terminal; on a terminal the bar is redrawn every 200 ms.
const progressEvery = 10 * time.Second

func (p *progress) update(s backup.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	every := progressEvery
	if p.tty {
		every = 200 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	rate := float64(s.Done) / max(now.Sub(p.start).Seconds(), 0.001)
	if !p.tty {
		p.log.Info("backup progress", "target", p.name, "done_bytes", s.Done, "estimate_bytes", s.Total, "bytes_per_second", int64(rate))
		return
	}
	line := fmt.Sprintf("%s: %s, %s/s", p.name, humanBytes(s.Done), humanBytes(int64(rate)))
	if s.Total > 0 {
		const width = 30
		frac := min(float64(s.Done)/float64(s.Total), 1)
		eta := ""
		if rate > 0 && s.Total > s.Done {
			eta = " ETA " + time.Duration(float64(s.Total-s.Done)/rate*float64(time.Second)).Round(time.Second).String()
		}
		bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
		line = fmt.Sprintf("%s [%s] %3.0f%% %s of %s, %s/s%s", p.name, bar, frac*100, humanBytes(s.Done), humanBytes(s.Total), humanBytes(int64(rate)), eta)
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
	p.shown = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
