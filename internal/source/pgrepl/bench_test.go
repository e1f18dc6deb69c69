package pgrepl

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

type discardSink struct{}

func (discardSink) Start(Start) error                 { return nil }
func (discardSink) BeginArchive(string, string) error { return nil }
func (discardSink) ArchiveData([]byte) error          { return nil }
func (discardSink) EndArchive() error                 { return nil }
func (discardSink) ManifestData([]byte) error         { return nil }
func (discardSink) Progress(int64)                    {}
func (discardSink) Notice(*pgconn.Notice)             {}

// BenchmarkBackupSessionData is the per-message cost of the BASE_BACKUP
// demultiplexer for 32 kB data messages, the server's chunk size.
func BenchmarkBackupSessionData(b *testing.B) {
	s := newBackupSession("bench", BaseBackupOptions{}, discardSink{})
	for _, m := range header() {
		if _, err := s.handle(m); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.handle(newArchive("base.tar", "")); err != nil {
		b.Fatal(err)
	}
	msg := data(string(make([]byte, 32768)))
	b.SetBytes(32768)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.handle(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWALStream is the cost of decoding 128 kB XLogData messages and
// writing them as pg_wal.tar.
func BenchmarkWALStream(b *testing.B) {
	s := &streamSession{op: "bench", tar: newWALTar(io.Discard, 1, 16<<20, 0, time.Now), phase: streamCopy}
	msg := xlog(0, make([]byte, 128<<10))
	b.SetBytes(128 << 10)
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint64(msg.Data[1:], uint64(s.tar.pos))
		if _, _, err := s.handle(msg); err != nil {
			b.Fatal(err)
		}
	}
}
