package app

import (
	"context"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/s3"
	"github.com/holdfast-backup/holdfast/internal/config"
)

func (a *App) s3Store(ctx context.Context, c *config.Config) (blob.Store, error) {
	o := c.Repository.S3
	return s3.Open(ctx, s3.Options{
		Endpoint:  o.Endpoint,
		Bucket:    o.Bucket,
		Prefix:    o.Prefix,
		AccessKey: o.AccessKey,
		SecretKey: s3.Secret(o.SecretKey.Reveal()),
		Region:    o.Region,
		UseTLS:    o.TLS,
	})
}
