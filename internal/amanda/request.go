package amanda

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNoService is returned by ParseRequest when the body, after an optional
// SECURITY line, does not start with "SERVICE ".
var ErrNoService = errors.New("amanda: REQ has no SERVICE line")

// Request is the body of a REQ packet:
//
//	[ "SECURITY USER " <user> LF ]
//	"SERVICE " <service> LF
//	<args>                       e.g. "OPTIONS features=...;hostname=...;" LF
//
// Args is passed verbatim to the service, as amandad does.
type Request struct {
	User    string // the SECURITY USER claim; "" when there is no SECURITY line
	Service string
	Args    string // everything after the SERVICE line
}

// NewRequest builds a request whose arguments are a single OPTIONS line.
func NewRequest(user, service string, opts Options) Request {
	return Request{User: user, Service: service, Args: "OPTIONS " + opts.String() + "\n"}
}

// ParseRequest decodes a REQ body the way bsdtcp and amandad read it. A
// missing or malformed SECURITY line is not an error here (User is empty):
// the server decides, in Amanda's order of checks, how to refuse it.
func ParseRequest(body string) (Request, error) {
	var r Request
	rest := body
	if strings.HasPrefix(rest, "SECURITY ") {
		line, after, _ := strings.Cut(rest, "\n")
		rest = after
		if u, ok := strings.CutPrefix(line, "SECURITY USER "); ok {
			r.User = u
		}
	}
	svc, ok := strings.CutPrefix(rest, "SERVICE ")
	if !ok {
		return Request{}, ErrNoService
	}
	line, args, _ := strings.Cut(svc, "\n")
	if i := strings.IndexByte(line, ' '); i >= 0 {
		line = line[:i]
	}
	r.Service = line
	r.Args = args
	return r, nil
}

// Encode returns the REQ body. It refuses fields that would not survive
// ParseRequest: line breaks or NULs in the user, a service name with a
// space, an empty service.
func (r Request) Encode() (string, error) {
	switch {
	case strings.ContainsAny(r.User, "\n\x00"):
		return "", fmt.Errorf("encode REQ: invalid user %q", r.User)
	case r.Service == "" || strings.ContainsAny(r.Service, " \n\x00"):
		return "", fmt.Errorf("encode REQ: invalid service %q", r.Service)
	case strings.IndexByte(r.Args, 0) >= 0:
		return "", fmt.Errorf("encode REQ: %w", ErrNULInBody)
	}
	var b strings.Builder
	if r.User != "" {
		b.WriteString("SECURITY USER " + r.User + "\n")
	}
	b.WriteString("SERVICE " + r.Service + "\n")
	b.WriteString(r.Args)
	return b.String(), nil
}

// Options parses the first OPTIONS line of the arguments the way amdumpd
// does: lines split on LF, the first one starting with "OPTIONS " wins.
func (r Request) Options() Options {
	for _, line := range strings.Split(r.Args, "\n") {
		if v, ok := strings.CutPrefix(line, "OPTIONS "); ok {
			return ParseOptions(v)
		}
	}
	return nil
}

// Option is one item of an OPTIONS line: key=value, or a bare word (Value
// empty).
type Option struct {
	Key, Value string
}

// Options is the ordered list of items of an OPTIONS line.
type Options []Option

// ParseOptions splits the value of an OPTIONS line on ';', ignoring empty
// items, each split at its first '='.
func ParseOptions(s string) Options {
	var opts Options
	for _, item := range strings.Split(s, ";") {
		if item == "" {
			continue
		}
		k, v, _ := strings.Cut(item, "=")
		opts = append(opts, Option{Key: k, Value: v})
	}
	return opts
}

// Get returns the value of the first item named key.
func (o Options) Get(key string) (string, bool) {
	for _, opt := range o {
		if opt.Key == key {
			return opt.Value, true
		}
	}
	return "", false
}

// String encodes the items as amservice does: each followed by ';'.
// Characters that would split an item (';', LF, NUL, and '=' in a key) are
// dropped.
func (o Options) String() string {
	var b strings.Builder
	for _, opt := range o {
		k := dropBytes(opt.Key, ";\n\x00=")
		if k == "" {
			continue
		}
		b.WriteString(k)
		if v := dropBytes(opt.Value, ";\n\x00"); v != "" {
			b.WriteString("=" + v)
		}
		b.WriteByte(';')
	}
	return b.String()
}

// dropBytes removes the bytes of set from s, leaving every other byte
// (valid UTF-8 or not) as it is.
func dropBytes(s, set string) string {
	if !strings.ContainsAny(s, set) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// StreamRef names one stream of a CONNECT line: amdumpd always announces a
// single stream named CTL.
type StreamRef struct {
	Name string
	ID   int64 // amandad writes -1 for a stream it could not map
}

// Reply is the body of a REP packet (and, with only Errors, of a NAK):
//
//	"CONNECT CTL 499999" LF LF        success: the streams to open
//	"ERROR <text>" LF ... LF          failure
type Reply struct {
	Streams []StreamRef // from the CONNECT line
	Errors  []string    // ERROR lines, without the "ERROR " prefix
	Lines   []string    // every other non-empty line, verbatim
}

// ParseReply decodes a REP or NAK body. A malformed CONNECT line is kept in
// Lines.
func ParseReply(body string) Reply {
	var r Reply
	for _, line := range strings.Split(body, "\n") {
		switch {
		case line == "":
		case strings.HasPrefix(line, "ERROR "):
			r.Errors = append(r.Errors, strings.TrimPrefix(line, "ERROR "))
		case strings.HasPrefix(line, "CONNECT ") && r.Streams == nil:
			refs, ok := parseConnect(strings.TrimPrefix(line, "CONNECT "))
			if !ok {
				r.Lines = append(r.Lines, line)
				continue
			}
			r.Streams = refs
		default:
			r.Lines = append(r.Lines, line)
		}
	}
	return r
}

func parseConnect(s string) ([]StreamRef, bool) {
	words := strings.Fields(s)
	if len(words) == 0 || len(words)%2 != 0 {
		return nil, false
	}
	refs := make([]StreamRef, 0, len(words)/2)
	for i := 0; i < len(words); i += 2 {
		id, err := strconv.ParseInt(words[i+1], 10, 64)
		if err != nil {
			return nil, false
		}
		refs = append(refs, StreamRef{Name: words[i], ID: id})
	}
	return refs, true
}

// Stream returns the id of the stream called name.
func (r Reply) Stream(name string) (int64, bool) {
	for _, s := range r.Streams {
		if s.Name == name {
			return s.ID, true
		}
	}
	return 0, false
}

// Encode returns the body: the CONNECT line, the other lines, the ERROR
// lines, then the empty line that ends every reply.
func (r Reply) Encode() string {
	var b strings.Builder
	if len(r.Streams) > 0 {
		b.WriteString("CONNECT")
		for _, s := range r.Streams {
			b.WriteString(" " + s.Name + " " + strconv.FormatInt(s.ID, 10))
		}
		b.WriteByte('\n')
	}
	for _, l := range r.Lines {
		b.WriteString(oneLine(l) + "\n")
	}
	for _, e := range r.Errors {
		b.WriteString("ERROR " + oneLine(e) + "\n")
	}
	b.WriteByte('\n')
	return b.String()
}

// NAKBody returns the body of a NAK carrying one error: "ERROR <text>" LF.
func NAKBody(text string) string { return "ERROR " + oneLine(text) + "\n" }

// oneLine keeps a text on one line (LF becomes a space) and free of
// NULs; other bytes
// are kept as they are.
func oneLine(s string) string {
	return strings.ReplaceAll(dropBytes(s, "\x00"), "\n", " ")
}
