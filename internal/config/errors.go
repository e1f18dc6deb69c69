package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config: where it is, which key, what is wrong
// and how to fix it. Its text is one line:
//
//	/etc/holdfast/daily.yaml:7:18: disks[1].compression: "lz5" is not a compression; use zstd or none
//
// Load and Parse return an *Error, or several joined with errors.Join (one
// per line, in file order); errors.As finds the first.
type Error struct {
	File   string // the config file; empty for a config built in code
	Config string // the config name, shown when File is empty
	Line   int    // 1-based; 0 when not known
	Column int    // 1-based; 0 when not known
	Key    string // path of the key, e.g. disks[1].compression; empty for the file as a whole
	Msg    string // what is wrong and how to fix it
}

// Error formats the error as file:line:column: key: message.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "":
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":" + strconv.Itoa(e.Column))
			}
		}
	case e.Config != "":
		b.WriteString("config " + e.Config)
	default:
		b.WriteString("config")
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// maxErrors is how many errors one load reports; a file that is wrong
// everywhere needs a first fix before a full list helps.
const maxErrors = 20

// joinErrors sorts errs by position, drops repeats and returns nil, the
// single error, or all of them joined.
func joinErrors(errs []*Error) error {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	errs = slices.CompactFunc(errs, func(a, b *Error) bool { return *a == *b })
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	out := make([]error, 0, min(len(errs), maxErrors+1))
	for _, e := range errs[:min(len(errs), maxErrors)] {
		out = append(out, e)
	}
	if n := len(errs) - maxErrors; n > 0 {
		e := *errs[maxErrors]
		e.Key, e.Msg = "", fmt.Sprintf("%d more errors not shown; fix the ones above first", n)
		e.Line, e.Column = 0, 0
		out = append(out, &e)
	}
	return errors.Join(out...)
}
