// Package cli is Holdfast's command line: one file per command, each a
// constructor returning a cobra command whose RunE calls a testable runX
// function. Main runs the whole CLI in-process, which is how tests drive it.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// globals are the flags every command shares.
type globals struct {
	configDir string
	logFormat string
	verbose   bool

	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// Main runs the CLI with args (without the program name) and returns the
// process exit code. Only cmd/holdfast calls os.Exit.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := codeOf(err)
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		code = ExitUsage
	}
	fmt.Fprintf(stderr, "holdfast: %s\n", oneLine(err.Error()))
	return code
}

// usageError marks a bad command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// isCobraUsage recognises cobra's own argument and flag errors, which it
// returns as plain errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "requires at most", "required flag"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// oneLine keeps an error on one line so logs and terminals stay readable.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "holdfast",
		Short: "Holdfast backs up PostgreSQL over the replication protocol",
		Long: `Holdfast is a network backup server for PostgreSQL 15 to 18. It takes full and
incremental base backups over the replication protocol, stores them as plain tar
archives plus the server's backup_manifest, verifies them, and restores them into
data directories that start. Amanda clients can ask it for backups through the
amdumpd service.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.setup()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configDir, "config-dir", "", "directory of config files (default $HOLDFAST_CONFIG_DIR, else /etc/holdfast)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "log debug detail")
	root.AddCommand(
		newDumpCmd(g),
		newBackupsCmd(g),
		newVerifyCmd(g),
		newCheckCmd(g),
		newServeCmd(g),
		newClientCmd(g),
		newRestoreCmd(g),
		newVersionCmd(g),
	)
	return root
}

func (g *globals) setup() error {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usagef("--log-format %q is not a log format; use text or json", g.logFormat)
	}
	return nil
}

// dir resolves the config directory: flag, environment, default.
func (g *globals) dir() string {
	if g.configDir != "" {
		return g.configDir
	}
	if d := os.Getenv("HOLDFAST_CONFIG_DIR"); d != "" {
		return d
	}
	return "/etc/holdfast"
}
