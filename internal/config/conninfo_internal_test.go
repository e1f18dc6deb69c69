package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A connection string with a password in each form ParseConnInfo accepts.
// Each returns the string and the keyword the password is read under, or ""
// when pw cannot be written in that form.
var passwordForms = []func(pw string) (string, string){
	func(pw string) (string, string) {
		if pw == "" {
			return "", "" // "password= user=x" would make "user=x" the password
		}
		return "host=db1 password=" + escapeKV(pw, false) + " user=backup", "password"
	},
	func(pw string) (string, string) {
		return "password='" + escapeKV(pw, true) + "' host=db1", "password"
	},
	func(pw string) (string, string) {
		return "sslkey=/k sslpassword = '" + escapeKV(pw, true) + "'", "sslpassword"
	},
	func(pw string) (string, string) {
		if pw == "" {
			return "", ""
		}
		return "postgresql://backup:" + pctEncode(pw) + "@db1:5432/postgres?sslmode=require", "password"
	},
	func(pw string) (string, string) {
		return "postgresql://db1/postgres?sslmode=require&password=" + pctEncode(pw) + "&application_name=hf", "password"
	},
	func(pw string) (string, string) {
		if pw == "" {
			return "", ""
		}
		return "oauth_client_secret=" + escapeKV(pw, false) + "\toauth_client_id=hf", "oauth_client_secret"
	},
}

func escapeKV(s string, quoted bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' || c == '\'' || !quoted && isConnSpace(c) {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; isAlnum(c) || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// FuzzRedactPassword writes a password in every supported form and checks
// that ParseConnInfo reads it back exactly, and that the redacted text does
// not depend on it at all: it is the same as with any other password.
func FuzzRedactPassword(f *testing.F) {
	for i := range passwordForms {
		for _, pw := range []string{"s3cret", "", "a b", `it's \ here`, "p@ss:w/rd?x=1&y#z", "'", "%41", "[redacted]", "é"} {
			f.Add(pw, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if strings.ContainsFunc(pw, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Skip("ParseConnInfo refuses control characters")
		}
		build := passwordForms[int(form)%len(passwordForms)]
		s, key := build(pw)
		if s == "" {
			t.Skip()
		}
		settings, why := parseConnInfo(s)
		if why != "" {
			t.Fatalf("parseConnInfo(%q): %s", s, why)
		}
		found := false
		for _, st := range settings {
			if st.key == key {
				found = true
				if st.value != pw {
					t.Fatalf("parseConnInfo(%q) reads %s %q, want %q", s, key, st.value, pw)
				}
			}
		}
		if !found {
			t.Fatalf("parseConnInfo(%q) found no %s: %q", s, key, settings)
		}
		other, _ := build("x")
		if got, want := redactConnInfo(s), redactConnInfo(other); got != want {
			t.Fatalf("redaction depends on the password:\n%q -> %q\n%q -> %q", s, got, other, want)
		}
	})
}

// pgxSafeKeys keep pgconn.ParseConfig away from files: it refuses any
// other key before it reads anything.
var pgxSafeKeys = []string{
	"host", "port", "dbname", "database", "user", "password", "sslpassword", "sslmode",
	"application_name", "connect_timeout", "target_session_attrs", "options", "replication",
}

// FuzzRedact feeds arbitrary text to the redactor. Besides never panicking,
// what it prints must hold no password as pgx reads it: pgx reading the
// redacted text finds none, or only the placeholder.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"host=db1 password=s3cret user=backup", "password = 'a b\\'c'", "password= host=x", "pasword=x",
		"postgresql://u:p@h/db?password=q&sslmode=require", "postgresql://a?host=b@h/db?password=sec",
		"postgres://u:a@b@h:1,h2:2/db", "postgresql://h/?pass%77ord=x#frag", "POSTGRESQL://u:p@h", " postgres://u:p@h",
		"dbname='password=x'", "password='unterminated", "postgresql://[::1]:5432/?password=x&&password=y",
	} {
		f.Add(s)
	}
	f.Setenv("PGPASSWORD", "")
	f.Setenv("PGPASSFILE", "/nonexistent/pgpass")
	f.Setenv("PGSERVICEFILE", "/nonexistent/pg_service.conf")
	opts := pgconn.ParseConfigOptions{ConnStringAllowedKeys: pgxSafeKeys}
	f.Fuzz(func(t *testing.T, s string) {
		r := redactConnInfo(s)
		const placeholder = "REDACTED"
		r2 := strings.ReplaceAll(r, redacted, placeholder)
		if c, err := pgconn.ParseConfigWithOptions(r2, opts); err == nil && c.Password != "" && c.Password != placeholder {
			orig := "(does not parse)"
			if c0, err := pgconn.ParseConfigWithOptions(s, opts); err == nil {
				orig = c0.Password
			}
			t.Fatalf("redacted %q to %q, where pgx reads the password %q (the original's: %q)", s, r, c.Password, orig)
		}
	})
}
