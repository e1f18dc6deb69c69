package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/config"
)

// printings formats v every way a careless caller might.
func printings(t *testing.T, v any) []string {
	t.Helper()
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v", "%T"} {
		out = append(out, fmt.Sprintf(verb, v))
	}
	out = append(out, fmt.Sprint(v), fmt.Sprintln(v))
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(j))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "v", v)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "v", v)
	return append(out, buf.String())
}

func TestSecret(t *testing.T) {
	const value = "hunter2-Pa55"
	s := config.NewSecret(value)
	if s.Reveal() != value || s.IsZero() || !s.Equal(config.NewSecret(value)) || s.Equal(config.NewSecret("other")) {
		t.Errorf("Reveal/IsZero/Equal wrong for %q", value)
	}
	if got := fmt.Sprintf("%v|%s|%q|%#v", s, s, s, s); got != `[redacted]|[redacted]|"[redacted]"|config.Secret([redacted])` {
		t.Errorf("Secret prints as %s", got)
	}
	holder := struct {
		S  config.Secret
		P  *config.Secret
		S3 config.S3Config
	}{S: s, P: &s, S3: config.S3Config{AccessKey: "ak", SecretKey: s}}
	for _, v := range []any{s, &s, holder, &holder, []config.Secret{s}, map[string]config.Secret{"k": s}} {
		for _, p := range printings(t, v) {
			if strings.Contains(p, value) || strings.Contains(p, fmt.Sprintf("%x", value)) {
				t.Errorf("printing %T leaks the secret: %s", v, p)
			}
		}
	}
	if text, _ := s.MarshalText(); string(text) != "[redacted]" {
		t.Errorf("MarshalText = %s", text)
	}
}

func TestConnInfoPrinting(t *testing.T) {
	const pw = "hunter2-Pa55"
	for _, raw := range []string{
		"host=db1 user=backup password=" + pw,
		"postgresql://backup:" + pw + "@db1/postgres",
	} {
		c, err := config.ParseConnInfo(raw)
		if err != nil {
			t.Fatal(err)
		}
		if c.Reveal() != raw {
			t.Errorf("Reveal = %q, want %q", c.Reveal(), raw)
		}
		d := config.Disk{Host: "db1", Disk: "pg", Postgres: c}
		for _, v := range []any{c, &c, d, []config.Disk{d}} {
			for _, p := range printings(t, v) {
				if strings.Contains(p, pw) {
					t.Errorf("printing %T leaks the password: %s", v, p)
				}
			}
		}
	}
}

func TestConnInfoRedacted(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"host=db1 password=s3cret user=backup", "host=db1 password=[redacted] user=backup"},
		{`password = 's3 cr\'et' host=x`, "password = [redacted] host=x"},
		{`password=s3\ cret host=x`, "password=[redacted] host=x"},
		{"password='' host=x", "password=[redacted] host=x"},
		{"password= host=x", "password= [redacted]"}, // libpq skips the space: the password is "host=x"
		{"host=x\tpassword=a\nsslpassword=b sslkey=/k", "host=x\tpassword=[redacted]\nsslpassword=[redacted] sslkey=/k"},
		{"oauth_client_id=hf oauth_client_secret=xyz", "oauth_client_id=hf oauth_client_secret=[redacted]"},
		{"host=/run/postgresql port=5432 user=backup", "host=/run/postgresql port=5432 user=backup"},
		{"postgresql://backup:s3cret@db1:5432/postgres?sslmode=require", "postgresql://backup:[redacted]@db1:5432/postgres?sslmode=require"},
		{"postgres://backup:@db1", "postgres://backup:[redacted]@db1"},
		{"postgresql://backup@db1,db2:5433/postgres", "postgresql://backup@db1,db2:5433/postgres"},
		{"postgresql://db1/postgres?password=s3cret&application_name=hf", "postgresql://db1/postgres?password=[redacted]&application_name=hf"},
		{"postgresql://db1/?pass%77ord=s3cret", "postgresql://db1/?pass%77ord=[redacted]"},
		{"postgresql://%2Frun%2Fpostgresql/postgres?user=backup", "postgresql://%2Frun%2Fpostgresql/postgres?user=backup"},
		{"", ""},
	} {
		c, err := config.ParseConnInfo(tt.in)
		if err != nil && tt.in != "" {
			t.Errorf("ParseConnInfo(%q): %v", tt.in, err)
			continue
		}
		if got := c.Redacted(); got != tt.want {
			t.Errorf("ParseConnInfo(%q).Redacted() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseConnInfo(t *testing.T) {
	for _, s := range []string{
		"host=db1", "host = db1  port=5432 ", "dbname=postgres", `options='-c statement_timeout=0'`, `application_name=it\'s`,
		"postgresql://", "postgres://db1", "postgresql://[::1]:5432/postgres", "postgresql://u:p%40ss@db1/?sslmode=verify-full&sslrootcert=/ca.pem",
	} {
		if _, err := config.ParseConnInfo(s); err != nil {
			t.Errorf("ParseConnInfo(%q): %v", s, err)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"", "it is empty; write e.g. host=/run/postgresql user=backup"},
		{"host=db1 password=x\x00y", "it contains the control character U+0000 at byte 19; remove it"},
		{"host=db1 s3cret", "missing '=' after the word at byte 9; write keyword=value"},
		{"host db1", "missing '=' after host; write keyword=value"},
		{"host=db1 password='abc", "the quoted value of password has no closing quote; end it with '"},
		{`host=db1\`, `the value of host ends with a backslash; remove it or put the value in quotes`},
		{"hots=db1", `unknown keyword "hots"; did you mean host?`},
		{"database=postgres", "unknown keyword at byte 0; use the parameter keywords of libpq (host, port, user, sslmode, ...)"},
		{"dbname='host=evil password=x'", "dbname holds a connection string; write its settings directly instead"},
		{" postgresql://db1", "remove the white space before the URI"},
		{"POSTGRES://db1", "write the URI scheme postgresql:// in lower case"},
		{"postgresql://db1/#frag", "write '#' as %23 in a URI"},
		{"postgresql://u:a@b@db1", "write '@' in the user name or password as %40"},
		{"postgresql://u:a?b@db1", "percent-encode special characters in the user name and password (e.g. a space as %20, '?' as %3F)"},
		{"postgresql://u:a%zz@db1", "the password has a bad %-escape; write '%' as %25"},
		{"postgresql://u:a%00@db1", "the password has a bad %-escape; write '%' as %25"},
		{"postgresql://db1/?sslmode", "a query parameter has no '='; write key=value"},
		{"postgresql://db1/?sslmode=a=b", "a query parameter has a second '='; write it as %3D"},
		{"postgresql://db1/?sslmode=require&", "the query has an empty parameter (a doubled or trailing '&'); remove it"},
		{"postgresql://db1/?ssl=true", "write sslmode=require instead of ssl=true"},
		{"postgresql://db1/?x=1", "unknown keyword at byte 18; use the parameter keywords of libpq (host, port, user, sslmode, ...)"},
	} {
		_, err := config.ParseConnInfo(tt.in)
		want := "invalid PostgreSQL connection string: " + tt.want
		if err == nil || err.Error() != want || !errors.Is(err, config.ErrInvalidConnInfo) {
			t.Errorf("ParseConnInfo(%q):\n got %v\nwant %s", tt.in, err, want)
		}
	}
}
