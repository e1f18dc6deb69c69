package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

type clientOptions struct {
	server       string
	useTLS       bool
	tlsCA        string
	tlsCert      string
	tlsKey       string
	tlsName      string
	user         string
	hostname     string
	reservedPort bool
}

func newClientCmd(g *globals) *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "client --server HOST[:PORT] CONFIG list|check|dump [DISK...]",
		Short: "Ask a Holdfast (or Amanda) server to list, check or back up this host's disks",
		Long: `The equivalent of Amanda's amdump_client: connect to an amdumpd service over
bsdtcp (or TLS with --tls), select CONFIG, and list this host's disks, check
them, or dump them (all of them, or the DISKs named). Prints what the server
says. Exit status: 0 success, 6 the config is busy (a dump is running), 8 the
server refused us, 1 a dump failed.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return classifyClient(runClient(cmd.Context(), g, o, args[0], args[1], args[2:]))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "server address HOST[:PORT] (port 10080 by default)")
	f.BoolVar(&o.useTLS, "tls", false, "use the TLS transport")
	f.StringVar(&o.tlsCA, "tls-ca", "", "CA bundle (PEM) to verify the server")
	f.StringVar(&o.tlsCert, "tls-cert", "", "client certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "client private key (PEM)")
	f.StringVar(&o.tlsName, "tls-server-name", "", "name to verify in the server certificate (default: the server host)")
	f.StringVar(&o.user, "user", "", "client user sent to the server (default: the user running this)")
	f.StringVar(&o.hostname, "hostname", "", "this host's name as sent in the request (default: the system host name)")
	f.BoolVar(&o.reservedPort, "reserved-port", false, "connect from a port below 1024 (needs root), for servers that require it")
	_ = cmd.MarkFlagRequired("server")
	return cmd
}

func classifyClient(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, amdumpd.ErrBusy):
		return withCode(ExitBusy, err)
	case errors.Is(err, amdumpd.ErrRefused):
		return withCode(ExitRefused, err)
	case errors.Is(err, amdumpd.ErrUnknownDisk):
		return withCode(ExitConfig, err)
	}
	return classify(err)
}

func runClient(ctx context.Context, g *globals, o clientOptions, config, verb string, disks []string) error {
	switch verb {
	case "list", "check", "dump":
	default:
		return usagef("%q is not a client command; use list, check or dump", verb)
	}
	if verb == "list" && len(disks) > 0 {
		return usagef("list takes no disks")
	}
	addr := o.server
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "10080")
	}
	d := &amanda.Dialer{User: o.user, ReservedPort: o.reservedPort}
	if d.User == "" {
		u, err := user.Current()
		if err != nil {
			return err
		}
		d.User = u.Username
	}
	if o.useTLS {
		host, _, _ := net.SplitHostPort(addr)
		tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if o.tlsName != "" {
			tc.ServerName = o.tlsName
		}
		if o.tlsCA != "" {
			pool, err := loadPool(o.tlsCA)
			if err != nil {
				return withCode(ExitUsage, err)
			}
			tc.RootCAs = pool
		}
		if o.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
			if err != nil {
				return withCode(ExitUsage, fmt.Errorf("load client certificate: %w", err))
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		d.TLSConfig = tc
	}
	hostname := o.hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	c, err := amdumpd.Dial(ctx, d, addr, hostname)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	if err := c.Config(ctx, config); err != nil {
		return err
	}
	switch verb {
	case "list":
		names, err := c.List(ctx)
		if err != nil {
			return err
		}
		for _, n := range names {
			fmt.Fprintln(g.stdout, n)
		}
		return nil
	case "check":
		if err := c.Select(ctx, disks...); err != nil {
			return err
		}
		lines, err := c.Check(ctx)
		for _, l := range lines {
			fmt.Fprintln(g.stdout, l)
		}
		return err
	}
	if err := c.Select(ctx, disks...); err != nil {
		return err
	}
	_, err = c.Dump(ctx, func(line string) { fmt.Fprintln(g.stdout, line) })
	return err
}
