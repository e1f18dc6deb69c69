// Command holdfast is the Holdfast backup server and its command-line tools.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/holdfast-backup/holdfast/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
