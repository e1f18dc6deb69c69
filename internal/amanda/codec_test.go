package amanda_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Frames recorded in spec §3.1 and §10.1.
var specFrames = []struct {
	name    string
	hex     string
	handle  uint32
	payload string
}{
	{"ACK on handle 1", "00 00 00 02 00 00 00 01 03 00", 1, "\x03\x00"},
	{"LIST on stream 499999", "00 00 00 05 00 07 a1 1f 4c 49 53 54 0a", 499999, "LIST\n"},
	{"close of packet handle", "00 00 00 00 00 00 00 01", 1, ""},
	{"REP CONNECT CTL", "00 00 00 16 00 00 00 01 01 43 4f 4e 4e 45 43 54 20 43 54 4c 20 34 39 39 39 39 39 0a 0a 00", 1, "\x01CONNECT CTL 499999\n\n\x00"},
}

func TestFrameSpecBytes(t *testing.T) {
	for _, tc := range specFrames {
		t.Run(tc.name, func(t *testing.T) {
			wire := unhex(t, tc.hex)
			if got := amanda.AppendFrame(nil, tc.handle, []byte(tc.payload)); !bytes.Equal(got, wire) {
				t.Errorf("AppendFrame = % x, want % x", got, wire)
			}
			readers := map[string]io.Reader{
				"whole":    bytes.NewReader(wire),
				"one byte": iotest.OneByteReader(bytes.NewReader(wire)),
				"half":     iotest.HalfReader(bytes.NewReader(wire)),
			}
			for name, r := range readers {
				f, err := amanda.ReadFrame(r, 0)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if f.Handle != tc.handle || string(f.Payload) != tc.payload {
					t.Errorf("%s: got handle %d payload %q", name, f.Handle, f.Payload)
				}
				if f.IsClose() != (tc.payload == "") {
					t.Errorf("%s: IsClose = %v", name, f.IsClose())
				}
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	good := amanda.AppendFrame(nil, 7, []byte("hello"))
	tests := []struct {
		name  string
		r     io.Reader
		limit int
		want  error
	}{
		{"empty input", bytes.NewReader(nil), 0, io.EOF},
		{"cut header", bytes.NewReader(good[:5]), 0, io.ErrUnexpectedEOF},
		{"cut payload", iotest.OneByteReader(bytes.NewReader(good[:10])), 0, io.ErrUnexpectedEOF},
		{"over limit", bytes.NewReader(good), 4, amanda.ErrFrameTooLarge},
		{"over amanda's limit", bytes.NewReader(unhex(t, "00 40 00 01 00 00 00 01")), 0, amanda.ErrFrameTooLarge},
		{"negative as signed", bytes.NewReader(unhex(t, "ff ff ff ff 00 00 00 01")), 0, amanda.ErrFrameTooLarge},
		{"error mid-stream", iotest.DataErrReader(iotest.TimeoutReader(iotest.OneByteReader(bytes.NewReader(good)))), 0, iotest.ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := amanda.ReadFrame(tc.r, tc.limit)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFrameSizeErrorShowsText(t *testing.T) {
	_, err := amanda.ReadFrame(strings.NewReader("GET / HTTP/1.1\r\n"), 0)
	var fe *amanda.FrameSizeError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), `"GET / HT"`) {
		t.Errorf("error %q does not show the header as text", err)
	}
}

func FuzzFrame(f *testing.F) {
	for _, tc := range specFrames {
		f.Add(unhex(f, tc.hex))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Add(unhex(f, "00 00 00 03 00 00 00 09 61 62"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 1 << 16
		r := bytes.NewReader(data)
		var again []byte
		for {
			fr, err := amanda.ReadFrame(r, limit)
			if err != nil {
				break
			}
			if len(fr.Payload) > limit {
				t.Fatalf("payload of %d bytes over the limit", len(fr.Payload))
			}
			again = amanda.AppendFrame(again, fr.Handle, fr.Payload)
		}
		if !bytes.HasPrefix(data, again) {
			t.Fatalf("re-encoded frames are not a prefix of the input")
		}
		// Reading one byte at a time gives the same frames.
		r1 := iotest.OneByteReader(bytes.NewReader(again))
		var third []byte
		for {
			fr, err := amanda.ReadFrame(r1, limit)
			if err != nil {
				break
			}
			third = amanda.AppendFrame(third, fr.Handle, fr.Payload)
		}
		if !bytes.Equal(third, again) {
			t.Fatalf("one-byte reads differ")
		}
	})
}

// The REQ amservice sent in spec §10.1, payload only.
const specREQ = "\x00SECURITY USER backup\nSERVICE amdumpd\nOPTIONS features=ffffffff9efefbfffffffffffffff3fffbf71f;hostname=localhost;\n\x00"

func TestPacketSpec(t *testing.T) {
	p, err := amanda.ParsePacket([]byte(specREQ))
	if err != nil {
		t.Fatal(err)
	}
	if p.Type != amanda.REQ {
		t.Fatalf("type %v", p.Type)
	}
	req, err := amanda.ParseRequest(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := amanda.Request{User: "backup", Service: "amdumpd", Args: "OPTIONS features=ffffffff9efefbfffffffffffffff3fffbf71f;hostname=localhost;\n"}
	if diff := cmp.Diff(want, req); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
	wantOpts := amanda.Options{{Key: "features", Value: amanda.Amanda351Features}, {Key: "hostname", Value: "localhost"}}
	if diff := cmp.Diff(wantOpts, req.Options()); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	built := amanda.NewRequest("backup", "amdumpd", wantOpts)
	body, err := built.Encode()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := amanda.AppendPacket(nil, amanda.Packet{Type: amanda.REQ, Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != specREQ {
		t.Errorf("encoded REQ = %q, want %q", payload, specREQ)
	}
	if len(amanda.AppendFrame(nil, 1, payload)) != 8+115 {
		t.Errorf("REQ frame is not the 115-byte frame of the spec")
	}
}

func TestParseRequest(t *testing.T) {
	tests := []struct {
		body string
		want amanda.Request
		err  error
	}{
		{"SERVICE amdumpd\nOPTIONS x;\n", amanda.Request{Service: "amdumpd", Args: "OPTIONS x;\n"}, nil},
		{"SECURITY USER root\nSERVICE noop\n", amanda.Request{User: "root", Service: "noop"}, nil},
		{"SECURITY FOO bar\nSERVICE noop\nx", amanda.Request{Service: "noop", Args: "x"}, nil},
		{"SERVICE amdumpd extra\nOPTIONS ;\n", amanda.Request{Service: "amdumpd", Args: "OPTIONS ;\n"}, nil},
		{"SECURITY USER backup\nOPTIONS x;\n", amanda.Request{}, amanda.ErrNoService},
		{"", amanda.Request{}, amanda.ErrNoService},
	}
	for _, tc := range tests {
		got, err := amanda.ParseRequest(tc.body)
		if !errors.Is(err, tc.err) {
			t.Errorf("ParseRequest(%q) err = %v, want %v", tc.body, err, tc.err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseRequest(%q) (-want +got):\n%s", tc.body, diff)
		}
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		body string
		want amanda.Reply
	}{
		{"CONNECT CTL 499999\n\n", amanda.Reply{Streams: []amanda.StreamRef{{Name: "CTL", ID: 499999}}}},
		{"ERROR recover program requested auth 'local', but amandad is using auth 'bsdtcp'\n\n",
			amanda.Reply{Errors: []string{"recover program requested auth 'local', but amandad is using auth 'bsdtcp'"}}},
		{"OPTIONS features=ffffffff9efefbfffffffffffffff3fffbf71f;\n", amanda.Reply{Lines: []string{"OPTIONS features=ffffffff9efefbfffffffffffffff3fffbf71f;"}}},
		{"CONNECT DATA 5 MESG 6 INDEX -1\n\n", amanda.Reply{Streams: []amanda.StreamRef{{Name: "DATA", ID: 5}, {Name: "MESG", ID: 6}, {Name: "INDEX", ID: -1}}}},
		{"CONNECT CTL\n\n", amanda.Reply{Lines: []string{"CONNECT CTL"}}},
	}
	for _, tc := range tests {
		got := amanda.ParseReply(tc.body)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseReply(%q) (-want +got):\n%s", tc.body, diff)
		}
	}
	if got := (amanda.Reply{Streams: []amanda.StreamRef{{Name: "CTL", ID: 499999}}}).Encode(); got != "CONNECT CTL 499999\n\n" {
		t.Errorf("Encode = %q", got)
	}
	if got := amanda.NAKBody("host localhost: port 56566 not secure"); got != "ERROR host localhost: port 56566 not secure\n" {
		t.Errorf("NAKBody = %q", got)
	}
}

func TestPacketErrors(t *testing.T) {
	for _, payload := range [][]byte{nil, {5, 0}, {0xff}} {
		if _, err := amanda.ParsePacket(payload); !errors.Is(err, amanda.ErrBadPacket) {
			t.Errorf("ParsePacket(% x) err = %v", payload, err)
		}
	}
	// amandad's raw NAK for a name that does not resolve has no NUL.
	p, err := amanda.ParsePacket([]byte("\x04oo doesn't resolve to 10.0.0.9"))
	if err != nil || p.Type != amanda.NAK || p.Body != "oo doesn't resolve to 10.0.0.9" {
		t.Errorf("raw NAK: %+v, %v", p, err)
	}
	if _, err := amanda.AppendPacket(nil, amanda.Packet{Type: amanda.REP, Body: "a\x00b"}); !errors.Is(err, amanda.ErrNULInBody) {
		t.Errorf("NUL in body: %v", err)
	}
}

func FuzzPacket(f *testing.F) {
	f.Add([]byte(specREQ))
	f.Add([]byte("\x01CONNECT CTL 499999\n\n\x00"))
	f.Add([]byte("\x04ERROR host localhost: port 56566 not secure\n\x00"))
	f.Add([]byte("\x03\x00"))
	f.Add([]byte("\x00SERVICE noop\n\x00junk"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		p, err := amanda.ParsePacket(payload)
		if err != nil {
			return
		}
		enc, err := amanda.AppendPacket(nil, p)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		p2, err := amanda.ParsePacket(enc)
		if err != nil || p2 != p {
			t.Fatalf("round trip: %+v -> %+v (%v)", p, p2, err)
		}
		if req, err := amanda.ParseRequest(p.Body); err == nil {
			if body, err := req.Encode(); err == nil {
				again, err := amanda.ParseRequest(body)
				if err != nil || again != req {
					t.Fatalf("request round trip: %+v -> %+v (%v)", req, again, err)
				}
			}
			opts := req.Options()
			if again := amanda.ParseOptions(opts.String()); opts.String() != again.String() {
				t.Fatalf("options round trip: %q -> %q", opts.String(), again.String())
			}
		}
		r := amanda.ParseReply(p.Body)
		if again := amanda.ParseReply(r.Encode()); !cmp.Equal(normalizeReply(r), normalizeReply(again)) {
			t.Fatalf("reply round trip: %+v -> %+v", r, again)
		}
	})
}

// normalizeReply makes a Reply comparable after an Encode: Encode puts
// one line on one line.
func normalizeReply(r amanda.Reply) amanda.Reply {
	if len(r.Streams) == 0 {
		r.Streams = nil
	}
	if len(r.Errors) == 0 {
		r.Errors = nil
	}
	if len(r.Lines) == 0 {
		r.Lines = nil
	}
	return r
}

func BenchmarkFrame(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 32*1024)
	wire := amanda.AppendFrame(nil, amanda.CTLStreamID, payload)
	r := bytes.NewReader(wire)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = amanda.AppendFrame(buf[:0], amanda.CTLStreamID, payload)
		r.Reset(wire)
		if _, err := amanda.ReadFrame(r, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQuote(b *testing.B) {
	name := "/var/lib/postgresql/16/main with space/caf\xc3\xa9"
	b.ReportAllocs()
	for b.Loop() {
		if amanda.Unquote(amanda.Quote(name)) != name {
			b.Fatal("round trip")
		}
	}
}
