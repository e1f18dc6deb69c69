package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/holdfast-backup/holdfast/internal/envtest"
)

// Region is the region the server reports.
const Region = "us-east-1"

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's URL: http://127.0.0.1:PORT.
	Endpoint string
	// Addr is the server's host:port.
	Addr string
	// AccessKey and SecretKey are the root user's credentials (random).
	AccessKey, SecretKey string
	// Root is the directory holding the buckets; one subdirectory per bucket.
	Root string
	// LogFile receives the server's output.
	LogFile string
}

// Binary returns the path of versitygw. When it is missing it skips the test, or fails it
// when CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(envtest.Cache(t), "bin", "versitygw")
	envtest.Executable(t, "versitygw", bin)
	return bin
}

// Start starts a server for the test and waits until its health check answers; t.Cleanup
// stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{
		AccessKey: "hf" + randomHex(t, 9),
		SecretKey: randomHex(t, 20),
		Root:      filepath.Join(dir, "root"),
		LogFile:   filepath.Join(dir, "versitygw.log"),
	}
	versions := filepath.Join(dir, "versions")
	for _, d := range []string{s.Root, versions} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
	for attempt := 1; ; attempt++ {
		err := s.start(t, bin, versions)
		if err == nil {
			return s
		}
		b, _ := os.ReadFile(s.LogFile)
		if attempt == 5 || !bytes.Contains(b, []byte("address already in use")) {
			t.Fatalf("s3test: start versitygw on %s: %v; its log:\n%s", s.Addr, err, b)
		}
		if err := os.Truncate(s.LogFile, 0); err != nil {
			t.Fatalf("s3test: %v", err)
		}
	}
}

func (s *Server) start(t testing.TB, bin, versions string) error {
	t.Helper()
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(envtest.FreePort(t)))
	s.Endpoint = "http://" + s.Addr
	log, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, "--port", s.Addr, "--health", "/health", "--quiet",
		"posix", "--versioning-dir", versions, s.Root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("exited: %v", cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := client.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("health check not answering after 30s (last error: %v)", err)
		}
	}
}

// Client returns a minio client for the root user.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Addr, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region: Region,
	})
	if err != nil {
		t.Fatalf("s3test: client for %s: %v", s.Endpoint, err)
	}
	return c
}

// CreateBucket creates bucket name; opts.ObjectLocking asks for object lock (which also turns
// on versioning).
func (s *Server) CreateBucket(t testing.TB, name string, opts minio.MakeBucketOptions) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if opts.Region == "" {
		opts.Region = Region
	}
	if err := s.Client(t).MakeBucket(ctx, name, opts); err != nil {
		t.Fatalf("s3test: create bucket %s on %s: %v", name, s.Endpoint, err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return hex.EncodeToString(b)
}
