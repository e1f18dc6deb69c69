package amanda_test

import (
	"errors"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

func TestFeatures351(t *testing.T) {
	f, err := amanda.ParseFeatures(amanda.Amanda351Features)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 19 {
		t.Fatalf("%d bytes, want 19", len(f))
	}
	off := map[int]bool{32: true, 37: true, 38: true, 40: true, 50: true, 114: true, 115: true, 130: true, 139: true}
	for n := 0; n < 152; n++ {
		want := n <= 148 && !off[n]
		if f.Has(n) != want {
			t.Errorf("feature %d: Has = %v, want %v", n, f.Has(n), want)
		}
	}
	if f.String() != amanda.Amanda351Features {
		t.Errorf("String = %q", f.String())
	}
	g := f.With(255)
	if !g.Has(255) || len(g) != 32 || f.Has(255) {
		t.Errorf("With(255): %s", g)
	}
	if g.String()[:38] != amanda.Amanda351Features {
		t.Errorf("With changed the existing bits: %s", g)
	}
}

func TestParseFeatures(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"0102FF", "0102ff", nil},
		{"0102f", "0102", nil},
		{"", "", nil},
		{amanda.UnknownFeatures, "", nil},
		{"zz", "", amanda.ErrBadFeatures},
		{"01z", "", amanda.ErrBadFeatures},
	}
	for _, tc := range tests {
		f, err := amanda.ParseFeatures(tc.in)
		if !errors.Is(err, tc.err) || (err == nil && f.String() != tc.want) {
			t.Errorf("ParseFeatures(%q) = %s, %v; want %s, %v", tc.in, f, err, tc.want, tc.err)
		}
	}
	if (amanda.Features{}).Has(0) || (amanda.Features{1}).Has(-1) {
		t.Error("Has out of range")
	}
}
