package amdumpd_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

// fakeBackend serves configurations from memory; every failure path of
// the engine can be provoked through fakeConfig's fields.
type fakeBackend struct {
	configs map[string]*fakeConfig
	err     error // returned by Config for every name, when set
}

func (b *fakeBackend) Config(ctx context.Context, name string) (amdumpd.Config, error) {
	if b.err != nil {
		return nil, b.err
	}
	c, ok := b.configs[name]
	if !ok {
		return nil, amdumpd.ErrNoConfig
	}
	return c, nil
}

type fakeConfig struct {
	hosts      map[string][]string
	checkLines []string
	checkErr   error
	// busyAfterDump imitates Amanda 3.5.1, whose CHECK is BUSY forever
	// once a dump ran (its leftover log symlink).
	busyAfterDump bool
	failDisk      map[string]error // DumpFailed for these disks
	dumpErr       error            // returned by Dump after the disks
	silent        bool             // Dump reports nothing
	gate          chan struct{}    // when set, Dump waits for it (or ctx) before the disks
	started       chan struct{}    // when set, receives once Dump holds the lock

	mu        sync.Mutex
	running   bool
	dumps     int      // Dump calls that ran (not BUSY)
	busy      int      // Dump and Check calls answered ErrBusy
	dumped    []string // disks reported done, all runs
	cancelled int      // runs that ended by ctx
}

func (c *fakeConfig) Disks(host string) ([]string, bool) {
	d, ok := c.hosts[host]
	return d, ok
}

// stats returns the counters under the lock.
func (c *fakeConfig) stats() (dumps int, dumped []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dumps, append([]string(nil), c.dumped...)
}

// set changes the fake under its lock, while sessions may run.
func (c *fakeConfig) set(fn func(c *fakeConfig)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c)
}

func (c *fakeConfig) Check(ctx context.Context, host string, disks []string, report func(string)) error {
	c.mu.Lock()
	if c.running || c.busyAfterDump && c.dumps > 0 {
		c.busy++
		c.mu.Unlock()
		return amdumpd.ErrBusy
	}
	lines, err := c.checkLines, c.checkErr
	c.mu.Unlock()
	for _, l := range lines {
		report(l)
	}
	return err
}

func (c *fakeConfig) Dump(ctx context.Context, host string, disks []string, report func(amdumpd.DumpEvent)) error {
	c.mu.Lock()
	if c.running {
		c.busy++
		c.mu.Unlock()
		return amdumpd.ErrBusy
	}
	c.running = true
	c.dumps++
	silent, dumpErr, failDisk := c.silent, c.dumpErr, c.failDisk
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}()
	if c.started != nil {
		c.started <- struct{}{}
	}
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			c.mu.Lock()
			c.cancelled++
			c.mu.Unlock()
			return ctx.Err()
		}
	}
	if silent {
		return dumpErr
	}
	for i, d := range disks {
		report(amdumpd.DumpEvent{Disk: d, State: amdumpd.DumpStarted})
		if err := failDisk[d]; err != nil {
			report(amdumpd.DumpEvent{Disk: d, State: amdumpd.DumpFailed, Err: err})
			continue
		}
		c.mu.Lock()
		c.dumped = append(c.dumped, d)
		c.mu.Unlock()
		report(amdumpd.DumpEvent{Disk: d, State: amdumpd.DumpDone, Level: i % 2, Backup: fmt.Sprintf("2026-01-01T00000%dZ", i)})
	}
	return dumpErr
}

const (
	diskSpace = "/var/lib/amanda/amtest-data/with space"
	diskDir1  = "/var/lib/amanda/amtest-data/dir1"
)

// specAmcheck is the amcheck output of spec §10.1.
var specAmcheck = []string{
	"Amanda Backup Client Hosts Check",
	"--------------------------------",
	"Client check: 1 host checked in 2.213 seconds.  0 problems found.",
	"(brought to you by Amanda 3.5.1)",
}

// newLab returns the configuration of the spec's lab (§9.1) as seen from
// host localhost: "amtest" with the two DLEs, in the order 3.5.1 listed
// them.
func newLab() (*fakeBackend, *fakeConfig) {
	cfg := &fakeConfig{
		hosts:      map[string][]string{"localhost": {diskSpace, diskDir1}, "db1": {"/srv/db1"}},
		checkLines: specAmcheck,
	}
	return &fakeBackend{configs: map[string]*fakeConfig{"amtest": cfg}}, cfg
}
