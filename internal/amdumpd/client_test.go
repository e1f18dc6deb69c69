package amdumpd_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

func dialer() *amanda.Dialer { return &amanda.Dialer{User: "backup"} }

func dial(t testing.TB, addr string) *amdumpd.Client {
	t.Helper()
	c, err := amdumpd.Dial(context.Background(), dialer(), addr, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClient(t *testing.T) {
	backend, cfg := newLab()
	cfg.failDisk = map[string]error{diskDir1: errors.New("no space left on device")}
	addr := startAmdumpd(t, &amanda.Server{}, backend)
	ctx := context.Background()

	c := dial(t, addr)
	if err := c.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	disks, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{diskSpace, diskDir1}, disks); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := c.Select(ctx, "/nonexistent"); !errors.Is(err, amdumpd.ErrUnknownDisk) {
		t.Errorf("Select unknown = %v", err)
	}
	lines, err := c.Check(ctx)
	if err != nil || !cmp.Equal(lines, specAmcheck) {
		t.Errorf("Check = %q, %v", lines, err)
	}
	if err := c.Select(ctx, diskSpace); err != nil {
		t.Fatal(err)
	}
	var seen []string
	res, err := c.Dump(ctx, func(l string) { seen = append(seen, l) })
	if err != nil {
		t.Fatalf("Dump = %v", err)
	}
	want := amdumpd.DumpResult{Done: []amdumpd.DumpedDisk{{Disk: diskSpace, Level: 0, Backup: "2026-01-01T000000Z"}}}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Dump (-want +got):\n%s", diff)
	}
	if len(seen) != 1 {
		t.Errorf("report saw %q", seen)
	}
	if err := c.Select(ctx, diskDir1); err != nil {
		t.Fatal(err)
	}
	res, err = c.Dump(ctx, nil)
	var de *amdumpd.DiskError
	if !errors.Is(err, amdumpd.ErrDumpFailed) || !errors.As(err, &de) || de.Disk != diskDir1 || de.Reason != "no space left on device" {
		t.Fatalf("Dump with a failed disk = %v", err)
	}
	if len(res.Done) != 1 || res.Done[0].Disk != diskSpace {
		t.Errorf("Dump result %+v", res)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if dumps, _ := cfg.stats(); dumps != 2 {
		t.Errorf("%d dumps, want 2", dumps)
	}
}

func TestClientRefusals(t *testing.T) {
	backend, cfg := newLab()
	addr := startAmdumpd(t, &amanda.Server{}, backend)
	ctx := context.Background()

	_, err := amdumpd.Dial(ctx, &amanda.Dialer{User: "nobody"}, addr, "localhost")
	if !errors.Is(err, amdumpd.ErrRefused) {
		t.Errorf("Dial as nobody = %v", err)
	}

	c := dial(t, addr)
	err = c.Config(ctx, "nosuch")
	var re *amdumpd.ReplyError
	if !errors.Is(err, amdumpd.ErrRefused) || !errors.As(err, &re) || re.Line != amdumpd.ReplyConfigErrors {
		t.Errorf("Config nosuch = %v", err)
	}
	if _, err := c.List(ctx); err == nil {
		t.Error("List after a refused CONFIG worked")
	}
	c.Close(ctx)

	c = dial(t, addr)
	if _, err := c.List(ctx); !errors.As(err, &re) || re.Line != amdumpd.ReplyNoConfigList {
		t.Errorf("List before CONFIG = %v", err)
	}
	if _, err := c.Dump(ctx, nil); !errors.As(err, &re) || re.Line != amdumpd.ReplyNoConfigBackup {
		t.Errorf("Dump before CONFIG = %v", err)
	}
	c.Close(ctx)

	cfg.set(func(c *fakeConfig) { c.running = true })
	c = dial(t, addr)
	if err := c.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Check(ctx); !errors.Is(err, amdumpd.ErrBusy) {
		t.Errorf("Check while busy = %v", err)
	}
	if _, err := c.Dump(ctx, nil); !errors.Is(err, amdumpd.ErrBusy) {
		t.Errorf("Dump while busy = %v", err)
	}
	c.Close(ctx)
	cfg.set(func(c *fakeConfig) {
		c.running = false
		c.checkErr = errors.New("role has no REPLICATION attribute")
	})
	c = dial(t, addr)
	c.Config(ctx, "amtest")
	if _, err := c.Check(ctx); !errors.As(err, &re) || !strings.Contains(re.Line, "REPLICATION") {
		t.Errorf("failed Check = %v", err)
	}
	c.Close(ctx)
}

// The REQ's auth= option must name the transport, as in amdumpd.
func TestAuthOption(t *testing.T) {
	backend, _ := newLab()
	addr := startAmdumpd(t, &amanda.Server{}, backend)
	req := amanda.NewRequest("backup", "amdumpd", amanda.Options{{Key: "features", Value: amanda.Amanda351Features}, {Key: "auth", Value: "local"}})
	_, err := dialer().Dial(context.Background(), addr, req)
	var re *amanda.RefusedError
	if !errors.As(err, &re) || re.Type != amanda.REP ||
		!cmp.Equal(re.Lines, []string{"recover program requested auth 'local', but amandad is using auth 'bsdtcp'"}) {
		t.Fatalf("Dial with auth=local = %v", err)
	}
	req.Args = strings.Replace(req.Args, "auth=local", "auth=bsdtcp", 1)
	cc, err := dialer().Dial(context.Background(), addr, req)
	if err != nil {
		t.Fatalf("Dial with auth=bsdtcp = %v", err)
	}
	cc.Close()
}

// Fifty sessions list and check while one dump runs: every CHECK (and
// every other DUMP) is BUSY, every LIST works, and exactly one dump ran.
func TestConcurrentSessionsWhileDumping(t *testing.T) {
	backend, cfg := newLab()
	cfg.gate = make(chan struct{})
	cfg.started = make(chan struct{}, 1)
	s := &amanda.Server{MaxSessions: 60}
	addr := startAmdumpd(t, s, backend)
	ctx := context.Background()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	dumper := dial(t, addr)
	if err := dumper.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	dumpDone := make(chan error, 1)
	var dumpRes amdumpd.DumpResult
	go func() {
		var err error
		dumpRes, err = dumper.Dump(ctx, nil)
		dumpDone <- err
	}()
	<-cfg.started

	const n = 50
	var busyChecks, busyDumps, lists atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := amdumpd.Dial(ctx, dialer(), addr, "localhost")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			if err := c.Config(ctx, "amtest"); err != nil {
				errs <- err
				return
			}
			disks, err := c.List(ctx)
			if err != nil || len(disks) != 2 {
				errs <- fmt.Errorf("List = %q, %v", disks, err)
				return
			}
			lists.Add(1)
			if _, err := c.Check(ctx); errors.Is(err, amdumpd.ErrBusy) {
				busyChecks.Add(1)
			} else {
				errs <- fmt.Errorf("Check = %v", err)
			}
			if i%5 == 0 {
				if _, err := c.Dump(ctx, nil); errors.Is(err, amdumpd.ErrBusy) {
					busyDumps.Add(1)
				} else {
					errs <- fmt.Errorf("Dump = %v", err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)

	close(cfg.gate)
	if err := <-dumpDone; err != nil {
		t.Fatalf("the running dump: %v", err)
	}
	dumper.Close(ctx)
	if lists.Load() != n || busyChecks.Load() != n || busyDumps.Load() != n/5 {
		t.Errorf("lists %d, BUSY checks %d, BUSY dumps %d; want %d, %d, %d", lists.Load(), busyChecks.Load(), busyDumps.Load(), n, n, n/5)
	}
	if dumps, dumped := cfg.stats(); dumps != 1 || len(dumpRes.Done) != 2 || !cmp.Equal(dumped, []string{diskSpace, diskDir1}) {
		t.Errorf("dumps %d, dumped %q, result %+v", dumps, dumped, dumpRes)
	}
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB for %d sessions", grew>>20, n+1)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines+2 {
		t.Errorf("%d goroutines left, %d before", g, goroutines)
	}
}

// A client that vanishes mid-DUMP cancels the engine's context.
func TestClientVanishesMidDump(t *testing.T) {
	backend, cfg := newLab()
	cfg.gate = make(chan struct{})
	cfg.started = make(chan struct{}, 1)
	addr := startAmdumpd(t, &amanda.Server{}, backend)
	ctx, cancel := context.WithCancel(context.Background())
	c := dial(t, addr)
	if err := c.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Dump(ctx, nil)
		done <- err
	}()
	<-cfg.started
	cancel() // the client's Dump returns; the connection stays open
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Dump after cancel = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	cfg.mu.Lock()
	if cfg.cancelled != 0 {
		t.Error("the dump was cancelled while the client was still connected")
	}
	cfg.mu.Unlock()
	c.Close(context.Background()) // the connection goes away
	deadline := time.Now().Add(5 * time.Second)
	for {
		cfg.mu.Lock()
		n, running := cfg.cancelled, cfg.running
		cfg.mu.Unlock()
		if n == 1 && !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine's context was not cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestIdleTimeoutAndDrain(t *testing.T) {
	backend, _ := newLab()
	addr := startService(t, &amanda.Server{}, &amdumpd.Service{Backend: backend, IdleTimeout: 100 * time.Millisecond})
	ctx := context.Background()

	c := dial(t, addr)
	if err := c.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	_, err := c.List(ctx)
	var re *amdumpd.ReplyError
	if !errors.As(err, &re) || re.Line != amdumpd.ReplyIdle {
		t.Errorf("List after the idle timeout = %v", err)
	}
	c.Close(ctx)

	s := &amanda.Server{}
	addr = startService(t, s, &amdumpd.Service{Backend: backend, IdleTimeout: time.Hour})
	c = dial(t, addr)
	if err := c.Config(ctx, "amtest"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown with an idle session: %v", err)
	}
	if _, err := c.List(ctx); !errors.Is(err, amdumpd.ErrClosed) && !errors.Is(err, amanda.ErrConnClosed) {
		t.Errorf("List after Shutdown = %v", err)
	}
}
