package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// connKeywords are the connection parameters of libpq 18 and pgx v5. The
// value tells whether the parameter's value may be printed.
var connKeywords = map[string]bool{
	"application_name": true, "channel_binding": true, "client_encoding": true,
	"connect_timeout": true, "dbname": true, "fallback_application_name": true,
	"gssdelegation": true, "gssencmode": true, "gsslib": true, "host": true,
	"hostaddr": true, "keepalives": true, "keepalives_count": true,
	"keepalives_idle": true, "keepalives_interval": true, "krbspn": true,
	"krbsrvname": true, "load_balance_hosts": true, "max_protocol_version": true,
	"min_protocol_version": true, "oauth_client_id": true, "oauth_issuer": true,
	"oauth_scope": true, "options": true, "passfile": true, "port": true,
	"replication": true, "require_auth": true, "requirepeer": true,
	"service": true, "servicefile": true, "ssl_max_protocol_version": true,
	"ssl_min_protocol_version": true, "sslcert": true, "sslcertmode": true,
	"sslcompression": true, "sslcrl": true, "sslcrldir": true, "sslkey": true,
	"sslkeylogfile": true, "sslmode": true, "sslnegotiation": true,
	"sslrootcert": true, "sslsni": true, "target_session_attrs": true,
	"tcp_user_timeout": true, "user": true,

	"password": false, "sslpassword": false, "oauth_client_secret": false,
	"scram_client_key": false, "scram_server_key": false,
}

// showable reports whether the value of key may be printed. Unknown keys are
// hidden: a typo such as "pasword" must not reveal what follows it. A dbname
// that looks like a connection string of its own is hidden too.
func showable(key, value string) bool {
	if !connKeywords[key] {
		return false
	}
	return key != "dbname" || !strings.ContainsAny(value, "=%") && !strings.Contains(value, "://")
}

type setting struct{ key, value string }

// hasSecret reports whether a connection string accepted by ParseConnInfo
// holds a non-empty secret value.
func hasSecret(s string) bool {
	settings, _ := parseConnInfo(s)
	for _, st := range settings {
		if !connKeywords[st.key] && st.value != "" {
			return true
		}
	}
	return false
}

// parseConnInfo reads s strictly and returns its settings, or why it is not
// acceptable.
func parseConnInfo(s string) ([]setting, string) {
	if strings.Trim(s, connSpaces) == "" {
		return nil, "it is empty; write e.g. host=/run/postgresql user=backup"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && !isConnSpace(c) || c == 0x7f {
			return nil, fmt.Sprintf("it contains the control character %U at byte %d; remove it", rune(c), i)
		}
	}
	if t := strings.TrimLeft(s, connSpaces); hasURIPrefixFold(t) {
		switch {
		case len(t) != len(s):
			return nil, "remove the white space before the URI"
		case !strings.HasPrefix(s, "postgresql://") && !strings.HasPrefix(s, "postgres://"):
			return nil, "write the URI scheme postgresql:// in lower case"
		}
		return parseURI(s)
	}
	pairs, err := scanKV(s)
	if err != nil {
		return nil, err.Error()
	}
	out := make([]setting, 0, len(pairs))
	for _, p := range pairs {
		if _, ok := connKeywords[p.key]; !ok {
			return nil, unknownKeyword(p.key, p.keyAt)
		}
		if p.trailingBackslash {
			return nil, fmt.Sprintf("the value of %s ends with a backslash; remove it or put the value in quotes", p.key)
		}
		if p.key == "dbname" && !showable(p.key, p.value) {
			return nil, "dbname holds a connection string; write its settings directly instead"
		}
		out = append(out, setting{p.key, p.value})
	}
	return out, ""
}

func unknownKeyword(key string, at int) string {
	if s := suggest(key, mapKeys(connKeywords)); s != "" {
		return fmt.Sprintf("unknown keyword %q; did you mean %s?", key, s)
	}
	return fmt.Sprintf("unknown keyword at byte %d; use the parameter keywords of libpq (host, port, user, sslmode, ...)", at)
}

func mapKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// parseURI reads a postgresql:// URI. Besides libpq's rules it refuses what
// libpq (and pgx) and RFC 3986 parsers would read differently: '#', and
// '@', '?' or other reserved characters left unencoded in the user
// information.
func parseURI(s string) ([]setting, string) {
	if strings.ContainsRune(s, '#') {
		return nil, "write '#' as %23 in a URI"
	}
	_, rest, _ := strings.Cut(s, "://")
	auth := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth = rest[:i]
	}
	var out []setting
	if strings.Count(auth, "@") > 1 {
		return nil, "write '@' in the user name or password as %40"
	}
	if at := strings.IndexByte(auth, '@'); at >= 0 {
		info := auth[:at]
		for i := 0; i < len(info); i++ {
			if !isUserinfoByte(info[i]) {
				return nil, "percent-encode special characters in the user name and password (e.g. a space as %20, '?' as %3F)"
			}
		}
		user, pass, hasPass := strings.Cut(info, ":")
		u, ok := pctDecode(user)
		if !ok {
			return nil, "the user name has a bad %-escape; write '%' as %25"
		}
		out = append(out, setting{"user", u})
		if hasPass {
			p, ok := pctDecode(pass)
			if !ok {
				return nil, "the password has a bad %-escape; write '%' as %25"
			}
			out = append(out, setting{"password", p})
		}
		rest = rest[at+1:]
	}
	hosts, rest, _ := strings.Cut(rest, "?")
	query := rest
	hosts, db, _ := strings.Cut(hosts, "/")
	if _, ok := pctDecode(hosts); !ok {
		return nil, "the host part has a bad %-escape; write '%' as %25"
	}
	if d, ok := pctDecode(db); !ok {
		return nil, "the database name has a bad %-escape; write '%' as %25"
	} else if d != "" {
		out = append(out, setting{"dbname", d})
	}
	if query == "" {
		return out, ""
	}
	for param := range strings.SplitSeq(query, "&") {
		k, v, ok := strings.Cut(param, "=")
		switch {
		case param == "":
			return nil, "the query has an empty parameter (a doubled or trailing '&'); remove it"
		case !ok:
			return nil, "a query parameter has no '='; write key=value"
		case strings.ContainsRune(v, '='):
			return nil, "a query parameter has a second '='; write it as %3D"
		}
		key, ok := pctDecode(k)
		if !ok {
			return nil, "a query parameter name has a bad %-escape"
		}
		if _, known := connKeywords[key]; !known {
			if key == "ssl" {
				return nil, "write sslmode=require instead of ssl=true"
			}
			return nil, unknownKeyword(key, strings.Index(s, param))
		}
		val, ok := pctDecode(v)
		if !ok {
			return nil, fmt.Sprintf("the value of %s has a bad %%-escape; write '%%' as %%25", key)
		}
		if !showable(key, val) && key == "dbname" {
			return nil, "dbname holds a connection string; write its settings directly instead"
		}
		out = append(out, setting{key, val})
	}
	return out, ""
}

// isUserinfoByte reports whether net/url accepts c unencoded in a URI's user
// information (':' separates the password; '@' ends it).
func isUserinfoByte(c byte) bool {
	return isAlnum(c) || strings.IndexByte("-._~!$&'()*+,;=:%", c) >= 0
}

// pctDecode undoes %XX escapes as libpq does: a bad escape or %00 fails.
func pctDecode(s string) (string, bool) {
	if !strings.ContainsRune(s, '%') {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", false
		}
		c := byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		if c == 0 {
			return "", false
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// connSpaces is C's isspace in the "C" locale, which libpq uses.
const connSpaces = " \t\n\v\f\r"

func isConnSpace(c byte) bool { return strings.IndexByte(connSpaces, c) >= 0 }

func hasURIPrefixFold(s string) bool {
	for _, p := range []string{"postgresql://", "postgres://"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			return true
		}
	}
	return false
}

// kvPair is one keyword = value of a keyword/value connection string, with
// the byte range of the value as written (quotes and escapes included).
type kvPair struct {
	key               string
	keyAt             int
	value             string
	start, end        int
	trailingBackslash bool
}

// scanKV splits a keyword/value connection string exactly as libpq's
// conninfo_parse does. Its errors name a keyword only if it is a known one.
func scanKV(s string) ([]kvPair, error) {
	var out []kvPair
	i := 0
	for {
		for i < len(s) && isConnSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return out, nil
		}
		p := kvPair{keyAt: i}
		for i < len(s) && s[i] != '=' && !isConnSpace(s[i]) {
			i++
		}
		p.key = s[p.keyAt:i]
		for i < len(s) && isConnSpace(s[i]) {
			i++
		}
		if i == len(s) || s[i] != '=' {
			return nil, fmt.Errorf("missing '=' after %s; write keyword=value", wordAt(p.key, p.keyAt))
		}
		i++
		for i < len(s) && isConnSpace(s[i]) {
			i++
		}
		p.start = i
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for {
				if i == len(s) {
					return nil, fmt.Errorf("the quoted value of %s has no closing quote; end it with '", wordAt(p.key, p.keyAt))
				}
				c := s[i]
				i++
				if c == '\'' {
					break
				}
				if c == '\\' {
					if i == len(s) {
						continue
					}
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		} else {
			for i < len(s) && !isConnSpace(s[i]) {
				c := s[i]
				i++
				if c == '\\' {
					if i == len(s) {
						p.trailingBackslash = true
						break
					}
					c = s[i]
					i++
				}
				v.WriteByte(c)
			}
		}
		p.end = i
		p.value = v.String()
		out = append(out, p)
	}
}

// wordAt names a keyword in a message without printing an unknown word,
// which might be a misplaced password.
func wordAt(key string, at int) string {
	if _, ok := connKeywords[key]; ok {
		return key
	}
	return fmt.Sprintf("the word at byte %d", at)
}

type span struct{ start, end int }

// redactConnInfo replaces every part of s that libpq or pgx could read as a
// secret with "[redacted]". When s cannot be split at all, all of it is
// hidden.
func redactConnInfo(s string) string {
	var spans []span
	if t := strings.TrimLeft(s, connSpaces); hasURIPrefixFold(t) {
		spans = uriSecretSpans(s, len(s)-len(t))
	} else {
		pairs, err := scanKV(s)
		if err != nil {
			return redacted
		}
		for _, p := range pairs {
			if !showable(p.key, p.value) {
				spans = append(spans, span{p.start, p.end})
			}
		}
	}
	var b strings.Builder
	last := 0
	for _, sp := range mergeSpans(spans) {
		b.WriteString(s[last:sp.start])
		b.WriteString(redacted)
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// uriSecretSpans finds the secrets of the URI starting at s[off:] under both
// readings that matter: libpq's, which pgx v5 copies (user information ends
// at the first '@' before the first '/'; the query starts at the first '?'
// after it), and RFC 3986's, as net/url and most other tools read a URI (the
// authority ends at the first '/', '?' or '#', user information at its last
// '@'; the query runs from the first '?' to the first '#'). A query value is
// hidden unless its key is a plain known keyword that may be printed.
func uriSecretSpans(s string, off int) []span {
	start := off + strings.Index(s[off:], "://") + 3
	rest := s[start:]
	auth := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth = rest[:i]
	}
	var spans []span
	// Both readings' passwords start after the first ':' and end at or
	// before the last '@' of auth.
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		if c := strings.IndexByte(auth[:at], ':'); c >= 0 {
			spans = append(spans, span{start + c + 1, start + at})
		}
	}
	libpqQuery := start
	if at := strings.IndexByte(auth, '@'); at >= 0 {
		libpqQuery = start + at + 1
	}
	if q := strings.IndexByte(s[libpqQuery:], '?'); q >= 0 {
		spans = queryValueSpans(spans, s, libpqQuery+q+1, len(s))
	}
	end := len(s)
	if h := strings.IndexByte(rest, '#'); h >= 0 {
		end = start + h
	}
	if q := strings.IndexByte(s[start:end], '?'); q >= 0 {
		spans = queryValueSpans(spans, s, start+q+1, end)
	}
	return spans
}

func queryValueSpans(spans []span, s string, from, to int) []span {
	for from <= to {
		seg := s[from:to]
		if i := strings.IndexByte(seg, '&'); i >= 0 {
			seg = seg[:i]
		}
		if eq := strings.IndexByte(seg, '='); eq >= 0 {
			key, val := seg[:eq], seg[eq+1:]
			if strings.ContainsAny(key, "%+") || !showable(key, val) {
				spans = append(spans, span{from + eq + 1, from + len(seg)})
			}
		}
		from += len(seg) + 1
	}
	return spans
}

// mergeSpans sorts spans and joins those that overlap or touch.
func mergeSpans(spans []span) []span {
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var out []span
	for _, sp := range spans {
		if n := len(out); n > 0 && sp.start <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}
