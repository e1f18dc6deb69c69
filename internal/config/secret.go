package config

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

// redacted is what every secret prints as.
const redacted = "[redacted]"

// Secret holds a credential. Every way of printing, logging or encoding it
// (fmt with any verb, JSON, text, slog) gives "[redacted]"; only Reveal
// returns the value.
type Secret struct {
	v string
}

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v} }

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// Equal compares two secrets in constant time.
func (s Secret) Equal(o Secret) bool {
	return subtle.ConstantTimeCompare([]byte(s.v), []byte(o.v)) == 1
}

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "config.Secret([redacted])".
func (s Secret) GoString() string { return "config.Secret(" + redacted + ")" }

// Format prints "[redacted]" for every verb, so that %d or %x cannot reach
// the value through fmt's struct printing.
func (s Secret) Format(f fmt.State, verb rune) { formatRedacted(f, verb, redacted, s.GoString()) }

// MarshalText returns "[redacted]".
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON returns "[redacted]" as a JSON string.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// LogValue makes slog print "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

func formatRedacted(f fmt.State, verb rune, text, goText string) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, goText)
	case verb == 'q':
		fmt.Fprintf(f, "%q", text)
	default:
		io.WriteString(f, text)
	}
}

// ConnInfo is a PostgreSQL connection string, in libpq's keyword/value form
// (host=/run/postgresql user=backup) or as a URI
// (postgresql://backup@db1:5432/postgres?sslmode=require). Make one with
// ParseConnInfo.
//
// Its printed forms hide every value that could be a secret: password,
// sslpassword, oauth_client_secret and any keyword Holdfast does not know,
// in either form, and the password of a URI's user information. Reveal
// returns the string as written, for the connection itself.
type ConnInfo struct {
	s string
}

// ParseConnInfo checks s the way libpq would read it, and a little more
// strictly so that every reader of URIs agrees on it: keywords must be
// known libpq connection parameters, and a URI must percent-encode '@', '?'
// and '#' inside its parts. The error never contains a value from s other
// than a keyword.
func ParseConnInfo(s string) (ConnInfo, error) {
	if _, why := parseConnInfo(s); why != "" {
		return ConnInfo{}, &kindError{"invalid PostgreSQL connection string: " + why, ErrInvalidConnInfo}
	}
	return ConnInfo{s}, nil
}

// Reveal returns the connection string as written, password included.
func (c ConnInfo) Reveal() string { return c.s }

// IsZero reports whether the connection string is empty.
func (c ConnInfo) IsZero() bool { return c.s == "" }

// Equal reports whether two connection strings are the same text.
func (c ConnInfo) Equal(o ConnInfo) bool { return c.s == o.s }

// Redacted returns the connection string with every possibly secret value
// replaced by "[redacted]": host=db1 password=[redacted] user=backup,
// postgresql://backup:[redacted]@db1/postgres.
func (c ConnInfo) Redacted() string { return redactConnInfo(c.s) }

// String returns Redacted().
func (c ConnInfo) String() string { return c.Redacted() }

// GoString returns config.ConnInfo("<redacted form>").
func (c ConnInfo) GoString() string { return fmt.Sprintf("config.ConnInfo(%q)", c.Redacted()) }

// Format prints the redacted form for every verb.
func (c ConnInfo) Format(f fmt.State, verb rune) {
	formatRedacted(f, verb, c.Redacted(), c.GoString())
}

// MarshalText returns the redacted form.
func (c ConnInfo) MarshalText() ([]byte, error) { return []byte(c.Redacted()), nil }

// LogValue makes slog print the redacted form.
func (c ConnInfo) LogValue() slog.Value { return slog.StringValue(c.Redacted()) }
