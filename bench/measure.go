package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// sample is one measured run of one side.
type sample struct {
	Round     int              `json:"round"`
	Warmup    bool             `json:"warmup,omitempty"`
	WallS     float64          `json:"wall_s"`
	UserS     float64          `json:"user_s"`
	SysS      float64          `json:"sys_s"`
	CPUS      float64          `json:"cpu_s"` // user+sys of the child(ren)
	MaxRSS    int64            `json:"max_rss_bytes"`
	Bytes     int64            `json:"bytes"`                // stored / written bytes, when meaningful
	ServerCPU float64          `json:"server_cpu_s"`         // PostgreSQL's CPU during the run, when measured
	Load1     float64          `json:"load1"`                // 1-minute load average just before the run
	InProc    bool             `json:"in_process,omitempty"` // CPU and RSS not measured (in-process run)
	Steps     []step           `json:"steps,omitempty"`      // for multi-command sides
	Files     map[string]int64 `json:"files,omitempty"`      // top-level files of a backup and their sizes
}

// step is one child process of a side.
type step struct {
	Cmd    string  `json:"cmd"`
	WallS  float64 `json:"wall_s"`
	CPUS   float64 `json:"cpu_s"`
	MaxRSS int64   `json:"max_rss_bytes"`
}

// prof says how to wrap the next holdfast command: under perf record when
// out is set (never during timed rounds).
type prof struct{ out string }

// measure runs the commands one after the other and adds up wall and CPU
// time; peak RSS is the largest of them. Rusage comes from wait4 on each
// child, so it includes the child's own waited-for children (tar's zstd).
// Output is captured and shown only on failure.
func measure(ctx context.Context, cmds ...*exec.Cmd) (sample, error) {
	var s sample
	// Whatever is still being written back (the previous run's output, its
	// deletion, other users' files) is flushed before the clock starts.
	syscall.Sync()
	s.Load1 = load1()
	for _, cmd := range cmds {
		var out bytes.Buffer
		if cmd.Stdout == nil {
			cmd.Stdout = &out
		}
		if cmd.Stderr == nil {
			cmd.Stderr = &out
		}
		t0 := time.Now()
		err := cmd.Run()
		wall := time.Since(t0).Seconds()
		if err != nil {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			return s, fmt.Errorf("%s: %v\n%s", cmdString(cmd), err, tail(out.Bytes(), 15))
		}
		ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		st := step{Cmd: cmdString(cmd), WallS: wall}
		if ru != nil {
			u := tv(ru.Utime)
			sy := tv(ru.Stime)
			s.UserS += u
			s.SysS += sy
			st.CPUS = u + sy
			st.MaxRSS = ru.Maxrss * 1024 // KiB on Linux
			s.MaxRSS = max(s.MaxRSS, st.MaxRSS)
		}
		s.WallS += wall
		s.Steps = append(s.Steps, st)
	}
	s.CPUS = s.UserS + s.SysS
	if len(cmds) == 1 {
		s.Steps = nil
	}
	return s, nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func cmdString(cmd *exec.Cmd) string {
	parts := make([]string, len(cmd.Args))
	for i, a := range cmd.Args {
		if strings.ContainsAny(a, " '\"") || a == "" {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	fmt.Sscan(string(b), &l)
	return l
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// treeBytes sums the sizes of the regular files under dir (apparent size).
func treeBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// topFiles lists the regular files directly in dir with their sizes.
func topFiles(dir string) map[string]int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	m := map[string]int64{}
	for _, en := range ents {
		if fi, err := en.Info(); err == nil && fi.Mode().IsRegular() {
			m[en.Name()] = fi.Size()
		}
	}
	return m
}

// removeAll deletes dir (outside any timing; measure syncs before it
// starts the clock, so no run pays for the previous run's writeback).
func removeAll(dir string) error {
	return os.RemoveAll(dir)
}

// side is one of the things compared in a scenario.
type side struct {
	Name string
	// Run runs the side once: untimed preparation, the timed part through
	// measure, untimed accounting; it returns the sample. With p.out set it
	// runs the holdfast command under perf record instead (no timing).
	Run func(ctx context.Context, p prof) (sample, error)
	// Profile marks a holdfast side worth a CPU profile with -perf.
	Profile bool
}

// runRounds runs warmup rounds and then pairs rounds of every side,
// alternating the order: forward in even rounds, reversed in odd ones
// (A B, B A, A B … for two sides). A side whose warm-up fails is dropped
// and reported unavailable with its error. check, when set, runs once after
// the warm-up (after the first measured round without warm-up), while the
// outputs of that round are still in place.
func runRounds(ctx context.Context, sc *scenario, sides []side, warmup, rounds int, check func()) error {
	alive := make([]bool, len(sides))
	for i := range alive {
		alive[i] = true
	}
	res := make([]*sideResult, len(sides))
	for i, s := range sides {
		res[i] = sc.side(s.Name)
	}
	for r := 0; r < warmup+rounds; r++ {
		order := make([]int, len(sides))
		for i := range order {
			order[i] = i
		}
		if r%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		var names []string
		for _, i := range order {
			if !alive[i] {
				continue
			}
			smp, err := sides[i].Run(ctx, prof{})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if r < warmup {
					alive[i] = false
					res[i].Unavailable = err.Error()
					logf("  %s: UNAVAILABLE: %v", sides[i].Name, err)
					continue
				}
				return fmt.Errorf("%s, round %d: %w", sides[i].Name, r, err)
			}
			smp.Round = r - warmup
			smp.Warmup = r < warmup
			if smp.Warmup {
				res[i].Warmup = append(res[i].Warmup, smp)
			} else {
				res[i].Samples = append(res[i].Samples, smp)
			}
			names = append(names, fmt.Sprintf("%s %.2fs", sides[i].Name, smp.WallS))
		}
		tag := fmt.Sprintf("round %d", r-warmup+1)
		if r < warmup {
			tag = "warm-up"
		}
		logf("  %s (load %s): %s", tag, loadavg(), strings.Join(names, " | "))
		if check != nil && r == max(warmup, 1)-1 {
			check()
		}
	}
	return nil
}

// stats of one measure over rounds.
type stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}
