// Package app is the composition root: it turns a loaded config into a
// store, a repository, a backup engine and targets, and it is the only
// place that knows how all of them fit together. The CLI and the amdumpd
// service both go through it, so they run the same engine and preflight.
package app

import (
	"context"

	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/holdfast-backup/holdfast/internal/backup"
	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/local"
	"github.com/holdfast-backup/holdfast/internal/config"
	"github.com/holdfast-backup/holdfast/internal/job"
	"github.com/holdfast-backup/holdfast/internal/repo"
)

// App holds what every operation needs.
type App struct {
	ConfigDir string
	Log       *slog.Logger
}

// Load reads and validates a config.
func (a *App) Load(name string) (*config.Config, error) {
	return config.Load(a.ConfigDir, name)
}

// Store opens the blob store of a config's repository.
func (a *App) Store(ctx context.Context, c *config.Config) (blob.Store, error) {
	switch c.Repository.Kind {
	case "local", "":
		return local.Open(c.Repository.Path)
	}
	return a.s3Store(ctx, c)
}

// Repo opens a config's repository for writing, creating it if needed.
func (a *App) Repo(ctx context.Context, c *config.Config) (*repo.Repo, error) {
	s, err := a.Store(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("open repository of config %s: %w", c.Name, err)
	}
	return repo.Init(ctx, s)
}

// ReadRepo opens a config's repository for reading only.
func (a *App) ReadRepo(ctx context.Context, c *config.Config) (*repo.Repo, error) {
	s, err := a.Store(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("open repository of config %s: %w", c.Name, err)
	}
	return repo.Open(ctx, s)
}

// LockDir is where the per-config dump locks live: inside a local
// repository (so every process using it agrees), else in the state
// directory.
func LockDir(c *config.Config) string {
	if c.Repository.Kind == "local" || c.Repository.Kind == "" {
		return filepath.Join(c.Repository.Path, ".locks")
	}
	if d := os.Getenv("HOLDFAST_STATE_DIR"); d != "" {
		return filepath.Join(d, "locks")
	}
	return "/var/lib/holdfast/locks"
}

// Lock takes the one-dump-per-config lock.
func (a *App) Lock(c *config.Config) (*job.Lock, error) {
	return job.Acquire(LockDir(c), c.Name)
}

// Busy reports whether a dump of c is running now.
func (a *App) Busy(c *config.Config) bool { return job.Held(LockDir(c), c.Name) }

// Target converts a configured disk into the engine's plain values.
func Target(c *config.Config, d config.Disk) backup.Target {
	return backup.Target{
		Config:          c.Name,
		Host:            d.Host,
		Disk:            d.Disk,
		DiskKey:         config.DiskKey(d.Disk),
		ConnInfo:        d.Postgres.Reveal(),
		ConnDisplay:     d.Postgres.String(),
		Compression:     d.Compression,
		Checksums:       d.Checksums,
		Level:           d.Level,
		WAL:             d.WAL,
		Checkpoint:      d.Checkpoint,
		MaxRate:         d.MaxRate,
		VerifyChecksums: d.VerifyChecksums,

		ServerCompression: d.ServerCompression,
	}
}

// Engine returns a backup engine on r.
func (a *App) Engine(r *repo.Repo, progress func(backup.Progress)) *backup.Engine {
	return &backup.Engine{Repo: r, Log: a.Log, Progress: progress}
}
