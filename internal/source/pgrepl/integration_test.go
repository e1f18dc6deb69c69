package pgrepl_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/pgtest"
	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

// Integration tests run against real servers started by pgtest: they skip
// when the servers are not installed, and fail with CI=true.

func forEachVersion(t *testing.T, f func(t *testing.T, v int)) {
	for _, v := range pgtest.Versions {
		t.Run(fmt.Sprintf("pg%d", v), func(t *testing.T) {
			// Each version has its own cluster; they mostly wait on the
			// server, so they overlap.
			t.Parallel()
			if testing.Short() {
				t.Skip("integration test")
			}
			f(t, v)
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// fileSink writes archives and the manifest into a directory.
type fileSink struct {
	dir      string
	start    pgrepl.Start
	f        *os.File
	manifest *os.File
	notices  []*pgconn.Notice
	progress int64
	onStart  func(pgrepl.Start)
}

func (s *fileSink) Start(st pgrepl.Start) error {
	s.start = st
	if s.onStart != nil {
		s.onStart(st)
	}
	return nil
}

func (s *fileSink) BeginArchive(name, _ string) error {
	f, err := os.Create(filepath.Join(s.dir, name))
	s.f = f
	return err
}

func (s *fileSink) ArchiveData(p []byte) error {
	_, err := s.f.Write(p)
	return err
}

func (s *fileSink) EndArchive() error { return s.f.Close() }

func (s *fileSink) ManifestData(p []byte) error {
	if s.manifest == nil {
		f, err := os.Create(filepath.Join(s.dir, "backup_manifest"))
		if err != nil {
			return err
		}
		s.manifest = f
	}
	_, err := s.manifest.Write(p)
	return err
}

func (s *fileSink) Progress(n int64)        { s.progress = n }
func (s *fileSink) Notice(n *pgconn.Notice) { s.notices = append(s.notices, n) }

func (s *fileSink) close() {
	if s.manifest != nil {
		s.manifest.Close()
	}
}

// backupWithStreamedWAL does what the backup engine does for a full backup
// with -X stream semantics: a second connection creates its slot before
// BASE_BACKUP, starts streaming at the backup's start and stops at its end.
func backupWithStreamedWAL(t *testing.T, ctx context.Context, conninfo, dir string, opts pgrepl.BaseBackupOptions, statusInterval time.Duration, onStart func(pgrepl.Start)) (pgrepl.Result, pgrepl.StreamResult) {
	t.Helper()
	c, err := pgrepl.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	sys, err := c.IdentifySystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := pgrepl.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close(ctx)
	slot, err := wc.CreateTemporarySlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	walFile, err := os.Create(filepath.Join(dir, "pg_wal.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer walFile.Close()

	starts := make(chan pgrepl.Start, 1)
	stop := make(chan wal.LSN, 1)
	type streamOut struct {
		res pgrepl.StreamResult
		err error
	}
	streamed := make(chan streamOut, 1)
	streamCtx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	go func() {
		select {
		case st := <-starts:
			res, err := wc.StreamWAL(streamCtx, pgrepl.StreamOptions{Start: st.LSN, Timeline: st.Timeline, Slot: slot, SystemID: sys.SystemID, StatusInterval: statusInterval}, walFile, stop)
			streamed <- streamOut{res, err}
		case <-streamCtx.Done():
			streamed <- streamOut{err: streamCtx.Err()}
		}
	}()
	sink := &fileSink{dir: dir, onStart: func(st pgrepl.Start) {
		starts <- st
		if onStart != nil {
			onStart(st)
		}
	}}
	res, err := c.BaseBackup(ctx, opts, sink)
	sink.close()
	if err != nil {
		cancelStream()
		<-streamed
		t.Fatalf("BaseBackup: %v", err)
	}
	stop <- res.End
	out := <-streamed
	if out.err != nil {
		t.Fatalf("StreamWAL: %v", out.err)
	}
	// Over TCP the backup's reads waited for the low mark, unless the
	// server was told to send slowly; the WAL stream's never do.
	tcp := strings.Contains(conninfo, "host=127.0.0.1 ")
	if batched := pgrepl.BatchedReads(c) > 0; batched != (tcp && opts.MaxRate == 0) {
		t.Errorf("BASE_BACKUP batched its reads: %v (TCP %v, max rate %d)", batched, tcp, opts.MaxRate)
	}
	if n := pgrepl.BatchedReads(wc); n != 0 {
		t.Errorf("the WAL stream batched %d reads", n)
	}
	return res, out.res
}

func TestIntegrationBackup(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, Tablespaces: 1, DataChecksums: true, Auth: "scram-sha-256"})
		cl.Exec(t, "postgres", "CREATE TABLE t_base (id int, v text)")
		cl.Exec(t, "postgres", "INSERT INTO t_base SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g")
		cl.Exec(t, "postgres", "CREATE TABLE t_ts (id int) TABLESPACE ts1")
		cl.Exec(t, "postgres", "INSERT INTO t_ts SELECT generate_series(1, 5000)")
		conninfo := cl.TCPConnString(pgtest.BackupRole)

		c, err := pgrepl.Connect(ctx, conninfo)
		if err != nil {
			t.Fatal(err)
		}
		if c.Major() != v {
			t.Errorf("Major = %d", c.Major())
		}
		sys, err := c.IdentifySystem(ctx)
		if err != nil || sys.SystemID == 0 || sys.Timeline != 1 || sys.XLogPos == 0 {
			t.Errorf("IdentifySystem = %+v, %v", sys, err)
		}
		if lvl, err := c.Show(ctx, "wal_level"); err != nil || lvl != "replica" {
			t.Errorf("SHOW wal_level = %q, %v", lvl, err)
		}
		c.Close(ctx)

		// sslmode=prefer (libpq's default) and a server without TLS: one
		// TCP connection, as with libpq (pgconn alone dials twice), and
		// SCRAM authentication still passes.
		if n, tls := preferConnections(t, ctx, cl, conninfo); n != 1 || tls {
			t.Errorf("sslmode prefer against a server without TLS: %d connections, TLS %v; want 1, false", n, tls)
		}

		// Keep WAL flowing during the backup, so that more than one
		// segment may be streamed.
		dir := t.TempDir()
		res, sres := backupWithStreamedWAL(t, ctx, conninfo, dir, pgrepl.BaseBackupOptions{
			Label: "it's a label", Progress: true, Manifest: pgrepl.ManifestYes, ManifestChecksums: "SHA256",
		}, 0, nil)
		t.Logf("backup %s..%s, %d archives, WAL %s..%s in %v", res.Start, res.End, len(res.Archives), sres.Start, sres.End, sres.Segments)

		if res.End < res.Start || res.StartTimeline != 1 || res.EndTimeline != 1 {
			t.Errorf("result %+v", res)
		}
		if len(res.Tablespaces) != 2 || res.Tablespaces[1].OID != 0 || res.Tablespaces[0].Location != cl.TablespaceDirs[0] || res.Tablespaces[1].SizeKB <= 0 {
			t.Errorf("tablespaces %+v", res.Tablespaces)
		}
		tsName := fmt.Sprintf("%d.tar", res.Tablespaces[0].OID)
		if len(res.Archives) != 2 || res.Archives[0].Name != tsName || res.Archives[1].Name != "base.tar" {
			t.Fatalf("archives %+v", res.Archives)
		}
		if res.BytesDone == 0 {
			t.Error("no progress")
		}

		base := tarMembers(t, filepath.Join(dir, "base.tar"))
		if label := string(base["backup_label"]); !strings.Contains(label, "LABEL: it's a label\n") ||
			!strings.Contains(label, "START WAL LOCATION: "+res.Start.String()+" ") {
			t.Errorf("backup_label:\n%s", label)
		}
		if _, ok := base["global/pg_control"]; !ok {
			t.Error("base.tar without global/pg_control")
		}
		ts := tarMembers(t, filepath.Join(dir, tsName))
		found := false
		for name := range ts {
			found = found || strings.HasPrefix(name, fmt.Sprintf("PG_%d_", v))
		}
		if !found {
			t.Errorf("tablespace archive has no PG_%d_ directory", v)
		}
		manifest, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
		if err != nil {
			t.Fatal(err)
		}
		wantVersion := 1
		if v >= 17 {
			wantVersion = 2
		}
		if !bytes.HasPrefix(manifest, fmt.Appendf(nil, "{ \"PostgreSQL-Backup-Manifest-Version\": %d,\n", wantVersion)) ||
			!bytes.Contains(manifest, []byte(`"Manifest-Checksum": "`)) || int64(len(manifest)) != res.ManifestBytes {
			t.Errorf("manifest starts %q, %d bytes", manifest[:min(60, len(manifest))], len(manifest))
		}

		// The streamed WAL covers start..end.
		walMembers := tarMembers(t, filepath.Join(dir, "pg_wal.tar"))
		segSize := uint64(wal.DefaultSegmentSize)
		if first := wal.SegmentName(1, res.Start, segSize); sres.Segments[0] != first {
			t.Errorf("first segment %s, want %s", sres.Segments[0], first)
		}
		if sres.End < res.End {
			t.Errorf("streamed to %s, backup ends at %s", sres.End, res.End)
		}
		for _, s := range sres.Segments {
			if len(walMembers[s]) != int(segSize) {
				t.Errorf("segment %s has %d bytes", s, len(walMembers[s]))
			}
		}

		// The proof: the backup verifies and starts.
		data := filepath.Join(t.TempDir(), "data")
		tsDir := filepath.Join(t.TempDir(), "ts1")
		extract(t, filepath.Join(dir, "base.tar"), data)
		extract(t, filepath.Join(dir, tsName), tsDir)
		extract(t, filepath.Join(dir, "pg_wal.tar"), filepath.Join(data, "pg_wal"))
		link := filepath.Join(data, "pg_tblspc", strconv.FormatUint(uint64(res.Tablespaces[0].OID), 10))
		os.Remove(link)
		if err := os.Symlink(tsDir, link); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "backup_manifest"), manifest, 0o600); err != nil {
			t.Fatal(err)
		}
		if v != 16 { // no 16 client tools exist here
			tools := pgtest.Tools(t, v)
			out, err := exec.Command(filepath.Join(tools, "pg_verifybackup"), data).CombinedOutput()
			if err != nil {
				t.Errorf("pg_verifybackup %d: %v\n%s", v, err, out)
			}
		}
		os.Remove(filepath.Join(data, "backup_manifest"))
		restored := pgtest.StartOnDataDir(t, v, data)
		for table, want := range map[string]int64{"t_base": 10000, "t_ts": 5000} {
			rows := restored.Query(t, "postgres", "SELECT count(*) FROM "+table)
			if got := rows[0][0].(int64); got != want {
				t.Errorf("restored %s has %d rows, want %d", table, got, want)
			}
		}
	})
}

// TestIntegrationWALAcrossSegments streams while the server writes a lot of
// WAL and switches segments, with the WAL fetched too for comparison.
func TestIntegrationWALAcrossSegments(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		if v != 15 && v != 18 {
			t.Skip("the other majors take the same path; 15 and 18 bracket them")
		}
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, Settings: map[string]string{"max_wal_size": "1GB"}})
		cl.Exec(t, "postgres", "CREATE TABLE w (id int, v text)")
		dir := t.TempDir()
		// Slow the backup down so the writer below overlaps it.
		sql, err := pgconn.Connect(ctx, cl.ConnString("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer sql.Close(ctx)
		done := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < 3 && err == nil; i++ {
				_, err = sql.Exec(ctx, "INSERT INTO w SELECT g, repeat('y', 200) FROM generate_series(1, 50000) g; SELECT pg_switch_wal()").ReadAll()
			}
			done <- err
		}()
		res, sres := backupWithStreamedWAL(t, ctx, cl.TCPConnString(pgtest.BackupRole), dir, pgrepl.BaseBackupOptions{MaxRate: 8192, Manifest: pgrepl.ManifestYes}, 0, nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		t.Logf("backup %s..%s, WAL %v", res.Start, res.End, sres.Segments)
		walMembers := tarMembers(t, filepath.Join(dir, "pg_wal.tar"))
		// Every complete segment equals the server's own copy.
		for _, s := range sres.Segments {
			onServer, err := os.ReadFile(filepath.Join(cl.DataDir, "pg_wal", s))
			if err != nil {
				t.Logf("segment %s no longer on the server: %v", s, err)
				continue
			}
			got := walMembers[s]
			if _, complete := walMembers["archive_status/"+s+".done"]; complete {
				if !bytes.Equal(got, onServer) {
					t.Errorf("segment %s differs from the server's", s)
				}
			} else {
				n := int(uint64(sres.End) % uint64(wal.DefaultSegmentSize))
				if !bytes.Equal(got[:n], onServer[:n]) || !bytes.Equal(got[n:], make([]byte, len(got)-n)) {
					t.Errorf("partial segment %s: not the server's bytes up to %d then zeros", s, n)
				}
			}
		}
	})
}

func TestIntegrationBlackholeAndFetch(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v})
		c, err := pgrepl.Connect(ctx, cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		sink := &memSink{}
		res, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Target: pgrepl.TargetBlackhole, Manifest: pgrepl.ManifestYes}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Archives) != 1 || res.Archives[0].Bytes != 0 || res.ManifestBytes != 0 || res.BytesDone == 0 {
			t.Errorf("blackhole result %+v", res)
		}
		// Same session: WAL fetched into base.tar, WAIT true (archiving off
		// gives the NOTICE inside the COPY).
		sink = &memSink{}
		res, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{WAL: true, WaitForArchive: true, NoVerifyChecksums: true, MaxRate: 1048576, Compression: "gzip", CompressionDetail: "1"}, sink)
		if err != nil {
			t.Fatal(err)
		}
		if !sink.hasArchive("base.tar.gz") {
			t.Errorf("archives %v", res.Archives)
		}
		if len(sink.notices) == 0 || !strings.Contains(strings.Join(sink.notices, "|"), "WAL archiving is not enabled") {
			t.Errorf("notices %q", sink.notices)
		}
	})
}

func TestIntegrationIncremental(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, Tablespaces: 1})
		cl.Exec(t, "postgres", "CREATE TABLE inc (id int)")
		cl.Exec(t, "postgres", "INSERT INTO inc SELECT generate_series(1, 1000)")
		c, err := pgrepl.Connect(ctx, cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if v < 17 {
			err := c.UploadManifest(ctx, strings.NewReader("{}"))
			checkError(t, err, pgrepl.ErrServerVersion)
			_, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Incremental: true}, &memSink{})
			checkError(t, err, pgrepl.ErrServerVersion)
			return
		}
		full := &memSink{}
		fres, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Label: "full", Manifest: pgrepl.ManifestYes}, full)
		if err != nil {
			t.Fatal(err)
		}
		manifest := full.manifest.Bytes()

		// INCREMENTAL without an uploaded manifest.
		_, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Incremental: true, Manifest: pgrepl.ManifestYes}, &memSink{})
		checkError(t, err, pgrepl.ErrManifest)
		t.Log(err)

		// A damaged manifest is refused, and the session goes on.
		bad := bytes.Replace(manifest, []byte(`"Size": `), []byte(`"Size": 1`), 1)
		err = c.UploadManifest(ctx, bytes.NewReader(bad))
		checkError(t, err, pgrepl.ErrManifest)
		t.Log(err)

		cl.Exec(t, "postgres", "UPDATE inc SET id = id + 1 WHERE id < 10")
		cl.Exec(t, "postgres", "CHECKPOINT")
		if err := c.UploadManifest(ctx, bytes.NewReader(manifest)); err != nil {
			t.Fatal(err)
		}
		inc := &memSink{}
		ires, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Label: "inc", Incremental: true, Manifest: pgrepl.ManifestYes}, inc)
		if err != nil {
			t.Fatal(err)
		}
		members := tarMembersBytes(t, inc.archives["base.tar"].Bytes())
		label := string(members["backup_label"])
		if !strings.Contains(label, "INCREMENTAL FROM LSN: "+fres.Start.String()+"\n") {
			t.Errorf("incremental backup_label:\n%s", label)
		}
		n := 0
		for name := range members {
			if strings.Contains(name, "/INCREMENTAL.") {
				n++
			}
		}
		if n == 0 {
			t.Error("no INCREMENTAL files")
		}
		t.Logf("incremental %s..%s: %d INCREMENTAL files", ires.Start, ires.End, n)
	})
}

func TestIntegrationIncrementalWithoutSummaries(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		if v < 17 {
			t.Skip("incremental backups are 17+")
		}
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, NoWALSummarizer: true})
		c, err := pgrepl.Connect(ctx, cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		full := &memSink{}
		if _, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestYes}, full); err != nil {
			t.Fatal(err)
		}
		if err := c.UploadManifest(ctx, bytes.NewReader(full.manifest.Bytes())); err != nil {
			t.Fatal(err)
		}
		_, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Incremental: true, Manifest: pgrepl.ManifestYes}, &memSink{})
		checkError(t, err, pgrepl.ErrSummarizeWAL)
		t.Log(err)

		findings := pgrepl.Check(ctx, cl.ConnString(pgtest.BackupRole), pgrepl.CheckOptions{WantIncremental: true})
		f := finding(findings, pgrepl.CheckSummarizeWAL)
		if f.Status != pgrepl.StatusFailed || !errors.Is(f.Err, pgrepl.ErrSummarizeWAL) {
			t.Errorf("summarize_wal finding %+v", f)
		}
	})
}

func finding(fs []pgrepl.Finding, check string) pgrepl.Finding {
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	return pgrepl.Finding{Check: check, Status: -1}
}

func TestIntegrationCheck(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, DataChecksums: true})
		findings := pgrepl.Check(ctx, cl.ConnString(pgtest.BackupRole), pgrepl.CheckOptions{WantIncremental: true, StreamWAL: true})
		for _, f := range findings {
			t.Logf("%s %s: %s", f.Check, f.Status, f.Message)
			want := pgrepl.StatusOK
			if f.Check == pgrepl.CheckSummarizeWAL && v < 17 {
				want = pgrepl.StatusFailed
			}
			if f.Status != want {
				t.Errorf("%s: %s, want %s", f.Check, f.Status, want)
			}
		}
		for _, c := range []string{pgrepl.CheckConnect, pgrepl.CheckWALLevel, pgrepl.CheckMaxWALSenders, pgrepl.CheckSecondSender, pgrepl.CheckSummarizeWAL, pgrepl.CheckDataChecksums} {
			if finding(findings, c).Status == -1 {
				t.Errorf("no %s finding", c)
			}
		}
	})
}

// TestIntegrationConnectErrors shows what the servers really say, and that
// each case is classified.
func TestIntegrationConnectErrors(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)

		// Password authentication, a role without REPLICATION, one WAL
		// sender.
		cl := pgtest.Start(t, pgtest.Options{Version: v, Auth: "scram-sha-256", NoReplicationRole: true,
			Settings: map[string]string{"max_wal_senders": "1"}})
		// With one WAL sender, the slot of a connection that just failed
		// may not be free yet (the server process exits after sending the
		// FATAL); the server checks the limit before authentication.
		settled := func(ci string) (*pgrepl.Conn, error) {
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				c, err := pgrepl.Connect(ctx, ci)
				if !errors.Is(err, pgrepl.ErrTooManyConnections) || time.Now().After(deadline) {
					return c, err
				}
			}
		}
		wrong := strings.Replace(cl.TCPConnString(pgtest.BackupRole), "password="+cl.Password, "password=wrong-"+cl.Password, 1)
		_, err := settled(wrong)
		checkError(t, err, pgrepl.ErrAuth)
		if strings.Contains(err.Error(), "wrong-"+cl.Password) {
			t.Errorf("password in %q", err)
		}
		t.Logf("wrong password: %v", err)

		_, err = settled(cl.TCPConnString(pgtest.BackupRole))
		checkError(t, err, pgrepl.ErrPrivilege)
		if !strings.Contains(err.Error(), `ALTER ROLE "backup" REPLICATION`) {
			t.Errorf("no advice in %q", err)
		}
		t.Logf("no REPLICATION: %v", err)
		var fs []pgrepl.Finding
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			fs = pgrepl.Check(ctx, cl.TCPConnString(pgtest.BackupRole), pgrepl.CheckOptions{})
			if len(fs) != 1 || !errors.Is(fs[0].Err, pgrepl.ErrTooManyConnections) {
				break
			}
		}
		if len(fs) != 1 || fs[0].Check != pgrepl.CheckConnect || !errors.Is(fs[0].Err, pgrepl.ErrPrivilege) {
			t.Errorf("Check = %+v", fs)
		}

		c1, err := settled(cl.ConnString("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer c1.Close(ctx)
		_, err = pgrepl.Connect(ctx, cl.ConnString("postgres"))
		checkError(t, err, pgrepl.ErrTooManyConnections)
		t.Logf("WAL senders exhausted: %v", err)

		// No pg_hba line for replication.
		cl2 := pgtest.Start(t, pgtest.Options{Version: v, NoReplicationHBA: true})
		_, err = pgrepl.Connect(ctx, cl2.TCPConnString(pgtest.BackupRole))
		checkError(t, err, pgrepl.ErrNoReplication)
		t.Logf("no pg_hba line: %v", err)

		// wal_level=minimal needs max_wal_senders=0: the connection itself
		// fails.
		cl3 := pgtest.Start(t, pgtest.Options{Version: v, NoWALSummarizer: true,
			Settings: map[string]string{"wal_level": "minimal", "max_wal_senders": "0"}})
		_, err = pgrepl.Connect(ctx, cl3.TCPConnString(pgtest.BackupRole))
		checkError(t, err, pgrepl.ErrWALLevel)
		t.Logf("wal_level=minimal: %v", err)
	})
}

func TestIntegrationChecksumFailure(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v, DataChecksums: true})
		cl.Exec(t, "postgres", "CREATE TABLE damaged (id int, v text)")
		cl.Exec(t, "postgres", "INSERT INTO damaged SELECT g, repeat('z', 50) FROM generate_series(1, 2000) g")
		cl.Exec(t, "postgres", "CHECKPOINT")
		rel := cl.Query(t, "postgres", "SELECT pg_relation_filepath('damaged')")[0][0].(string)
		cl.Stop(t)
		path := filepath.Join(cl.DataDir, rel)
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Damage tuple data of blocks 0 and 2, leaving the page headers.
		for _, off := range []int64{4000, 2*8192 + 5000} {
			if _, err := f.WriteAt([]byte("garbage!"), off); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		cl.Restart(t)

		c, err := pgrepl.Connect(ctx, cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		sink := &memSink{}
		res, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestYes}, sink)
		checkError(t, err, pgrepl.ErrChecksumFailure)
		t.Logf("checksum failure: %v", err)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "XX001" {
			t.Errorf("PgError %v", pe)
		}
		if !strings.Contains(err.Error(), rel) || len(res.ChecksumFailures) != 1 || !strings.HasSuffix(res.ChecksumFailures[0], rel) {
			t.Errorf("the error does not name %s: %v (failures %q)", rel, err, res.ChecksumFailures)
		}
		if res.End == 0 || sink.manifest.Len() == 0 {
			t.Errorf("stream not complete: %+v", res)
		}
		var warnings int
		for _, n := range sink.notices {
			if strings.HasPrefix(n, "checksum verification failed") {
				warnings++
			}
		}
		if warnings != 2 {
			t.Errorf("%d checksum warnings, want 2: %q", warnings, sink.notices)
		}
		// The session still works, and verification can be turned off.
		if _, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{NoVerifyChecksums: true}, &memSink{}); err != nil {
			t.Errorf("with VERIFY_CHECKSUMS false: %v", err)
		}
	})
}

func TestIntegrationCancel(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		if v != 17 {
			t.Skip("one major is enough")
		}
		cl := pgtest.Start(t, pgtest.Options{Version: v})
		c, err := pgrepl.Connect(testCtx(t), cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sink := &memSink{cancel: cancel, cancelAfter: 1 << 20}
		_, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{MaxRate: 1024}, sink)
		if !errors.Is(err, context.Canceled) || !c.IsClosed() {
			t.Errorf("err %v, closed %v", err, c.IsClosed())
		}
		// The server ends the walsender; a new connection works.
		c2, err := pgrepl.Connect(testCtx(t), cl.ConnString(pgtest.BackupRole))
		if err != nil {
			t.Fatal(err)
		}
		c2.Close(context.Background())
	})
}

// tarMembers reads a tar file into memory (test archives are small).
func tarMembers(t *testing.T, path string) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tarMembersBytes(t, b)
}

func tarMembersBytes(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(h.Name, "./")] = c
	}
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_./ -]*$`)

// extract unpacks a tar file into dir (test helper; archives come from the
// test's own server).
func extract(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if !safeName.MatchString(name) || strings.Contains(name, "..") {
			t.Fatalf("unsafe member %q", h.Name)
		}
		target := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o700)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, target)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				break
			}
			var out *os.File
			if out, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
				break
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		default:
			t.Fatalf("member %q of type %c", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestIntegrationTLS streams over TLS with frequent status updates: every
// update interrupts a pending TLS read with a deadline, which must leave
// the TLS session intact. Debian's PostgreSQL 15 is built with OpenSSL.
func TestIntegrationTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := testCtx(t)
	dir, err := os.MkdirTemp("/tmp", "pgrepl-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	certFile, keyFile := writeCert(t, dir)
	cl := pgtest.Start(t, pgtest.Options{Version: 15, Settings: map[string]string{
		"ssl": "on", "ssl_cert_file": certFile, "ssl_key_file": keyFile}})
	cl.Exec(t, "postgres", "CREATE TABLE w (id int, v text)")
	conninfo := cl.TCPConnString(pgtest.BackupRole) + " sslmode=require"

	sql, err := pgconn.Connect(ctx, cl.ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sql.Close(ctx)
	var sslSenders string
	res, sres := backupWithStreamedWAL(t, ctx, conninfo, t.TempDir(),
		pgrepl.BaseBackupOptions{MaxRate: 4096}, 20*time.Millisecond, func(pgrepl.Start) {
			r, err := sql.Exec(ctx, "INSERT INTO w SELECT g, repeat('y', 200) FROM generate_series(1, 30000) g; "+
				"SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND backend_type = 'walsender'").ReadAll()
			if err != nil {
				t.Error(err)
				return
			}
			sslSenders = string(r[1].Rows[0][0])
		})
	if sslSenders != "2" {
		t.Errorf("%s walsenders use TLS, want 2", sslSenders)
	}
	if sres.End < res.End {
		t.Errorf("streamed to %s, backup ends at %s", sres.End, res.End)
	}
	t.Logf("backup %s..%s over TLS, WAL %v", res.Start, res.End, sres.Segments)

	// sslmode=prefer gets TLS from this server, on one connection.
	if n, tls := preferConnections(t, ctx, cl, cl.TCPConnString(pgtest.BackupRole)); n != 1 || !tls {
		t.Errorf("sslmode prefer against a server with TLS: %d connections, TLS %v; want 1, true", n, tls)
	}

	// Without a rate limit the reads are batched (SO_RCVLOWAT on the TCP
	// socket under TLS); every file of the manifest arrives whole.
	c, err := pgrepl.Connect(ctx, conninfo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	sink := &memSink{}
	if _, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestYes}, sink); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(sink.manifest.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	base := tarMembersBytes(t, sink.archives["base.tar"].Bytes())
	for _, f := range m.Files {
		if b, ok := base[f.Path]; !ok || int64(len(b)) != f.Size {
			t.Errorf("%s: %d bytes in base.tar (present %v), %d in the manifest", f.Path, len(b), ok, f.Size)
		}
	}
	if len(m.Files) < 100 {
		t.Errorf("manifest lists %d files", len(m.Files))
	}
	if pgrepl.BatchedReads(c) == 0 {
		t.Error("no read waited for the low mark under TLS")
	}

	// A certificate that does not name the host is refused.
	_, err = pgrepl.Connect(ctx, cl.TCPConnString(pgtest.BackupRole)+" sslmode=verify-full sslrootcert="+certFile)
	checkError(t, err, pgrepl.ErrTLS)
	t.Log(err)
}

// writeCert writes a self-signed certificate for "db.example" and its key,
// readable by the OS user postgres.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "db.example"}, DNSNames: []string{"db.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, certFile, keyFile} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	return certFile, keyFile
}

// TestIntegrationTimeline2 backs up a server on timeline 2: a restored
// backup promoted at the end of recovery. The WAL stream must carry the
// history file, and the result must restore again.
func TestIntegrationTimeline2(t *testing.T) {
	forEachVersion(t, func(t *testing.T, v int) {
		if v != 15 && v != 18 {
			t.Skip("15 and 18 bracket the others")
		}
		ctx := testCtx(t)
		cl := pgtest.Start(t, pgtest.Options{Version: v})
		cl.Exec(t, "postgres", "CREATE TABLE t2 AS SELECT generate_series(1, 1000) AS id")
		dir := t.TempDir()
		res, _ := backupWithStreamedWAL(t, ctx, cl.ConnString(pgtest.BackupRole), dir, pgrepl.BaseBackupOptions{}, 0, nil)

		data := filepath.Join(t.TempDir(), "data")
		extract(t, filepath.Join(dir, "base.tar"), data)
		extract(t, filepath.Join(dir, "pg_wal.tar"), filepath.Join(data, "pg_wal"))
		auto, err := os.OpenFile(filepath.Join(data, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(auto, "restore_command = 'false'\nrecovery_target = 'immediate'\nrecovery_target_action = 'promote'\n")
		auto.Close()
		if err := os.WriteFile(filepath.Join(data, "recovery.signal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		promoted := pgtest.StartOnDataDir(t, v, data)
		// Promotion finishes asynchronously after the server accepts
		// connections.
		var sys pgrepl.System
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			c, err := pgrepl.Connect(ctx, promoted.ConnString(pgtest.BackupRole))
			if err != nil {
				t.Fatal(err)
			}
			sys, err = c.IdentifySystem(ctx)
			c.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if sys.Timeline == 2 || time.Now().After(deadline) {
				break
			}
		}
		if sys.Timeline != 2 {
			t.Fatalf("timeline %d after promotion", sys.Timeline)
		}
		promoted.Exec(t, "postgres", "INSERT INTO t2 SELECT generate_series(1001, 1500)")

		dir2 := t.TempDir()
		res2, sres2 := backupWithStreamedWAL(t, ctx, promoted.ConnString(pgtest.BackupRole), dir2, pgrepl.BaseBackupOptions{}, 0, nil)
		if res2.StartTimeline != 2 || res2.Start <= res.Start {
			t.Errorf("second backup %+v", res2)
		}
		members := tarMembers(t, filepath.Join(dir2, "pg_wal.tar"))
		if h := string(members["00000002.history"]); !strings.HasPrefix(h, "1\t") {
			t.Errorf("00000002.history = %q", h)
		}
		if _, ok := members["archive_status/00000002.history.done"]; !ok {
			t.Error("no .done for the history file")
		}
		if !strings.HasPrefix(sres2.Segments[0], "00000002") {
			t.Errorf("segments %v", sres2.Segments)
		}

		data2 := filepath.Join(t.TempDir(), "data")
		extract(t, filepath.Join(dir2, "base.tar"), data2)
		extract(t, filepath.Join(dir2, "pg_wal.tar"), filepath.Join(data2, "pg_wal"))
		for _, f := range []string{"recovery.signal", "postgresql.auto.conf"} {
			os.Remove(filepath.Join(data2, f))
		}
		restored := pgtest.StartOnDataDir(t, v, data2)
		if n := restored.Query(t, "postgres", "SELECT count(*) FROM t2")[0][0].(int64); n != 1500 {
			t.Errorf("restored t2 has %d rows, want 1500", n)
		}
	})
}

// preferConnections connects with conninfo under sslmode=prefer through a
// proxy that counts TCP connections to cl, runs IDENTIFY_SYSTEM, and
// returns how many connections that took and whether the one kept uses
// TLS.
func preferConnections(t *testing.T, ctx context.Context, cl *pgtest.Cluster, conninfo string) (connections int, usesTLS bool) {
	t.Helper()
	port, accepted := countingProxy(t, cl.Port)
	c, err := pgrepl.Connect(ctx, conninfo+" sslmode=prefer port="+port)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IdentifySystem(ctx); err != nil {
		t.Error(err)
	}
	c.Close(ctx)
	return accepted(), pgrepl.UsesTLS(c)
}

// countingProxy forwards TCP connections from a port of its own to the
// server's port on 127.0.0.1 and counts them.
func countingProxy(t *testing.T, serverPort int) (port string, accepted func() int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			s, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", serverPort))
			if err != nil {
				c.Close()
				continue
			}
			wg.Go(func() {
				// Either side closing ends both copies.
				var once sync.Once
				done := func() { once.Do(func() { c.Close(); s.Close() }) }
				var copies sync.WaitGroup
				copies.Go(func() { io.Copy(s, c); done() })
				copies.Go(func() { io.Copy(c, s); done() })
				copies.Wait()
			})
		}
	})
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}
