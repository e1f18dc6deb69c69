package app

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
	"github.com/holdfast-backup/holdfast/internal/backup"
	"github.com/holdfast-backup/holdfast/internal/config"
	"github.com/holdfast-backup/holdfast/internal/job"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// AmandaBackend serves amdumpd sessions from the config directory. Each
// CONFIG loads its file afresh, so disk changes apply to the next session.
type AmandaBackend struct{ App *App }

// Config loads the named config for one session.
func (b AmandaBackend) Config(ctx context.Context, name string) (amdumpd.Config, error) {
	c, err := b.App.Load(name)
	if errors.Is(err, config.ErrNotFound) {
		return nil, amdumpd.ErrNoConfig
	}
	if err != nil {
		return nil, err
	}
	return amandaConfig{a: b.App, c: c}, nil
}

type amandaConfig struct {
	a *App
	c *config.Config
}

// Disks lists host's disks; a host not declared in this config sees none.
func (ac amandaConfig) Disks(host string) ([]string, bool) {
	declared := false
	for _, h := range ac.c.Hosts {
		declared = declared || h.Name == host
	}
	var out []string
	for _, d := range ac.c.DisksOf(host) {
		out = append(out, d.Disk)
	}
	return out, declared && len(out) > 0
}

func (ac amandaConfig) selectDisks(host string, names []string) ([]config.Disk, error) {
	if _, ok := ac.Disks(host); !ok {
		return nil, fmt.Errorf("config %s: host %s has no disks here", ac.c.Name, host)
	}
	return ac.c.Select(host, names)
}

// Check runs the same preflight as `holdfast check`.
func (ac amandaConfig) Check(ctx context.Context, host string, names []string, report func(string)) error {
	if ac.a.Busy(ac.c) {
		return amdumpd.ErrBusy
	}
	disks, err := ac.selectDisks(host, names)
	if err != nil {
		return err
	}
	failures := ac.a.Check(ctx, ac.c, disks, func(f Finding) { report(f.String()) })
	report(fmt.Sprintf("holdfast check: %d disk(s) checked, %d problem(s) found", len(disks), failures))
	return nil
}

// Dump runs the engine for host's disks under the config's dump lock.
func (ac amandaConfig) Dump(ctx context.Context, host string, names []string, report func(amdumpd.DumpEvent)) error {
	disks, err := ac.selectDisks(host, names)
	if err != nil {
		return err
	}
	lock, err := ac.a.Lock(ac.c)
	if errors.Is(err, job.ErrBusy) {
		return amdumpd.ErrBusy
	}
	if err != nil {
		return err
	}
	defer lock.Release()
	r, err := ac.a.Repo(ctx, ac.c)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range disks {
		report(amdumpd.DumpEvent{Disk: d.Disk, State: amdumpd.DumpStarted})
		res, err := ac.a.Engine(r, nil).Run(ctx, Target(ac.c, d), backup.Options{})
		if err != nil {
			ac.a.Log.Error("amdumpd dump failed", "config", ac.c.Name, "host", host, "disk", d.Disk, "error", err.Error())
			report(amdumpd.DumpEvent{Disk: d.Disk, State: amdumpd.DumpFailed, Err: err})
			errs = append(errs, err)
			continue
		}
		level := 0
		if res.Entry.Level == repo.LevelIncremental {
			level = 1
		}
		ac.a.Log.Info("amdumpd dump committed", "config", ac.c.Name, "host", host, "disk", d.Disk, "backup", res.Entry.ID, "level", res.Entry.Level, "level_note", res.LevelNote)
		report(amdumpd.DumpEvent{Disk: d.Disk, State: amdumpd.DumpDone, Level: level, Backup: res.Entry.ID})
	}
	return errors.Join(errs...)
}

// AmandaHosts merges the hosts declared by every config in the directory:
// the transport identifies the peer before the session names a config, and
// each config then shows the peer only its own disks.
func (a *App) AmandaHosts() ([]amanda.Host, error) {
	names, err := config.List(a.ConfigDir)
	if err != nil {
		return nil, err
	}
	byName := map[string]*amanda.Host{}
	for _, n := range names {
		c, err := a.Load(n)
		if err != nil {
			return nil, err
		}
		for _, h := range c.Hosts {
			m := byName[h.Name]
			if m == nil {
				m = &amanda.Host{Name: h.Name}
				byName[h.Name] = m
			}
			m.Addresses = append(m.Addresses, h.Addresses...)
			m.Users = append(m.Users, h.Users...)
		}
	}
	out := make([]amanda.Host, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
