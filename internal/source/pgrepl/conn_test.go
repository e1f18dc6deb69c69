package pgrepl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

const secret = "hunter2-secret"

// checkError asserts the properties every error of the package has: the
// classification, one line, no password.
func checkError(t *testing.T, err error, kind error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error is not one line: %q", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error shows the password: %q", err)
	}
}

func TestConnectStartupErrors(t *testing.T) {
	tests := []struct {
		code, msg string
		kind      error
		advice    string
	}{
		{"28P01", `password authentication failed for user "backup"`, pgrepl.ErrAuth, "check the password"},
		{"28000", `no pg_hba.conf entry for replication connection from host "127.0.0.1", user "backup", no encryption`, pgrepl.ErrNoReplication, "host replication backup"},
		{"28000", `pg_hba.conf rejects replication connection for host "127.0.0.1", user "backup", no encryption`, pgrepl.ErrNoReplication, "pg_hba.conf"},
		{"28000", `role "backup" is not permitted to log in`, pgrepl.ErrAuth, `ALTER ROLE "backup" LOGIN`},
		{"42501", "must be superuser or replication role to start walsender", pgrepl.ErrPrivilege, `ALTER ROLE "backup" REPLICATION`},
		{"42501", "permission denied to start WAL sender", pgrepl.ErrPrivilege, `ALTER ROLE "backup" REPLICATION`},
		{"53300", "sorry, too many clients already", pgrepl.ErrTooManyConnections, "max_wal_senders"},
		{"53300", "number of requested standby connections exceeds max_wal_senders (currently 0)", pgrepl.ErrWALLevel, "wal_level = replica"},
		{"57P03", "the database system is starting up", pgrepl.ErrUnreachable, "retry"},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			f := newFakeServer(t)
			f.startupError = &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: tt.code, Message: tt.msg}
			c, err := pgrepl.Connect(context.Background(), f.conninfo())
			if err == nil {
				c.Close(context.Background())
			}
			checkError(t, err, tt.kind)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Errorf("PgError not reachable from %v", err)
			}
			for _, want := range []string{"connect to host=127.0.0.1 port=", "user=backup", tt.advice} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestConnectStartupPacket(t *testing.T) {
	f := newFakeServer(t)
	c, err := pgrepl.Connect(context.Background(), f.conninfo()+" dbname=postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if c.Major() != 15 || c.ServerVersionNum() != 150018 || c.PID() != 4242 {
		t.Errorf("major %d num %d pid %d", c.Major(), c.ServerVersionNum(), c.PID())
	}
	p := f.startups[0]
	if p["replication"] != "true" || p["application_name"] != "holdfast" || p["user"] != "backup" {
		t.Errorf("startup parameters %v", p)
	}
	if _, ok := p["database"]; ok {
		t.Errorf("startup sends database: %v", p)
	}

	c2, err := pgrepl.Connect(context.Background(), f.conninfo()+" application_name=nightly", pgrepl.WithApplicationName("other"))
	if err != nil {
		t.Fatal(err)
	}
	c2.Close(context.Background())
	if got := f.startups[1]["application_name"]; got != "nightly" {
		t.Errorf("application_name %q, the conninfo should win", got)
	}
}

func TestConnectVersions(t *testing.T) {
	tests := []struct {
		num, str string
		major    int
		kind     error
	}{
		{"140010", "14.10", 0, pgrepl.ErrServerVersion},
		{"190000", "19devel", 0, pgrepl.ErrServerVersion},
		{"180001", "18.1", 18, nil},
		{"160004", "16.4", 16, nil},
		{"", "17.2 (Debian)", 17, nil}, // SHOW fails: fall back to server_version
		{"", "13.4", 0, pgrepl.ErrServerVersion},
		{"", "garbage", 0, pgrepl.ErrServerVersion},
	}
	for _, tt := range tests {
		t.Run(tt.num+"/"+tt.str, func(t *testing.T) {
			f := newFakeServer(t)
			f.versionNum, f.serverVersion = tt.num, tt.str
			c, err := pgrepl.Connect(context.Background(), f.conninfo())
			if tt.kind != nil {
				checkError(t, err, tt.kind)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			if c.Major() != tt.major {
				t.Errorf("Major = %d, want %d", c.Major(), tt.major)
			}
		})
	}
}

func TestConnectUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for _, ci := range []string{
		fmt.Sprintf("host=127.0.0.1 port=%d user=backup password=%s", port, secret),
		"host=/nonexistent/socket/dir user=backup password=" + secret,
		"postgres://backup:" + secret + "@nonexistent.invalid:5432/x?connect_timeout=5",
	} {
		t.Run(ci, func(t *testing.T) {
			_, err := pgrepl.Connect(context.Background(), ci)
			checkError(t, err, pgrepl.ErrUnreachable)
			t.Log(err)
		})
	}
}

func TestConnectBadConninfo(t *testing.T) {
	for _, ci := range []string{
		"host=x password=" + secret + " port=notaport",
		"host=x password='" + secret + "' sslmode=bogus",
		"postgres://backup:" + secret + "@host:badport/db",
		"password=" + secret + " =oops",
	} {
		_, err := pgrepl.Connect(context.Background(), ci)
		checkError(t, err, pgrepl.ErrOption)
		t.Log(err)
	}
}

func TestConnectCancelled(t *testing.T) {
	// A server that accepts and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = pgrepl.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=backup sslmode=disable", ln.Addr().(*net.TCPAddr).Port))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's error", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

// backupHandler answers BASE_BACKUP with a small backup, then, if
// endless, streams data until the client goes away.
func backupHandler(t *testing.T, gotQuery *string, endless bool) func(*session, string) error {
	return func(s *session, q string) error {
		if !strings.HasPrefix(q, "BASE_BACKUP") {
			return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		*gotQuery = q
		cd := func(m pgrepl.CopyMessage) *pgproto3.CopyData { return &pgproto3.CopyData{Data: m.AppendEncode(nil)} }
		if err := s.send(
			rowDescT("recptr", "tli"), &pgproto3.DataRow{Values: [][]byte{[]byte("0/3000028"), []byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
			rowDescT("spcoid", "spclocation", "size"), &pgproto3.DataRow{Values: [][]byte{nil, nil, nil}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
			&pgproto3.CopyOutResponse{},
			cd(pgrepl.CopyMessage{Kind: pgrepl.KindNewArchive, Name: "base.tar"}),
			cd(pgrepl.CopyMessage{Kind: pgrepl.KindData, Data: []byte("hello")}),
		); err != nil {
			return err
		}
		if endless {
			chunk := cd(pgrepl.CopyMessage{Kind: pgrepl.KindData, Data: make([]byte, 32768)})
			for {
				if err := s.send(chunk); err != nil {
					return err
				}
			}
		}
		return s.send(
			&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "WAL archiving is not enabled"},
			cd(pgrepl.CopyMessage{Kind: pgrepl.KindProgress, Progress: 5}),
			cd(pgrepl.CopyMessage{Kind: pgrepl.KindManifest}),
			cd(pgrepl.CopyMessage{Kind: pgrepl.KindData, Data: []byte("{}\n")}),
			&pgproto3.CopyDone{},
			rowDescT("recptr", "tli"), &pgproto3.DataRow{Values: [][]byte{[]byte("0/3000100"), []byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT")},
			&pgproto3.CommandComplete{CommandTag: []byte("BASE_BACKUP")}, &pgproto3.ReadyForQuery{TxStatus: 'I'},
		)
	}
}

func rowDescT(names ...string) *pgproto3.RowDescription {
	rd := &pgproto3.RowDescription{}
	for _, n := range names {
		rd.Fields = append(rd.Fields, pgproto3.FieldDescription{Name: []byte(n), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1})
	}
	return rd
}

// memSink keeps everything; cancel, if set, is called once archive bytes
// pass cancelAfter.
type memSink struct {
	archives    map[string]*bytes.Buffer
	cur         string
	manifest    bytes.Buffer
	notices     []string
	start       pgrepl.Start
	progress    int64
	cancel      func()
	cancelAfter int
	fail        error
}

func (s *memSink) Start(st pgrepl.Start) error { s.start = st; return nil }
func (s *memSink) BeginArchive(name, loc string) error {
	if s.archives == nil {
		s.archives = map[string]*bytes.Buffer{}
	}
	s.archives[name], s.cur = &bytes.Buffer{}, name
	return nil
}

func (s *memSink) ArchiveData(p []byte) error {
	s.archives[s.cur].Write(p)
	if s.cancel != nil && s.archives[s.cur].Len() > s.cancelAfter {
		s.cancel()
	}
	if s.fail != nil && s.archives[s.cur].Len() > s.cancelAfter {
		return s.fail
	}
	return nil
}
func (s *memSink) EndArchive() error                { return nil }
func (s *memSink) ManifestData(p []byte) error      { s.manifest.Write(p); return nil }
func (s *memSink) Progress(n int64)                 { s.progress = n }
func (s *memSink) Notice(n *pgconn.Notice)          { s.notices = append(s.notices, n.Message) }
func (s *memSink) archive(name string) string       { return s.archives[name].String() }
func (s *memSink) String() string                   { return fmt.Sprint(s.archives) }
func (s *memSink) hasArchive(name string) (ok bool) { _, ok = s.archives[name]; return ok }

func TestBaseBackupOverTheWire(t *testing.T) {
	f := newFakeServer(t)
	var q string
	f.handle = backupHandler(t, &q, false)
	ctx := context.Background()
	c, err := pgrepl.Connect(ctx, f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	sink := &memSink{}
	res, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Label: "x", Manifest: pgrepl.ManifestYes}, sink)
	if err != nil {
		t.Fatal(err)
	}
	if q != "BASE_BACKUP (LABEL 'x', CHECKPOINT 'fast', WAIT false, MANIFEST 'yes')" {
		t.Errorf("query %q", q)
	}
	if sink.archive("base.tar") != "hello" || sink.manifest.String() != "{}\n" || res.End != 0x3000100 || sink.progress != 5 {
		t.Errorf("sink %v manifest %q result %+v", sink, sink.manifest.String(), res)
	}
	if len(sink.notices) != 1 {
		t.Errorf("notices %v", sink.notices)
	}
	// The connection is usable afterwards.
	if _, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Manifest: pgrepl.ManifestYes}, &memSink{}); err != nil {
		t.Errorf("second backup on the same connection: %v", err)
	}
	// Option errors are reported before anything is sent.
	_, err = c.BaseBackup(ctx, pgrepl.BaseBackupOptions{Incremental: true}, &memSink{})
	checkError(t, err, pgrepl.ErrServerVersion)
}

func TestBaseBackupCancel(t *testing.T) {
	f := newFakeServer(t)
	var q string
	f.handle = backupHandler(t, &q, true)
	c, err := pgrepl.Connect(context.Background(), f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink := &memSink{cancel: cancel, cancelAfter: 1 << 20}
	done := make(chan error, 1)
	go func() {
		_, err := c.BaseBackup(ctx, pgrepl.BaseBackupOptions{}, sink)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		checkError(t, err, nil)
	case <-time.After(10 * time.Second):
		t.Fatal("BaseBackup did not return after cancel")
	}
	if !c.IsClosed() {
		t.Error("connection still open after a cancelled backup")
	}
	_, err = c.IdentifySystem(context.Background())
	checkError(t, err, pgrepl.ErrClosed)
}

func TestBaseBackupSinkError(t *testing.T) {
	f := newFakeServer(t)
	var q string
	f.handle = backupHandler(t, &q, true)
	c, err := pgrepl.Connect(context.Background(), f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	full := errors.New("disk full")
	_, err = c.BaseBackup(context.Background(), pgrepl.BaseBackupOptions{}, &memSink{fail: full, cancelAfter: 100000})
	if !errors.Is(err, full) {
		t.Errorf("err = %v, want the sink's", err)
	}
	if !c.IsClosed() {
		t.Error("connection still open after the sink failed")
	}
}

func TestUploadManifestFake(t *testing.T) {
	f := newFakeServer(t)
	f.versionNum, f.serverVersion = "170002", "17.2"
	var got []byte
	f.handle = func(s *session, q string) error {
		if q != "UPLOAD_MANIFEST" {
			return fmt.Errorf("query %q", q)
		}
		if err := s.send(&pgproto3.CopyInResponse{}); err != nil {
			return err
		}
		b, ok, err := s.drainCopyIn()
		if err != nil {
			return err
		}
		got = b
		switch {
		case !ok:
			return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "57014", Message: "COPY from stdin failed: x"}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		case bytes.Equal(b, []byte("good")):
			return s.send(&pgproto3.CommandComplete{CommandTag: []byte("UPLOAD_MANIFEST")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: "manifest checksum mismatch"}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	ctx := context.Background()
	c, err := pgrepl.Connect(ctx, f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.UploadManifest(ctx, strings.NewReader("good")); err != nil {
		t.Fatal(err)
	}
	if string(got) != "good" {
		t.Errorf("server got %q", got)
	}
	err = c.UploadManifest(ctx, strings.NewReader("bad"))
	checkError(t, err, pgrepl.ErrManifest)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "XX000" {
		t.Errorf("PgError not reachable: %v", err)
	}
	readErr := errors.New("storage unreachable")
	err = c.UploadManifest(ctx, io.MultiReader(strings.NewReader("part"), errReaderT{readErr}))
	if !errors.Is(err, readErr) {
		t.Errorf("err = %v, want the reader's error", err)
	}
	// Still usable.
	if err := c.UploadManifest(ctx, strings.NewReader("good")); err != nil {
		t.Errorf("after a failed upload: %v", err)
	}
}

type errReaderT struct{ err error }

func (r errReaderT) Read([]byte) (int, error) { return 0, r.err }

func TestUploadManifestNeeds17(t *testing.T) {
	f := newFakeServer(t)
	ctx := context.Background()
	c, err := pgrepl.Connect(ctx, f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	checkError(t, c.UploadManifest(ctx, strings.NewReader("x")), pgrepl.ErrServerVersion)
}
