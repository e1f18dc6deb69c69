package wal

import "testing"

func TestParseLSN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LSN
		ok   bool
	}{
		{"0/3000028", 0x3000028, true},
		{"1A/FF", 0x1A000000FF, true},
		{"00000001/00000002", 0x100000002, true},
		{"ffffffff/ffffffff", ^LSN(0), true},
		{"", 0, false},
		{"0", 0, false},
		{"/1", 0, false},
		{"1/", 0, false},
		{"123456789/0", 0, false},
		{"g/0", 0, false},
		{"+1/0", 0, false},
	} {
		got, err := ParseLSN(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if s := LSN(0x1A000000FF).String(); s != "1A/FF" {
		t.Errorf("String = %q", s)
	}
}

func TestSegmentName(t *testing.T) {
	if got := SegmentName(1, 0x5000028, DefaultSegmentSize); got != "000000010000000000000005" {
		t.Errorf("got %s", got)
	}
	if got := SegmentName(2, 0x1_FF000000, DefaultSegmentSize); got != "0000000200000001000000FF" {
		t.Errorf("got %s", got)
	}
	if got := LSN(0x5000028).SegmentStart(DefaultSegmentSize); got != 0x5000000 {
		t.Errorf("SegmentStart = %v", got)
	}
}

func TestParseSegmentSize(t *testing.T) {
	for in, want := range map[string]uint64{"16MB": 16 << 20, "1GB": 1 << 30, "64MB": 64 << 20} {
		if got, err := ParseSegmentSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"3MB", "x", "512kB", "2GB"} {
		if _, err := ParseSegmentSize(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "x/y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLSN(s)
		if err != nil {
			return
		}
		back, err := ParseLSN(l.String())
		if err != nil || back != l {
			t.Fatalf("round trip %q -> %v -> %v %v", s, l, back, err)
		}
	})
}

func FuzzParseSegmentSize(f *testing.F) {
	for _, s := range []string{"16MB", "1GB", "1024kB", "3MB", "", "99999999999999999999GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSegmentSize(s)
		if err != nil {
			return
		}
		if v < 1<<20 || v > 1<<30 || v&(v-1) != 0 {
			t.Fatalf("ParseSegmentSize(%q) = %d, not a power of two in range", s, v)
		}
	})
}
