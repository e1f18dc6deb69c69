package amdumpd_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/amanda"
	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

// TestTranscripts replays testdata/ctl/*.txt against a session on a pipe.
// A transcript is a list of directives, one a line:
//
//	# comment
//	peer NAME            the peer's declared host ("-" for none); default localhost
//	features HEX         the client's features from the REQ
//	busy                 a dump of the configuration runs (CHECK and DUMP get BUSY)
//	busy-after-dump      Amanda 3.5.1's CHECK: BUSY once any dump ran
//	fail-disk QDISK TEXT the engine fails that disk
//	dump-error TEXT      the engine's Dump returns this error
//	silent-dump          the engine reports nothing
//	check-error TEXT     the engine's Check returns this error
//	check-line TEXT      the engine's Check reports this line (replaces the spec's amcheck lines)
//	disk "GO STRING"     one more disk of localhost
//	backend-error TEXT   loading any configuration fails with this error
//	> LINE               the client sends LINE and LF
//	>q "GO STRING"       the client sends exactly these bytes
//	< LINE               the server's next line is LINE
//	<q "GO STRING"       the server's next line (LF excluded) is exactly this
//	silence              no byte comes for 100 ms
//	closed               the server has ended the session
//	result TEXT          the session's error contains TEXT ("nil": none)
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/ctl/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runTranscript(t, file) })
	}
}

func runTranscript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	backend, cfg := newLab()
	peer := amdumpd.Peer{Host: "localhost"}
	client, server := tcpPair(t)
	var (
		r          = bufio.NewReader(client)
		result     = make(chan error, 1)
		started    bool
		sessionErr error
		ended      bool
	)
	defer client.Close()
	start := func() {
		if started {
			return
		}
		started = true
		go func() {
			svc := &amdumpd.Service{Backend: backend, MaxLineLength: 64}
			err := svc.ServeCTL(context.Background(), server, peer)
			server.Close()
			result <- err
		}()
	}
	wait := func() {
		if !ended {
			select {
			case sessionErr = <-result:
				ended = true
			case <-time.After(5 * time.Second):
				t.Fatal("session did not end")
			}
		}
	}
	unq := func(n int, s string) string {
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, n, err)
		}
		return u
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		n := i + 1
		word, arg, _ := strings.Cut(line, " ")
		switch word {
		case "", "#":
		case "peer":
			if arg == "-" {
				arg = ""
			}
			peer.Host = arg
		case "features":
			peer.Features, _ = amanda.ParseFeatures(arg)
		case "busy":
			cfg.running = true
		case "busy-after-dump":
			cfg.busyAfterDump = true
		case "fail-disk":
			q, text := cutQuoted(arg)
			if cfg.failDisk == nil {
				cfg.failDisk = map[string]error{}
			}
			cfg.failDisk[amanda.Unquote(q)] = errors.New(text)
		case "dump-error":
			cfg.dumpErr = errors.New(arg)
		case "silent-dump":
			cfg.silent = true
		case "check-error":
			cfg.checkErr = errors.New(arg)
		case "check-line":
			if cfg.checkLines != nil && &cfg.checkLines[0] == &specAmcheck[0] {
				cfg.checkLines = nil
			}
			cfg.checkLines = append(cfg.checkLines, unq(n, arg))
		case "disk":
			cfg.hosts["localhost"] = append(cfg.hosts["localhost"], unq(n, arg))
		case "backend-error":
			backend.err = errors.New(arg)
		case ">", ">q":
			start()
			b := arg + "\n"
			if word == ">q" {
				b = unq(n, arg)
			}
			client.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := client.Write([]byte(b)); err != nil {
				t.Fatalf("%s:%d: send %q: %v", file, n, b, err)
			}
		case "<", "<q":
			start()
			want := arg
			if word == "<q" {
				want = unq(n, arg)
			}
			client.SetReadDeadline(time.Now().Add(2 * time.Second))
			got, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s:%d: want %q, got %q and %v", file, n, want, got, err)
			}
			if got != want+"\n" {
				t.Fatalf("%s:%d: got %q, want %q", file, n, got, want+"\n")
			}
		case "silence":
			start()
			client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if b, err := r.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s:%d: want silence, got %q, %v", file, n, b, err)
			}
		case "closed":
			start()
			client.SetReadDeadline(time.Now().Add(2 * time.Second))
			if b, err := r.ReadString('\n'); err != io.EOF {
				t.Fatalf("%s:%d: want the end, got %q, %v", file, n, b, err)
			}
			wait()
		case "result":
			start()
			if !ended {
				client.Close()
				wait()
			}
			if arg == "nil" {
				if sessionErr != nil {
					t.Fatalf("%s:%d: session error %v", file, n, sessionErr)
				}
			} else if sessionErr == nil || !strings.Contains(sessionErr.Error(), arg) {
				t.Fatalf("%s:%d: session error %v, want %q", file, n, sessionErr, arg)
			}
		default:
			t.Fatalf("%s:%d: unknown directive %q", file, n, line)
		}
	}
	if started && !ended {
		client.Close()
		wait()
	}
}

// tcpPair returns both ends of a loopback TCP connection: unlike
// net.Pipe, writes are buffered, as on the real network.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// cutQuoted splits off a first word that may be in Amanda's quotes.
func cutQuoted(s string) (word, rest string) {
	if strings.HasPrefix(s, `"`) {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				return s[:i+1], strings.TrimPrefix(s[i+1:], " ")
			}
		}
	}
	word, rest, _ = strings.Cut(s, " ")
	return word, rest
}
