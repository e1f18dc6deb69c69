package pglabel

import (
	"bytes"
	"errors"
	"testing"
)

const full = "START WAL LOCATION: 0/7000028 (file 000000010000000000000007)\nCHECKPOINT LOCATION: 0/7000080\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-11-22 17:01:02 UTC\nLABEL: it's: a label\nSTART TIMELINE: 1\n"
const incr = full + "INCREMENTAL FROM LSN: 0/5000028\nINCREMENTAL FROM TLI: 1\n"

func TestParse(t *testing.T) {
	l, err := Parse([]byte(full))
	if err != nil || l.StartLSN != 0x7000028 || l.StartTimeline != 1 || l.Incremental || l.Label != "it's: a label" {
		t.Fatalf("full: %+v %v", l, err)
	}
	l, err = Parse([]byte(incr))
	if err != nil || !l.Incremental || l.FromLSN != 0x5000028 || l.FromTimeline != 1 {
		t.Fatalf("incremental: %+v %v", l, err)
	}
	if got := StripIncremental([]byte(incr)); !bytes.Equal(got, []byte(full)) {
		t.Fatalf("StripIncremental = %q", got)
	}
	for _, bad := range []string{"", "START TIMELINE: 1\n", "START WAL LOCATION: x/y\nSTART TIMELINE: 1\n", full + "INCREMENTAL FROM LSN: 0/1\n", "START WAL LOCATION: 0/1\nSTART TIMELINE: 0\n"} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte(incr))
	f.Add([]byte("START WAL LOCATION: 0/1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		// Stripping the incremental lines yields a full label for the same start.
		s, err := Parse(StripIncremental(b))
		if err != nil || s.Incremental || s.StartLSN != l.StartLSN || s.StartTimeline != l.StartTimeline {
			t.Fatalf("strip changed the label: %+v -> %+v %v", l, s, err)
		}
	})
}
