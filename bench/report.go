package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// scenario is one comparison and its results.
type scenario struct {
	ID     string        `json:"id"`
	Title  string        `json:"title"`
	Notes  []string      `json:"notes,omitempty"`
	Sides  []*sideResult `json:"sides"`
	Ratios []*ratio      `json:"ratios,omitempty"`
	Limits []*limit      `json:"limits,omitempty"`
	Error  string        `json:"error,omitempty"`
	Load   []string      `json:"load_before_after,omitempty"`
	Cores  []float64     `json:"core_scaling_before_after,omitempty"` // see coreScaling
	Perf   []string      `json:"perf_reports,omitempty"`
}

type sideResult struct {
	Name        string   `json:"name"`
	Unavailable string   `json:"unavailable,omitempty"`
	Warmup      []sample `json:"warmup,omitempty"`
	Samples     []sample `json:"samples"`
	Wall        stat     `json:"wall_s"`
	CPU         stat     `json:"cpu_s"`
	RSS         stat     `json:"max_rss_bytes"`
	Bytes       stat     `json:"bytes"`
	ServerCPU   stat     `json:"server_cpu_s"`
}

// ratio compares a measure of side A with side B round by round.
type ratio struct {
	Name     string    `json:"name"`
	A        string    `json:"a"`
	B        string    `json:"b"`
	Measure  string    `json:"measure"` // wall, cpu, rss, bytes
	Target   float64   `json:"target,omitempty"`
	PerRound []float64 `json:"per_round"`
	Stat     stat      `json:"ratio"`
	Met      *bool     `json:"met,omitempty"`
}

// limit is an absolute bound on the largest value of a side's measure.
type limit struct {
	Name    string  `json:"name"`
	Side    string  `json:"side"`
	Measure string  `json:"measure"`
	Limit   float64 `json:"limit"`
	Max     float64 `json:"max"`
	Met     *bool   `json:"met,omitempty"`
}

func (sc *scenario) side(name string) *sideResult {
	for _, s := range sc.Sides {
		if s.Name == name {
			return s
		}
	}
	s := &sideResult{Name: name}
	sc.Sides = append(sc.Sides, s)
	return s
}

func (sc *scenario) note(format string, args ...any) {
	sc.Notes = append(sc.Notes, fmt.Sprintf(format, args...))
}

// addRatio registers a ratio; target 0 means informational.
func (sc *scenario) addRatio(name, a, b, measure string, target float64) {
	sc.Ratios = append(sc.Ratios, &ratio{Name: name, A: a, B: b, Measure: measure, Target: target})
}

func (sc *scenario) addLimit(name, side, measure string, lim float64) {
	sc.Limits = append(sc.Limits, &limit{Name: name, Side: side, Measure: measure, Limit: lim})
}

func value(s sample, measure string) float64 {
	switch measure {
	case "wall":
		return s.WallS
	case "cpu":
		return s.CPUS
	case "rss":
		return float64(s.MaxRSS)
	case "bytes":
		return float64(s.Bytes)
	case "server_cpu":
		return s.ServerCPU
	}
	panic("unknown measure " + measure)
}

// finish computes the statistics of every side, ratio and limit.
func (sc *scenario) finish() {
	for _, s := range sc.Sides {
		get := func(m string) []float64 {
			var v []float64
			for _, x := range s.Samples {
				if m != "wall" && m != "bytes" && m != "server_cpu" && x.InProc {
					continue
				}
				v = append(v, value(x, m))
			}
			return v
		}
		s.Wall, s.CPU, s.RSS, s.Bytes, s.ServerCPU = statOf(get("wall")), statOf(get("cpu")), statOf(get("rss")), statOf(get("bytes")), statOf(get("server_cpu"))
	}
	for _, r := range sc.Ratios {
		a, b := sc.find(r.A), sc.find(r.B)
		r.PerRound = nil
		if a == nil || b == nil {
			continue
		}
		for _, x := range a.Samples {
			for _, y := range b.Samples {
				if x.Round == y.Round && value(y, r.Measure) > 0 {
					r.PerRound = append(r.PerRound, value(x, r.Measure)/value(y, r.Measure))
				}
			}
		}
		r.Stat = statOf(r.PerRound)
		if r.Target > 0 && len(r.PerRound) > 0 {
			met := r.Stat.Median <= r.Target
			r.Met = &met
		}
	}
	for _, l := range sc.Limits {
		s := sc.find(l.Side)
		if s == nil || len(s.Samples) == 0 {
			continue
		}
		l.Max = 0
		for _, x := range s.Samples {
			l.Max = max(l.Max, value(x, l.Measure))
		}
		met := l.Max <= l.Limit
		l.Met = &met
	}
}

func (sc *scenario) find(name string) *sideResult {
	for _, s := range sc.Sides {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// results is everything a run produced (the JSON file).
type results struct {
	Command   string         `json:"command"`
	Started   string         `json:"started"`
	Finished  string         `json:"finished"`
	Machine   map[string]any `json:"machine"`
	Source    map[string]any `json:"source"`
	Settings  map[string]any `json:"settings"`
	Data      []string       `json:"data,omitempty"`
	Scenarios []*scenario    `json:"scenarios"`
}

func writeJSON(path string, r *results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func fmtStat(s stat, unit string) string {
	if s.N == 0 {
		return "–"
	}
	f := func(v float64) string {
		switch unit {
		case "MiB":
			return fmt.Sprintf("%.1f", v/(1<<20))
		case "x":
			return fmt.Sprintf("%.3f", v)
		default:
			return fmt.Sprintf("%.2f", v)
		}
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func metString(m *bool) string {
	switch {
	case m == nil:
		return "–"
	case *m:
		return "yes"
	}
	return "**NO**"
}

func measureName(m string) string {
	switch m {
	case "wall":
		return "wall time"
	case "cpu":
		return "CPU time"
	case "rss":
		return "peak RSS"
	case "bytes":
		return "stored size"
	case "server_cpu":
		return "server CPU"
	}
	return m
}

// writeMarkdown prints the scenarios' tables and the summary of targets.
func writeMarkdown(w io.Writer, r *results) {
	fmt.Fprintf(w, "## Holdfast benchmark\n\n")
	fmt.Fprintf(w, "Command: `%s`  \n", r.Command)
	fmt.Fprintf(w, "Started %s, finished %s  \n", r.Started, r.Finished)
	fmt.Fprintf(w, "Machine: %v  \n", machineLine(r.Machine))
	fmt.Fprintf(w, "Cores' worth of vector throughput: the same CRC-32C loop on one goroutine and on one per CPU, CPUs × time(one) / time(all). With 2 CPUs, 2 means two independent cores; near 1 means the host runs both vCPUs on one physical core (two SMT threads), where parallel work gains nothing over one thread.  \n")
	fmt.Fprintf(w, "Source: %v  \n", r.Source["describe"])
	if t, ok := r.Settings["transport"].(string); ok {
		where := "TCP to 127.0.0.1"
		if t == "unix" {
			where = "the server's Unix socket"
		}
		fmt.Fprintf(w, "Connections: every measured side reaches the server over %s  \n", where)
	}
	for _, d := range r.Data {
		fmt.Fprintf(w, "Data: %s  \n", d)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Cells are median (min–max) over the measured rounds; ratios are the median (min–max) of per-round ratios.\n\n")

	fmt.Fprintf(w, "### Targets\n\n| measure | ratio | target | met |\n|---|---|---|---|\n")
	for _, sc := range r.Scenarios {
		for _, q := range sc.Ratios {
			if q.Target == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s: %s (%s) | %s | ≤ %g | %s |\n", sc.ID, q.Name, measureName(q.Measure), fmtStat(q.Stat, "x"), q.Target, metString(q.Met))
		}
		for _, l := range sc.Limits {
			fmt.Fprintf(w, "| %s: %s | max %s | < %s | %s |\n", sc.ID, l.Name, fmtLimit(l.Max, l.Measure), fmtLimit(l.Limit, l.Measure), metString(l.Met))
		}
		if sc.Error != "" {
			fmt.Fprintf(w, "| %s: %s | error | – | **NO** |\n", sc.ID, sc.Title)
		}
	}
	fmt.Fprintln(w)

	for _, sc := range r.Scenarios {
		fmt.Fprintf(w, "### %s: %s\n\n", sc.ID, sc.Title)
		if sc.Error != "" {
			fmt.Fprintf(w, "**Failed:** %s\n\n", oneLine(sc.Error))
		}
		for _, n := range sc.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		if len(sc.Load) > 0 {
			fmt.Fprintf(w, "- load average before → after: %s\n", strings.Join(sc.Load, " → "))
		}
		if len(sc.Cores) > 0 {
			fmt.Fprintf(w, "- cores' worth of vector throughput before → after: %s (see Machine)\n", joinFloats(sc.Cores, " → "))
		}
		if len(sc.Notes) > 0 || len(sc.Load) > 0 || len(sc.Cores) > 0 {
			fmt.Fprintln(w)
		}
		if len(sc.Sides) > 0 {
			fmt.Fprintf(w, "| side | wall s | CPU s (user+sys) | peak RSS MiB | server CPU s | bytes MiB |\n|---|---|---|---|---|---|\n")
			for _, s := range sc.Sides {
				if s.Unavailable != "" {
					fmt.Fprintf(w, "| %s | unavailable: %s | | | | |\n", s.Name, oneLine(s.Unavailable))
					continue
				}
				cpu, rss := fmtStat(s.CPU, "s"), fmtStat(s.RSS, "MiB")
				if s.CPU.N == 0 {
					cpu, rss = "(in-process)", "(in-process)"
				}
				b := fmtStat(s.Bytes, "MiB")
				if s.Bytes.Max == 0 {
					b = "–"
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", s.Name, fmtStat(s.Wall, "s"), cpu, rss, fmtStat(s.ServerCPU, "s"), b)
			}
			fmt.Fprintln(w)
		}
		files := false
		for _, s := range sc.Sides {
			if len(s.Samples) == 0 || len(s.Samples[0].Files) == 0 {
				continue
			}
			var parts []string
			for _, n := range sortedKeys(s.Samples[0].Files) {
				parts = append(parts, fmt.Sprintf("%s %.1f MiB", n, float64(s.Samples[0].Files[n])/(1<<20)))
			}
			fmt.Fprintf(w, "- files of %s (first round): %s\n", s.Name, strings.Join(parts, ", "))
			files = true
		}
		if files {
			fmt.Fprintln(w)
		}
		if len(sc.Ratios) > 0 {
			fmt.Fprintf(w, "| ratio | A / B | median (min–max) | target | met |\n|---|---|---|---|---|\n")
			for _, q := range sc.Ratios {
				t := "–"
				if q.Target > 0 {
					t = fmt.Sprintf("≤ %g", q.Target)
				}
				fmt.Fprintf(w, "| %s (%s) | %s / %s | %s | %s | %s |\n", q.Name, measureName(q.Measure), q.A, q.B, fmtStat(q.Stat, "x"), t, metString(q.Met))
			}
			fmt.Fprintln(w)
		}
		for _, p := range sc.Perf {
			fmt.Fprintf(w, "- CPU profile: %s\n", p)
		}
		if len(sc.Perf) > 0 {
			fmt.Fprintln(w)
		}
	}
}

func fmtLimit(v float64, measure string) string {
	if measure == "rss" {
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%g", v)
}

func machineLine(m map[string]any) string {
	return fmt.Sprintf("%v CPUs, %v, %v, kernel %v, load at start %v, at end %v; cores' worth of vector throughput at start %v, at end %v",
		m["cpus"], m["cpu_model"], m["memory"], m["kernel"], m["load_start"], m["load_end"], m["core_scaling_start"], m["core_scaling_end"])
}

func joinFloats(v []float64, sep string) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(s, sep)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func sortedKeys(m map[string]int64) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
