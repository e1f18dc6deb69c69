package amanda_test

import (
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/amanda"
)

// The tables of spec §6, verified there with Amanda's own library.
func TestQuoteSpec(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/data/x", "/data/x"},
		{"", `""`},
		{"a b", `"a b"`},
		{"tab\there", `"tab\there"`},
		{"new\nline", `"new\nline"`},
		{"cr\rx", `"cr\rx"`},
		{"ff\fx", `"ff\fx"`},
		{`back\slash`, `"back\\slash"`},
		{`dq"x`, `"dq\"x"`},
		{"sq'x", `"sq'x"`},
		{"co:lon", `"co:lon"`},
		{"caf\xc3\xa9", "\"caf\xc3\xa9\""},
		{"ctl\x01x", "\"ctl\x01x\""},
		{"del\x7fx", "\"del\x7fx\""},
		{"plain-_.,;=+@%", "plain-_.,;=+@%"},
		{"/var/lib/amanda/amtest-data/with space", `"/var/lib/amanda/amtest-data/with space"`},
	}
	for _, tc := range tests {
		if got := amanda.Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := amanda.Unquote(tc.want); got != tc.in {
			t.Errorf("Unquote(%q) = %q, want %q", tc.want, got, tc.in)
		}
	}
}

func TestUnquoteSpec(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"\101B"`, "AB"},
		{`a"b"c`, "abc"},
		{`"a b" c`, "a b c"},
		{`"abc\""`, `abc"`},
		{`x\qy`, "xqy"},
		{`"\000x"`, "x"},
		{`noquotes\ x`, "noquotes x"},
		{`\101\n`, `A\n`}, // Amanda's quirk: the byte after an octal escape is literal
		{`trailing\`, "trailing"},
		{`\12`, "\n"},
		{`"\t\r\f\n\\"`, "\t\r\f\n\\"},
	}
	for _, tc := range tests {
		if got := amanda.Unquote(tc.in); got != tc.want {
			t.Errorf("Unquote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "a b", "tab\t", `"\`, "caf\xc3\xa9", "\x00", `\101`, "x\ny\r\f:'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := amanda.Quote(s)
		if got := amanda.Unquote(q); got != s {
			t.Fatalf("Unquote(Quote(%q)) = %q via %q", s, got, q)
		}
		if strings.ContainsAny(q, "\n\r\t\f") {
			t.Fatalf("Quote(%q) = %q keeps a line break or tab", s, q)
		}
		if q != s && (len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"') {
			t.Fatalf("Quote(%q) = %q is changed but not quoted", s, q)
		}
		if q == s && (s == "" || strings.ContainsAny(s, " \"\\:'")) {
			t.Fatalf("Quote(%q) left it unquoted", s)
		}
		// Unquote must take anything; its result never grows.
		if u := amanda.Unquote(s); len(u) > len(s) {
			t.Fatalf("Unquote(%q) = %q grew", s, u)
		}
	})
}
