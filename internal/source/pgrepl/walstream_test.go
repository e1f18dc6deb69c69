package pgrepl_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
	"github.com/holdfast-backup/holdfast/internal/wal"
)

const (
	fakeSeg   = 1 << 20
	fakeSysID = "7710952269893484041"
)

// walServer is a fake walsender streaming fake WAL: total bytes from
// start, in pieces, pausing after the first pause bytes until told to go
// on, then idle. It records the status updates and slot commands it gets.
type walServer struct {
	start  wal.LSN
	total  int
	piece  int
	pause  int           // stop sending after this many bytes...
	resume chan struct{} // ...until this is closed (nil: never pause)

	mu       sync.Mutex
	statuses []pgrepl.StandbyStatus
	queries  []string
	ended    bool // the client sent CopyDone
	sendMu   sync.Mutex
}

func walByte(pos wal.LSN) byte { return byte(pos*31 + pos>>8) }

func (w *walServer) handle(s *session, q string) error {
	w.mu.Lock()
	w.queries = append(w.queries, q)
	w.mu.Unlock()
	switch {
	case q == "SHOW wal_segment_size":
		return s.send(showResult("wal_segment_size", "1MB")...)
	case q == "IDENTIFY_SYSTEM":
		return s.send(identifySystem(fakeSysID)...)
	case strings.HasPrefix(q, "CREATE_REPLICATION_SLOT "):
		return s.send(rowDescT("slot_name", "consistent_point", "snapshot_name", "output_plugin"),
			&pgproto3.DataRow{Values: [][]byte{[]byte("x"), []byte("0/0"), nil, nil}},
			&pgproto3.CommandComplete{CommandTag: []byte("CREATE_REPLICATION_SLOT")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	case strings.HasPrefix(q, "START_REPLICATION SLOT "):
		want := fmt.Sprintf("PHYSICAL %s TIMELINE 1", w.start)
		if !strings.HasSuffix(q, want) {
			return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "XX000", Message: "want " + want + ", got " + q}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		}
		return w.stream(s)
	}
	return s.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

func (w *walServer) lastStatus() pgrepl.StandbyStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.statuses) == 0 {
		return pgrepl.StandbyStatus{}
	}
	return w.statuses[len(w.statuses)-1]
}

func (w *walServer) send(s *session, msgs ...pgproto3.BackendMessage) error {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	return s.send(msgs...)
}

func (w *walServer) stream(s *session) error {
	if err := w.send(s, &pgproto3.CopyBothResponse{}); err != nil {
		return err
	}
	// clientDone closes when the client sent CopyDone or went away.
	clientDone := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(clientDone)
		for {
			m, err := s.receive()
			if err != nil {
				readErr <- err
				return
			}
			switch m := m.(type) {
			case *pgproto3.CopyData:
				st, err := pgrepl.DecodeStandbyStatus(m.Data)
				if err != nil {
					readErr <- err
					return
				}
				w.mu.Lock()
				w.statuses = append(w.statuses, st)
				w.mu.Unlock()
			case *pgproto3.CopyDone:
				w.mu.Lock()
				w.ended = true
				w.mu.Unlock()
				readErr <- nil
				return
			default:
				readErr <- fmt.Errorf("unexpected %T while streaming", m)
				return
			}
		}
	}()

	pos := w.start
	sent := 0
	for sent < w.total {
		if w.resume != nil && sent >= w.pause {
			select {
			case <-w.resume:
				w.resume = nil
			case <-clientDone:
			}
		}
		select {
		case <-clientDone:
			sent = w.total
			continue
		default:
		}
		n := min(w.piece, w.total-sent)
		b := make([]byte, n)
		for i := range b {
			b[i] = walByte(pos + wal.LSN(i))
		}
		msg := pgrepl.WALMessage{Kind: pgrepl.KindXLogData, WALStart: pos, WALEnd: pos + wal.LSN(n), Data: b}
		if err := w.send(s, &pgproto3.CopyData{Data: msg.AppendEncode(nil)}); err != nil {
			return err
		}
		pos += wal.LSN(n)
		sent += n
		if sent == w.piece {
			// Ask for a reply once.
			k := pgrepl.WALMessage{Kind: pgrepl.KindKeepalive, WALEnd: pos, ReplyRequested: true}
			if err := w.send(s, &pgproto3.CopyData{Data: k.AppendEncode(nil)}); err != nil {
				return err
			}
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	return w.send(s, &pgproto3.CopyDone{},
		&pgproto3.CommandComplete{CommandTag: []byte("START_STREAMING")},
		&pgproto3.CommandComplete{CommandTag: []byte("START_REPLICATION")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
}

func checkWAL(t *testing.T, seg []byte, segStart wal.LSN, upto int) {
	t.Helper()
	if len(seg) != fakeSeg {
		t.Fatalf("segment of %d bytes", len(seg))
	}
	for i := 0; i < len(seg); i++ {
		want := byte(0)
		if i < upto {
			want = walByte(segStart + wal.LSN(i))
		}
		if seg[i] != want {
			t.Fatalf("byte %d of segment at %s = %#x, want %#x", i, segStart, seg[i], want)
		}
	}
}

// TestStreamWALStopsAfterEnd: the stop position arrives while the server
// is idle (everything up to it already sent): the client must wake up,
// pad the segment and stop cleanly.
func TestStreamWALStopsAfterEnd(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: fakeSeg + fakeSeg/2, piece: 128 << 10}
	f.handle = ws.handle
	ctx := context.Background()
	stop := make(chan wal.LSN, 1)
	var buf bytes.Buffer
	done := make(chan error, 1)
	var res pgrepl.StreamResult
	go func() {
		var err error
		res, err = pgrepl.StreamWAL(ctx, f.conninfo(), pgrepl.StreamOptions{
			Start: 0x500028, Timeline: 1, SystemID: 7710952269893484041, StatusInterval: 50 * time.Millisecond,
		}, &buf, stop)
		done <- err
	}()
	// Wait until the client has reported everything written, so that it
	// is idle in a receive when the stop position arrives.
	end := ws.start + wal.LSN(ws.total)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the client never reported all WAL written")
		}
		if st := ws.lastStatus(); st.Write == end {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	stop <- 0x500000 + fakeSeg + 1000
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("StreamWAL did not stop")
	}
	members := tarMembersBytes(t, buf.Bytes())
	if len(members) != 3 {
		t.Errorf("members: %d", len(members))
	}
	checkWAL(t, members["000000010000000000000005"], 0x500000, fakeSeg)
	if _, ok := members["archive_status/000000010000000000000005.done"]; !ok {
		t.Error("no .done for the complete segment")
	}
	checkWAL(t, members["000000010000000000000006"], 0x600000, fakeSeg/2)
	if _, ok := members["archive_status/000000010000000000000006.done"]; ok {
		t.Error(".done for the padded segment")
	}
	want := pgrepl.StreamResult{Start: 0x500000, End: 0x500000 + fakeSeg + fakeSeg/2,
		Segments: []string{"000000010000000000000005", "000000010000000000000006"}, Bytes: int64(buf.Len())}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Errorf("result %+v, want %+v", res, want)
	}

	ws.mu.Lock()
	defer ws.mu.Unlock()
	if !ws.ended {
		t.Error("the client did not send CopyDone")
	}
	if len(ws.statuses) < 4 {
		t.Errorf("%d status updates; want one requested and at least 3 more at a 50 ms interval", len(ws.statuses))
	}
	for _, st := range ws.statuses {
		if st.Write < 0x500000 || st.Flush != st.Write || st.Apply != 0 {
			t.Errorf("status %+v", st)
		}
	}
	if !strings.HasPrefix(ws.queries[len(ws.queries)-1], `START_REPLICATION SLOT "holdfast_4242_`) {
		t.Errorf("queries %q", ws.queries)
	}
}

// TestStreamWALStopWakesIdleReceive: with no status update due for an
// hour, a stop position that arrives while the client waits for the
// server still ends the stream at once.
func TestStreamWALStopWakesIdleReceive(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: fakeSeg / 2, piece: 64 << 10}
	f.handle = ws.handle
	stop := make(chan wal.LSN, 1)
	var buf bytes.Buffer
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel() // a client that never woke must not hold the fake server
		<-done
	}()
	go func() {
		_, err := pgrepl.StreamWAL(ctx, f.conninfo(), pgrepl.StreamOptions{
			Start: 0x500028, Timeline: 1, SystemID: 7710952269893484041, StatusInterval: time.Hour,
		}, &buf, stop)
		done <- err
	}()
	time.Sleep(500 * time.Millisecond) // everything sent: the client waits in a read
	stop <- 0x500000 + fakeSeg/4
	select {
	case err := <-done:
		done <- err // for the deferred wait
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stop position did not wake the waiting read")
	}
}

// TestStreamWALStopsWhileStreaming: the end is known early; streaming ends
// as soon as the end is passed, while the server would send more.
func TestStreamWALStopsWhileStreaming(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: 4 * fakeSeg, piece: 100_000, pause: 300_000, resume: make(chan struct{})}
	f.handle = ws.handle
	ctx := context.Background()
	c, err := pgrepl.Connect(ctx, f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	slot, err := c.CreateTemporarySlot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan wal.LSN, 1)
	stop <- 0x500000 + 250_000
	close(ws.resume)
	var buf bytes.Buffer
	res, err := c.StreamWAL(ctx, pgrepl.StreamOptions{Start: 0x5FFFFF, Timeline: 1, Slot: slot, SegmentSize: fakeSeg}, &buf, stop)
	if err != nil {
		t.Fatal(err)
	}
	if res.End < 0x500000+250_000 || len(res.Segments) != 1 {
		t.Errorf("result %+v", res)
	}
	members := tarMembersBytes(t, buf.Bytes())
	checkWAL(t, members["000000010000000000000005"], 0x500000, int(res.End-0x500000))
	// The session is usable again afterwards.
	if _, err := c.IdentifySystem(ctx); err != nil {
		t.Errorf("after streaming: %v", err)
	}
}

func TestStreamWALCancel(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: fakeSeg, piece: 1000, pause: 1000, resume: make(chan struct{})}
	f.handle = ws.handle
	c, err := pgrepl.Connect(context.Background(), f.conninfo())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.StreamWAL(ctx, pgrepl.StreamOptions{Start: 0x500000, Timeline: 1, SegmentSize: fakeSeg}, io.Discard, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	checkError(t, err, nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if !c.IsClosed() {
		t.Error("connection open after cancel")
	}
}

func TestStreamWALStopClosed(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: fakeSeg, piece: 1000, pause: 1000, resume: make(chan struct{})}
	f.handle = ws.handle
	stop := make(chan wal.LSN)
	close(stop)
	_, err := pgrepl.StreamWAL(context.Background(), f.conninfo(), pgrepl.StreamOptions{Start: 0x500000, Timeline: 1}, io.Discard, stop)
	checkError(t, err, nil)
	if !strings.Contains(err.Error(), "end position") {
		t.Errorf("err = %v", err)
	}
}

func TestStreamWALSystemMismatch(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000}
	f.handle = ws.handle
	_, err := pgrepl.StreamWAL(context.Background(), f.conninfo(), pgrepl.StreamOptions{Start: 0x500000, Timeline: 1, SystemID: 42}, io.Discard, nil)
	checkError(t, err, pgrepl.ErrSystemMismatch)
}

func TestStreamWALWriterError(t *testing.T) {
	f := newFakeServer(t)
	ws := &walServer{start: 0x500000, total: fakeSeg, piece: 10000}
	f.handle = ws.handle
	full := errors.New("no space")
	_, err := pgrepl.StreamWAL(context.Background(), f.conninfo(), pgrepl.StreamOptions{Start: 0x500000, Timeline: 1}, failingWriter{full}, nil)
	if !errors.Is(err, full) {
		t.Errorf("err = %v, want the writer's", err)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
