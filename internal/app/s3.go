package app

import (
	"context"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/config"
)

func (a *App) s3Store(ctx context.Context, c *config.Config) (blob.Store, error) {
	return nil, ErrNoS3
}
