package pgrepl_test

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/holdfast-backup/holdfast/internal/source/pgrepl"
)

func TestDecodeCopyData(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    pgrepl.CopyMessage
	}{
		// Bytes as observed on the wire (spec §13.1).
		{"new tablespace archive", []byte("n16387.tar\x00/srv/pg/ts1\x00"),
			pgrepl.CopyMessage{Kind: pgrepl.KindNewArchive, Name: "16387.tar", Location: "/srv/pg/ts1"}},
		{"new base archive", []byte("nbase.tar\x00\x00"),
			pgrepl.CopyMessage{Kind: pgrepl.KindNewArchive, Name: "base.tar"}},
		{"data", []byte("dPG_15_202209061/"),
			pgrepl.CopyMessage{Kind: pgrepl.KindData, Data: []byte("PG_15_202209061/")}},
		{"empty data", []byte("d"), pgrepl.CopyMessage{Kind: pgrepl.KindData, Data: []byte{}}},
		{"progress", mustHex(t, "70"+"0000000003140000"),
			pgrepl.CopyMessage{Kind: pgrepl.KindProgress, Progress: 0x3140000}},
		{"manifest", []byte("m"), pgrepl.CopyMessage{Kind: pgrepl.KindManifest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pgrepl.DecodeCopyData(tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("DecodeCopyData (-want +got):\n%s", d)
			}
			if enc := got.AppendEncode(nil); !bytes.Equal(enc, tt.payload) {
				t.Errorf("AppendEncode = %q, want %q", enc, tt.payload)
			}
		})
	}
}

func TestDecodeCopyDataRejects(t *testing.T) {
	for _, p := range []string{
		"",
		"x",
		"nbase.tar",              // no NUL after the name
		"nbase.tar\x00",          // no location
		"nbase.tar\x00\x00extra", // trailing bytes
		"p",
		"p\x00\x00\x00\x00\x00\x00\x00",         // 7 bytes
		"p\x00\x00\x00\x00\x00\x00\x00\x00\x00", // 9 bytes
		"p\xff\xff\xff\xff\xff\xff\xff\xff",     // negative
		"m\x00",
		"w\x00", // a WAL-stream kind is not a BASE_BACKUP kind
	} {
		if m, err := pgrepl.DecodeCopyData([]byte(p)); err == nil {
			t.Errorf("DecodeCopyData(%q) = %+v, want an error", p, m)
		}
	}
}

func FuzzDecodeCopyData(f *testing.F) {
	for _, s := range []string{"n16387.tar\x00/srv/pg/ts1\x00", "nbase.tar\x00\x00", "d", "dxyz",
		"p\x00\x00\x00\x00\x03\x14\x00\x00", "m", "", "q", "n\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := pgrepl.DecodeCopyData(payload)
		if err != nil {
			return
		}
		// Every accepted payload is canonical: it re-encodes to itself.
		if enc := m.AppendEncode(nil); !bytes.Equal(enc, payload) {
			t.Fatalf("round trip: %q -> %+v -> %q", payload, m, enc)
		}
	})
}

func TestDecodeWALMessage(t *testing.T) {
	// XLogData header: 'w', start 0/5000000, end 0/50000D8, time, then WAL.
	w := mustHex(t, "77"+"0000000005000000"+"00000000050000d8"+"0002b6c01e55d4c8"+"10d10200")
	got, err := pgrepl.DecodeWALMessage(w)
	if err != nil {
		t.Fatal(err)
	}
	want := pgrepl.WALMessage{Kind: pgrepl.KindXLogData, WALStart: 0x5000000, WALEnd: 0x50000d8,
		SendTime: 0x0002b6c01e55d4c8, Data: []byte{0x10, 0xd1, 0x02, 0x00}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("XLogData (-want +got):\n%s", d)
	}

	k := mustHex(t, "6b"+"00000000050000d8"+"0002b6c01e55d4c8"+"01")
	got, err = pgrepl.DecodeWALMessage(k)
	if err != nil {
		t.Fatal(err)
	}
	want = pgrepl.WALMessage{Kind: pgrepl.KindKeepalive, WALEnd: 0x50000d8, SendTime: 0x0002b6c01e55d4c8, ReplyRequested: true}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("keepalive (-want +got):\n%s", d)
	}

	for _, p := range []string{"", "w", "w" + string(make([]byte, 23)), "k" + string(make([]byte, 16)),
		"k" + string(make([]byte, 18)), "r" + string(make([]byte, 33)), "z",
		"w\xff\xff\xff\xff\xff\xff\xff\xff" + string(make([]byte, 16)) + "x"} {
		if m, err := pgrepl.DecodeWALMessage([]byte(p)); err == nil {
			t.Errorf("DecodeWALMessage(%q) = %+v, want an error", p, m)
		}
	}
}

func TestStandbyStatus(t *testing.T) {
	s := pgrepl.StandbyStatus{Write: 0x5020000, Flush: 0x5020000, ClientTime: pgrepl.PGTime(time.Date(2000, 1, 1, 0, 0, 1, 0, time.UTC))}
	enc := s.AppendEncode(nil)
	want := mustHex(t, "72"+"0000000005020000"+"0000000005020000"+"0000000000000000"+"00000000000f4240"+"00")
	if !bytes.Equal(enc, want) {
		t.Errorf("AppendEncode = %x, want %x", enc, want)
	}
	back, err := pgrepl.DecodeStandbyStatus(enc)
	if err != nil {
		t.Fatal(err)
	}
	if back != s {
		t.Errorf("round trip = %+v, want %+v", back, s)
	}
}

func FuzzDecodeWALMessage(f *testing.F) {
	f.Add([]byte("k\x00\x00\x00\x00\x05\x00\x00\xd8\x00\x02\xb6\xc0\x1e\x55\xd4\xc8\x01"))
	f.Add(append([]byte("w"), make([]byte, 30)...))
	f.Add([]byte("w"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := pgrepl.DecodeWALMessage(payload)
		if err != nil {
			return
		}
		if m.Kind == pgrepl.KindXLogData && uint64(m.WALStart)+uint64(len(m.Data)) < uint64(m.WALStart) {
			t.Fatalf("accepted XLogData that wraps: %+v", m)
		}
		back, err := pgrepl.DecodeWALMessage(m.AppendEncode(nil))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if d := cmp.Diff(m, back, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
