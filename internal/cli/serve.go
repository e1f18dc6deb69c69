package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
	"github.com/holdfast-backup/holdfast/internal/app"
	"github.com/holdfast-backup/holdfast/internal/config"
)

type serveOptions struct {
	listen          []string
	tlsListen       []string
	tlsCert, tlsKey string
	tlsClientCA     string
	maxSessions     int
	shutdownTimeout time.Duration
	reservedPort    bool
}

func newServeCmd(g *globals) *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR]...",
		Short: "Serve Amanda's amdumpd service (bsdtcp, and TLS) to the configured client hosts",
		Long: `Serve the amdumpd service over the amandad bsdtcp transport (Amanda 3.5's
amservice and amdump_client talk to it) and, with --tls-listen, over TLS for
Holdfast's own client. Only hosts declared in a config's hosts: list are served,
and only their declared users; each sees only its own disks. SIGTERM stops
accepting, lets running dumps finish for --shutdown-timeout, then cancels them
(a cancelled dump commits nothing).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return classify(runServe(cmd.Context(), g, o))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.listen, "listen", []string{":10080"}, "bsdtcp listen address (repeatable)")
	f.StringArrayVar(&o.tlsListen, "tls-listen", nil, "TLS listen address (repeatable; needs --tls-cert and --tls-key)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "server certificate (PEM)")
	f.StringVar(&o.tlsKey, "tls-key", "", "server private key (PEM)")
	f.StringVar(&o.tlsClientCA, "tls-client-ca", "", "CA bundle (PEM) for client certificates; when set, clients must present one naming a declared host")
	f.IntVar(&o.maxSessions, "max-sessions", 64, "sessions served at once")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", time.Minute, "on SIGTERM, how long running dumps may finish before they are cancelled")
	f.BoolVar(&o.reservedPort, "require-reserved-port", false, "refuse bsdtcp peers whose source port is not below 1024, as Amanda does")
	return cmd
}

func runServe(ctx context.Context, g *globals, o serveOptions) error {
	a := &app.App{ConfigDir: g.dir(), Log: g.log}
	hosts, err := a.AmandaHosts()
	if err != nil {
		return withCode(ExitConfig, err)
	}
	if len(hosts) == 0 {
		return withCode(ExitConfig, fmt.Errorf("no config in %s declares hosts: add a hosts: list naming the client hosts allowed to call", a.ConfigDir))
	}
	reserved := o.reservedPort
	if names, err := config.List(a.ConfigDir); err == nil {
		for _, n := range names {
			if c, err := a.Load(n); err == nil && c.Server.RequireReservedPort {
				reserved = true
			}
		}
	}
	services := map[string]amanda.Handler{"amdumpd": &amdumpd.Service{Backend: app.AmandaBackend{App: a}}}
	newServer := func(tc *tls.Config) *amanda.Server {
		return &amanda.Server{Hosts: hosts, Services: services, RequireReservedPort: reserved && tc == nil,
			TLSConfig: tc, Logger: g.log, MaxSessions: o.maxSessions}
	}
	var servers []*amanda.Server
	var listeners []net.Listener
	closeAll := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	plain := newServer(nil)
	for _, addr := range o.listen {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		listeners = append(listeners, ln)
		servers = append(servers, plain)
	}
	if len(o.tlsListen) > 0 {
		tc, err := serverTLS(o)
		if err != nil {
			closeAll()
			return withCode(ExitUsage, err)
		}
		ts := newServer(tc)
		for _, addr := range o.tlsListen {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				closeAll()
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			listeners = append(listeners, ln)
			servers = append(servers, ts)
		}
	}
	var eg errgroup.Group
	for i, ln := range listeners {
		s := servers[i]
		g.log.Info("serving amdumpd", "address", ln.Addr().String(), "tls", s.TLSConfig != nil, "hosts", len(hosts))
		eg.Go(func() error {
			if err := s.Serve(ln); err != nil && !errors.Is(err, amanda.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- eg.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	g.log.Info("shutting down", "timeout", o.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	seen := map[*amanda.Server]bool{}
	for _, s := range servers {
		if !seen[s] {
			seen[s] = true
			_ = s.Shutdown(sctx)
		}
	}
	<-done
	return nil
}

func serverTLS(o serveOptions) (*tls.Config, error) {
	if o.tlsCert == "" || o.tlsKey == "" {
		return nil, errors.New("--tls-listen needs --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if o.tlsClientCA != "" {
		pool, err := loadPool(o.tlsClientCA)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", file)
	}
	return pool, nil
}
