package pgrepl

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestSecretsIn(t *testing.T) {
	tests := []struct {
		conninfo string
		want     []string
	}{
		{"host=x password=abc123 user=u", []string{"abc123"}},
		{"host=x PASSWORD = 'a b\\'c' user=u", []string{`a b\'c`, "a b'c"}},
		{"postgres://u:p%40ss@h:5432/db", []string{"p%40ss", "p@ss"}},
		{"postgresql://u:secret@h/db?password=other&sslmode=require", []string{"other", "secret"}},
		{"host=x user=u", nil},
		{"password=ab host=x", nil}, // too short to redact safely
	}
	for _, tt := range tests {
		got := secretsIn(tt.conninfo)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("secretsIn(%q) = %q, missing %q", tt.conninfo, got, w)
			}
		}
		if tt.want == nil && len(got) != 0 {
			t.Errorf("secretsIn(%q) = %q, want none", tt.conninfo, got)
		}
	}
}

func TestRedactError(t *testing.T) {
	r := redactor{"hunter2"}
	base := errors.New("cause")
	e := r.redactError(&Error{Op: "connect hunter2", Reason: "bad hunter2", Kind: ErrAuth, Err: base})
	if e.Error() != "connect [redacted]: bad [redacted]" || !errors.Is(e, ErrAuth) || !errors.Is(e, base) {
		t.Errorf("redactError = %v", e)
	}
	e = r.redactError(fmt.Errorf("wrapped hunter2: %w", base))
	if e.Error() != "wrapped [redacted]: cause" || !errors.Is(e, base) {
		t.Errorf("redactError = %v", e)
	}
}

func TestLeafMessage(t *testing.T) {
	inner := errors.New("connection refused")
	err := fmt.Errorf("outer: %w", errors.Join(fmt.Errorf("a: %w", inner), fmt.Errorf("b: %w", inner), errors.New("x\ny")))
	if got, want := leafMessage(err), "connection refused; x; y"; got != want {
		t.Errorf("leafMessage = %q, want %q", got, want)
	}
}
