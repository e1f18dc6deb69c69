package amdumpd_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/holdfast-backup/holdfast/internal/amdumpd"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want amdumpd.Command
	}{
		{"CONFIG amtest\n", amdumpd.Command{Verb: amdumpd.CmdConfig, Arg: "amtest", Line: "CONFIG amtest"}},
		{"CONFIG amtest\r\n", amdumpd.Command{Verb: amdumpd.CmdConfig, Arg: "amtest", Line: "CONFIG amtest"}},
		{"CONFIG ../../tmp/x", amdumpd.Command{Verb: amdumpd.CmdConfig, Arg: "../../tmp/x", Line: "CONFIG ../../tmp/x"}},
		{"CONFIG", amdumpd.Command{Line: "CONFIG"}},
		{"CONFIG ", amdumpd.Command{Verb: amdumpd.CmdConfig, Line: "CONFIG "}},
		{"FEATURES zz", amdumpd.Command{Verb: amdumpd.CmdFeatures, Arg: "zz", Line: "FEATURES zz"}},
		{"FEATURES", amdumpd.Command{Line: "FEATURES"}},
		{"LIST", amdumpd.Command{Verb: amdumpd.CmdList, Line: "LIST"}},
		{"list", amdumpd.Command{Line: "list"}},
		{"LIST extra", amdumpd.Command{Line: "LIST extra"}},
		{`DISK "/a b"`, amdumpd.Command{Verb: amdumpd.CmdDisk, Arg: `"/a b"`, Line: `DISK "/a b"`}},
		{"DUMP", amdumpd.Command{Verb: amdumpd.CmdDump, Line: "DUMP"}},
		{"CHECK\r", amdumpd.Command{Verb: amdumpd.CmdCheck, Line: "CHECK"}},
		{"END", amdumpd.Command{Verb: amdumpd.CmdEnd, Line: "END"}},
		{"12345", amdumpd.Command{Verb: amdumpd.CmdEnd, Line: "12345"}},
		{"", amdumpd.Command{Line: ""}},
		{"CHECK\r\r", amdumpd.Command{Line: "CHECK\r"}},
		{"BOGUS cmd", amdumpd.Command{Line: "BOGUS cmd"}},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, amdumpd.ParseCommand(tc.line)); diff != "" {
			t.Errorf("ParseCommand(%q) (-want +got):\n%s", tc.line, diff)
		}
	}
}

func TestValidConfigName(t *testing.T) {
	for name, want := range map[string]bool{
		"amtest": true, "Daily-1.x_y": true, "9": true,
		"": false, "../x": false, "../../tmp/x": false, "/etc/amanda/x": false, ".hidden": false,
		"-x": false, "a/b": false, "a b": false, "a\x00": false, "caf\xc3\xa9": false,
	} {
		if got := amdumpd.ValidConfigName(name); got != want {
			t.Errorf("ValidConfigName(%q) = %v", name, got)
		}
	}
}

func TestLineReader(t *testing.T) {
	in := "CONFIG amtest\nLIST\r\n" + strings.Repeat("x", 5000) + "\n"
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	} {
		t.Run(name, func(t *testing.T) {
			lr := amdumpd.NewLineReader(wrap(strings.NewReader(in)), 6000)
			var got []string
			for {
				l, err := lr.ReadLine()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, l)
			}
			want := []string{"CONFIG amtest", "LIST\r", strings.Repeat("x", 5000)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	lr := amdumpd.NewLineReader(iotest.OneByteReader(strings.NewReader(in)), 100)
	lr.ReadLine()
	lr.ReadLine()
	if _, err := lr.ReadLine(); !errors.Is(err, amdumpd.ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	lr = amdumpd.NewLineReader(strings.NewReader("END"), 100)
	if _, err := lr.ReadLine(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("unterminated line: %v", err)
	}
	lr = amdumpd.NewLineReader(iotest.TimeoutReader(strings.NewReader("LIST\nEND\n")), 100)
	lr.ReadLine()
	lr.ReadLine()
	if _, err := lr.ReadLine(); !errors.Is(err, iotest.ErrTimeout) {
		t.Errorf("error mid-stream: %v", err)
	}
}

// pipeCTL is a CTL over in-memory bytes, for the fuzzer.
type pipeCTL struct {
	io.Reader
	bytes.Buffer
}

func (p *pipeCTL) Write(b []byte) (int, error)     { return p.Buffer.Write(b) }
func (p *pipeCTL) SetReadDeadline(time.Time) error { return nil }
func (p *pipeCTL) Read(b []byte) (int, error)      { return p.Reader.Read(b) }

func FuzzCommandLine(f *testing.F) {
	for _, s := range []string{
		"CONFIG amtest\nLIST\nDISK \"/var/lib/amanda/amtest-data/with space\"\nCHECK\nDUMP\nEND\n",
		"LIST\nDISK x\nDUMP\nCHECK\nlist\n\nCONFIG amtest\nCONFIG amtest\n",
		"FEATURES zz\nCONFIG ../x\n",
		"CONFIG amtest\r\nDISK \"\\101\"\n12345\nLIST\n",
		"CONFIG amtest\nDISK /var/lib/amanda/amtest-data/dir1\nDISK /var/lib/amanda/amtest-data/dir1\nDUMP\nDUMP\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		line, _, _ := strings.Cut(input, "\n")
		c := amdumpd.ParseCommand(line)
		if c.Line != strings.TrimSuffix(line, "\r") {
			t.Fatalf("ParseCommand(%q).Line = %q", line, c.Line)
		}
		if c.Verb != amdumpd.CmdInvalid {
			again := amdumpd.ParseCommand(c.String())
			if again.Verb != c.Verb || again.Arg != c.Arg {
				t.Fatalf("round trip %q: %+v -> %+v", line, c, again)
			}
		}

		// The whole input as a session: it must end, and every reply is a
		// complete line.
		backend, _ := newLab()
		svc := &amdumpd.Service{Backend: backend, MaxLineLength: 256}
		ctl := &pipeCTL{Reader: strings.NewReader(input)}
		svc.ServeCTL(context.Background(), ctl, amdumpd.Peer{Host: "localhost"})
		if out := ctl.String(); out != "" && !strings.HasSuffix(out, "\n") {
			t.Fatalf("reply ends inside a line: %q", out)
		}
	})
}
