package amanda

import "strings"

// needsQuote reports whether Amanda's quote_string would quote s: it is
// empty, or holds a colon, a single or double quote, a backslash, a byte
// <= 0x20, 0x7f or any byte >= 0x80 (Amanda tests a signed char, so every
// non-ASCII byte counts).
func needsQuote(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == ':' || c == '\'' || c == '\\' || c == '"' {
			return true
		}
	}
	return false
}

// Quote returns s as Amanda's quote_string writes it: unchanged when no
// quoting is needed, otherwise between double quotes with TAB, LF, CR, FF,
// backslash and double quote escaped and every other byte copied raw.
func Quote(s string) string {
	if !needsQuote(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\f':
			b.WriteString(`\f`)
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Unquote reverses Quote the way Amanda's unquote_string does, applied to
// the whole string: unescaped double quotes are dropped wherever they are;
// \n \t \r \f are LF TAB CR FF; a backslash and 1-3 octal digits is that
// byte (a NUL result is dropped); a trailing lone backslash is dropped; any
// other escaped byte stands for itself. Amanda copies the byte right after
// an octal escape without escape processing, and so does Unquote.
func Unquote(s string) string {
	if strings.IndexAny(s, `"\`) < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			continue
		case '\\':
		default:
			b = append(b, c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch c = s[i]; c {
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'f':
			b = append(b, '\f')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := 0
			n := 0
			for n < 3 && i < len(s) && s[i] >= '0' && s[i] <= '7' {
				v = v*8 + int(s[i]-'0')
				i++
				n++
			}
			if byte(v) != 0 {
				b = append(b, byte(v))
			}
			// Amanda's quirk: the next byte is copied as is.
			if i < len(s) {
				b = append(b, s[i])
			}
		default:
			b = append(b, c)
		}
	}
	return string(b)
}
