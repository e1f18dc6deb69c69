package amanda

import (
	"encoding/hex"
	"errors"
)

// Amanda351Features is the feature string of Amanda 3.5.1's amservice and
// amdumpd: bits 0..148 set except 32, 37, 38, 40, 50, 114, 115, 130 and 139.
const Amanda351Features = "ffffffff9efefbfffffffffffffff3fffbf71f"

// UnknownFeatures is the literal Amanda sends for "features unknown".
const UnknownFeatures = "UNKNOWNFEATURE"

// ErrBadFeatures reports a feature string with a non-hex character; Amanda
// treats such a string as "no features".
var ErrBadFeatures = errors.New("amanda: invalid feature string")

// Features is a set of Amanda feature bits: feature n is bit n&7 (LSB
// first) of byte n>>3.
type Features []byte

// ParseFeatures decodes the text form (two hex digits a byte, byte 0
// first). Upper-case digits are accepted; an odd trailing digit is dropped;
// UnknownFeatures and "" give an empty set.
func ParseFeatures(s string) (Features, error) {
	if s == UnknownFeatures {
		return Features{}, nil
	}
	if len(s)%2 == 1 {
		if !isHex(s[len(s)-1]) {
			return nil, ErrBadFeatures
		}
		s = s[:len(s)-1]
	}
	f, err := hex.DecodeString(s)
	if err != nil {
		return nil, ErrBadFeatures
	}
	return Features(f), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Has reports whether feature n is set.
func (f Features) Has(n int) bool {
	if n < 0 || n>>3 >= len(f) {
		return false
	}
	return f[n>>3]&(1<<(n&7)) != 0
}

// With returns a copy of f with the features ns set, grown as needed.
func (f Features) With(ns ...int) Features {
	out := append(Features(nil), f...)
	for _, n := range ns {
		if n < 0 {
			continue
		}
		for n>>3 >= len(out) {
			out = append(out, 0)
		}
		out[n>>3] |= 1 << (n & 7)
	}
	return out
}

// String returns the text form, lower-case hex.
func (f Features) String() string { return hex.EncodeToString(f) }
