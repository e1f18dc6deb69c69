package amdumpd_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

// wireEvent is one line of a capture: a frame or a TCP FIN, in one
// direction.
type wireEvent struct {
	line   int
	toSrv  bool // C->S
	fin    bool
	handle uint32
	data   []byte // payload
}

var (
	captureHeader = regexp.MustCompile(`^\[t=\s*[0-9.]+ (?:tcp#\d+ )?(C->S|S->C)\] (.*)$`)
	captureHex    = regexp.MustCompile(`^\s+[0-9a-f]{4}\s+((?:[0-9a-f]{2} ?)+)`)
	holdfastLine  = regexp.MustCompile(`^holdfast (C->S|S->C) handle=(\d+) (".*")$`)
)

// parseCapture reads the frames of an amframes.py dump (spec §9.5), plus
// "holdfast" lines.
func parseCapture(t *testing.T, file string) []wireEvent {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var evs []wireEvent
	var cur *wireEvent
	var raw []byte
	flush := func() {
		if cur == nil || cur.fin {
			return
		}
		if len(raw) < 8 || int(binary.BigEndian.Uint32(raw)) != len(raw)-8 {
			t.Fatalf("%s:%d: frame of %d bytes does not match its header", file, cur.line, len(raw))
		}
		cur.handle = binary.BigEndian.Uint32(raw[4:])
		cur.data = raw[8:]
	}
	for i, line := range strings.Split(string(data), "\n") {
		if m := captureHeader.FindStringSubmatch(line); m != nil {
			flush()
			evs = append(evs, wireEvent{line: i + 1, toSrv: m[1] == "C->S", fin: m[2] == "TCP FIN"})
			cur, raw = &evs[len(evs)-1], nil
			continue
		}
		if m := captureHex.FindStringSubmatch(line); m != nil && cur != nil {
			b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(m[1]), " ", ""))
			if err != nil {
				t.Fatalf("%s:%d: %v", file, i+1, err)
			}
			raw = append(raw, b...)
			continue
		}
		if m := holdfastLine.FindStringSubmatch(line); m != nil {
			flush()
			h, _ := strconv.ParseUint(m[2], 10, 32)
			p, err := strconv.Unquote(m[3])
			if err != nil {
				t.Fatalf("%s:%d: %v", file, i+1, err)
			}
			evs = append(evs, wireEvent{line: i + 1, toSrv: m[1] == "C->S", handle: uint32(h), data: []byte(p)})
			cur = nil
		}
	}
	flush()
	return evs
}

// TestSpecFrames replays the captures of spec §10 against Holdfast's
// server, with a backend that answers like the lab's Amanda.
func TestSpecFrames(t *testing.T) {
	files, _ := filepath.Glob("testdata/frames/*.txt")
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			evs := parseCapture(t, file)
			backend, cfg := newLab()
			cfg.busyAfterDump = true
			addr := startAmdumpd(t, &amanda.Server{LingerTimeout: time.Second}, backend)
			replay(t, file, addr, evs)
		})
	}
}

func startAmdumpd(t *testing.T, s *amanda.Server, backend amdumpd.Backend) string {
	t.Helper()
	return startService(t, s, &amdumpd.Service{Backend: backend})
}

func startService(t *testing.T, s *amanda.Server, svc *amdumpd.Service) string {
	t.Helper()
	s.Hosts = []amanda.Host{{Name: "localhost", Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Users: []string{"backup"}}}
	s.Services = map[string]amanda.Handler{"amdumpd": svc}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		s.Serve(ln)
		close(done)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String()
}

func replay(t *testing.T, file, addr string, evs []wireEvent) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	var ctl []byte // CTL bytes received and not yet matched
	next := func(ev wireEvent) amanda.Frame {
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := amanda.ReadFrame(r, 0)
		if err != nil {
			t.Fatalf("%s:%d: waiting for a frame: %v", file, ev.line, err)
		}
		return f
	}
	for _, ev := range evs {
		switch {
		case ev.toSrv && ev.fin:
			nc.(*net.TCPConn).CloseWrite()
		case ev.toSrv:
			if _, err := nc.Write(amanda.AppendFrame(nil, ev.handle, ev.data)); err != nil {
				t.Fatalf("%s:%d: %v", file, ev.line, err)
			}
		case ev.fin:
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if f, err := amanda.ReadFrame(r, 0); !errors.Is(err, io.EOF) {
				t.Fatalf("%s:%d: want the server's FIN, got %+v, %v", file, ev.line, f, err)
			}
		case ev.handle == amanda.CTLStreamID && len(ev.data) > 0:
			for len(ctl) < len(ev.data) {
				f := next(ev)
				if f.Handle != amanda.CTLStreamID || f.IsClose() {
					t.Fatalf("%s:%d: want CTL data %q, got %q on %d", file, ev.line, ev.data, f.Payload, f.Handle)
				}
				ctl = append(ctl, f.Payload...)
			}
			if !bytes.HasPrefix(ctl, ev.data) {
				t.Fatalf("%s:%d: CTL got %q, want %q", file, ev.line, ctl, ev.data)
			}
			ctl = ctl[len(ev.data):]
		default:
			if len(ctl) > 0 {
				t.Fatalf("%s:%d: unexpected CTL data %q", file, ev.line, ctl)
			}
			f := next(ev)
			if f.Handle != ev.handle || !bytes.Equal(f.Payload, ev.data) {
				t.Fatalf("%s:%d: got %q on %d, want %q on %d", file, ev.line, f.Payload, f.Handle, ev.data, ev.handle)
			}
		}
	}
	if len(ctl) > 0 {
		t.Fatalf("%s: unexpected CTL data at the end: %q", file, ctl)
	}
}
