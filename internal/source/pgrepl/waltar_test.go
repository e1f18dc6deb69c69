package pgrepl

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/wal"
)

// TestTarHeaderMatchesPgBasebackup compares headers with ones cut from a
// pg_wal.tar that pg_basebackup 15 wrote (-Ft -X stream).
func TestTarHeaderMatchesPgBasebackup(t *testing.T) {
	for _, tt := range []struct {
		file string
		name string
		size int64
	}{
		{"testdata/pg_basebackup15-segment.hdr", "000000010000000000000004", 16 << 20},
		{"testdata/pg_basebackup15-done.hdr", "archive_status/000000010000000000000004.done", 0},
	} {
		want, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		mtime, err := strconv.ParseInt(string(want[136:147]), 8, 64)
		if err != nil {
			t.Fatal(err)
		}
		var got [tarBlock]byte
		tarHeader(&got, tt.name, tt.size, 0o600, time.Unix(mtime, 0))
		if !bytes.Equal(got[:], want) {
			t.Errorf("%s: header differs\n got %q\nwant %q", tt.name, got, want)
		}
	}
}

// maxWriter records the largest single write.
type maxWriter struct {
	bytes.Buffer
	max int
}

func (w *maxWriter) Write(p []byte) (int, error) {
	w.max = max(w.max, len(p))
	return w.Buffer.Write(p)
}

func walBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestWALTar(t *testing.T) {
	const seg = 1 << 20
	start := wal.LSN(5 * seg)
	mtime := time.Unix(1700000000, 0)
	w := &maxWriter{}
	tw := newWALTar(w, 2, seg, start, func() time.Time { return mtime })

	if err := tw.writeFile("00000002.history", []byte("1\t0/4000000\tno recovery target specified\n")); err != nil {
		t.Fatal(err)
	}
	// Two and a half segments in 100 kB pieces, crossing boundaries
	// inside pieces.
	all := walBytes(seg*5/2, 3)
	for rest := all; len(rest) > 0; {
		n := min(len(rest), 100_000)
		if err := tw.writeWAL(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if tw.pos != start+wal.LSN(len(all)) {
		t.Errorf("pos %s", tw.pos)
	}
	if err := tw.finish(); err != nil {
		t.Fatal(err)
	}
	if w.max > 100_000 {
		t.Errorf("largest write %d bytes: something buffered", w.max)
	}
	out := w.Bytes()
	if int64(len(out)) != tw.written || len(out)%tarBlock != 0 {
		t.Errorf("size %d, written %d", len(out), tw.written)
	}
	if !bytes.Equal(out[len(out)-1024:], make([]byte, 1024)) {
		t.Error("archive does not end with two zero blocks")
	}

	type member struct {
		Name string
		Size int64
		Mode int64
	}
	var got []member
	contents := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) || h.Uname != "postgres" || h.Typeflag != tar.TypeReg {
			t.Errorf("%s: header %+v", h.Name, h)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, member{h.Name, h.Size, h.Mode})
		contents[h.Name] = b
	}
	want := []member{
		{"00000002.history", 41, 0o600},
		{"archive_status/00000002.history.done", 0, 0o600},
		{"000000020000000000000005", seg, 0o600},
		{"archive_status/000000020000000000000005.done", 0, 0o600},
		{"000000020000000000000006", seg, 0o600},
		{"archive_status/000000020000000000000006.done", 0, 0o600},
		{"000000020000000000000007", seg, 0o600}, // partial: padded, no .done
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	if !bytes.Equal(contents["000000020000000000000005"], all[:seg]) ||
		!bytes.Equal(contents["000000020000000000000006"], all[seg:2*seg]) {
		t.Error("complete segments differ")
	}
	last := contents["000000020000000000000007"]
	if !bytes.Equal(last[:seg/2], all[2*seg:]) || !bytes.Equal(last[seg/2:], make([]byte, seg/2)) {
		t.Error("partial segment is not data then zeros")
	}
	if d := cmp.Diff([]string{"000000020000000000000005", "000000020000000000000006", "000000020000000000000007"}, tw.segments); d != "" {
		t.Errorf("segments (-want +got):\n%s", d)
	}
}

func TestWALTarEndsOnSegmentBoundary(t *testing.T) {
	const seg = 1 << 20
	var buf bytes.Buffer
	tw := newWALTar(&buf, 1, seg, 0, time.Now)
	if err := tw.writeWAL(walBytes(seg, 0)); err != nil {
		t.Fatal(err)
	}
	if err := tw.finish(); err != nil {
		t.Fatal(err)
	}
	if want := 512 + seg + 512 + 1024; buf.Len() != want {
		t.Errorf("size %d, want %d (segment, .done, trailer)", buf.Len(), want)
	}
}

func TestWALTarWriteErrorIsSticky(t *testing.T) {
	boom := errors.New("boom")
	tw := newWALTar(&shortWriter{room: 700}, 1, 1<<20, 0, time.Now)
	err := tw.writeWAL(make([]byte, 4096))
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("err = %v, want a short write", err)
	}
	if err2 := tw.finish(); !errors.Is(err2, io.ErrShortWrite) {
		t.Errorf("finish after error = %v", err2)
	}
	tw = newWALTar(errWriter{boom}, 1, 1<<20, 0, time.Now)
	if err := tw.writeWAL([]byte("x")); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

// shortWriter accepts room bytes, then writes short without an error.
type shortWriter struct{ room int }

func (w *shortWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.room)
	w.room -= n
	return n, nil
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

// stream helpers

func xlog(start wal.LSN, b []byte) *pgproto3.CopyData {
	return &pgproto3.CopyData{Data: WALMessage{Kind: KindXLogData, WALStart: start, WALEnd: start + wal.LSN(len(b)), Data: b}.AppendEncode(nil)}
}

func keepalive(reply bool) *pgproto3.CopyData {
	return &pgproto3.CopyData{Data: WALMessage{Kind: KindKeepalive, WALEnd: 1, ReplyRequested: reply}.AppendEncode(nil)}
}

func newStreamSession(w io.Writer, start wal.LSN) *streamSession {
	return &streamSession{op: "stream WAL from test", tar: newWALTar(w, 1, 1<<20, start, time.Now)}
}

func feed(t *testing.T, s *streamSession, ms ...pgproto3.BackendMessage) (reply, done bool, err error) {
	t.Helper()
	for _, m := range ms {
		r, d, e := s.handle(m)
		reply = reply || r
		if e != nil || d {
			return reply, d, e
		}
	}
	return reply, false, nil
}

func TestStreamSession(t *testing.T) {
	var buf bytes.Buffer
	s := newStreamSession(&buf, 0x5000000)
	reply, done, err := feed(t, s,
		&pgproto3.CopyBothResponse{},
		xlog(0x5000000, walBytes(1000, 1)),
		notice("WARNING", "w"),
		keepalive(false),
		xlog(0x50003e8, walBytes(24, 2)),
		xlog(0x5000400, nil),
	)
	if err != nil || done || reply {
		t.Fatalf("reply %v done %v err %v", reply, done, err)
	}
	if s.tar.pos != 0x5000400 {
		t.Errorf("pos %s", s.tar.pos)
	}
	if reply, _, _ := feed(t, s, keepalive(true)); !reply {
		t.Error("keepalive asking for a reply did not ask the caller to reply")
	}
	// We stop: CopyData in flight, the server's CopyDone, its two
	// CommandCompletes, ReadyForQuery.
	s.phase = streamEnding
	_, done, err = feed(t, s, xlog(0x5000400, []byte("late")), &pgproto3.CopyDone{},
		cc("START_STREAMING"), cc("START_REPLICATION"), &pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err != nil || !done {
		t.Fatalf("done %v err %v", done, err)
	}
	if err := s.finalError(nil); err != nil {
		t.Error(err)
	}
}

func TestStreamSessionErrors(t *testing.T) {
	tests := []struct {
		name string
		ms   []pgproto3.BackendMessage
		kind error
	}{
		{"gap", msgs(&pgproto3.CopyBothResponse{}, xlog(0x5000000, []byte("ab")), xlog(0x5000003, []byte("c"))), ErrProtocol},
		{"overlap", msgs(&pgproto3.CopyBothResponse{}, xlog(0x5000000, []byte("ab")), xlog(0x5000001, []byte("c"))), ErrProtocol},
		{"does not start at the segment", msgs(&pgproto3.CopyBothResponse{}, xlog(0x5000028, []byte("ab"))), ErrProtocol},
		{"bad keepalive", msgs(&pgproto3.CopyBothResponse{}, &pgproto3.CopyData{Data: []byte("k1")}), ErrProtocol},
		{"CopyData before CopyBothResponse", msgs(xlog(0x5000000, []byte("ab"))), ErrProtocol},
		{"ReadyForQuery while streaming", msgs(&pgproto3.CopyBothResponse{}, &pgproto3.ReadyForQuery{}), ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStreamSession(io.Discard, 0x5000000)
			_, _, err := feed(t, s, tt.ms...)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
		})
	}
}

func TestStreamSessionServerError(t *testing.T) {
	s := newStreamSession(io.Discard, 0x5000000)
	_, done, err := feed(t, s,
		errorResponse("58P01", "requested WAL segment 000000010000000000000005 has already been removed"),
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err != nil || !done {
		t.Fatalf("done %v err %v", done, err)
	}
	err = s.finalError(nil)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "58P01" {
		t.Errorf("err = %v", err)
	}
}

func TestStreamSessionTimelineEnd(t *testing.T) {
	s := newStreamSession(io.Discard, 0x5000000)
	_, done, err := feed(t, s, &pgproto3.CopyBothResponse{}, xlog(0x5000000, []byte("ab")), &pgproto3.CopyDone{})
	if err != nil || done || s.phase != streamTimelineEnd {
		t.Fatalf("done %v err %v phase %d", done, err, s.phase)
	}
	_, done, err = feed(t, s, rowDesc("next_tli", "next_tli_startpos"), dataRow("2", "0/5000002"), cc("SELECT"),
		cc("START_STREAMING"), &pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err != nil || !done {
		t.Fatalf("done %v err %v", done, err)
	}
	err = s.finalError(nil)
	if !errors.Is(err, ErrTimelineSwitch) {
		t.Fatalf("err = %v, want ErrTimelineSwitch", err)
	}
	if want := "timeline 2 at 0/5000002"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("err %q does not say %q", err, want)
	}
}
