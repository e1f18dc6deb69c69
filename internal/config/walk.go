package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// walker turns YAML nodes into a Config. It checks shapes and types and
// converts values; validate then checks the values. Every key path it sees
// is kept with its node so validate's problems can be given a line.
type walker struct {
	file    string
	errs    []*Error
	pos     map[string]*yaml.Node // key path -> its value node ("" is the root)
	bad     []string              // key paths whose values could not be read
	meant   []string              // known keys that unknown keys were probably meant to be
	secrets []secretSite          // secrets written in the file itself
}

// secretSite is a secret written in the config file.
type secretSite struct {
	key  string
	node *yaml.Node
	fix  string // how to keep it out of the file instead
}

// field is a known key of a mapping and what to do with its value.
type field struct {
	name string
	set  func(key string, v *yaml.Node)
}

func (w *walker) errorAt(n *yaml.Node, key, msg string) *Error {
	e := &Error{File: w.file, Key: key, Msg: msg}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

// report records an error that leaves the value usable.
func (w *walker) report(n *yaml.Node, key, format string, args ...any) {
	w.errs = append(w.errs, w.errorAt(n, key, fmt.Sprintf(format, args...)))
}

// fail records an error about a value that could not be read; validate's
// findings about it (a "missing" value, say) are then not reported.
func (w *walker) fail(n *yaml.Node, key, format string, args ...any) {
	w.report(n, key, format, args...)
	w.bad = append(w.bad, key)
}

// muted reports whether a problem at key may be an effect of a value that
// could not be read, or is a key reported as misspelt.
func (w *walker) muted(key string) bool {
	return slices.Contains(w.meant, key) ||
		slices.ContainsFunc(w.bad, func(b string) bool { return within(b, key) || within(key, b) })
}

// within reports whether key is path or lies inside it.
func within(path, key string) bool {
	if path == "" || key == path {
		return true
	}
	return strings.HasPrefix(key, path) && (key[len(path)] == '.' || key[len(path)] == '[')
}

func parentKey(key string) string {
	if i := strings.LastIndexAny(key, ".["); i >= 0 {
		return key[:i]
	}
	return ""
}

func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// locate finds the node to point at for a problem at key: its own value,
// the defaults entry a disk inherited it from, or the nearest enclosing
// value that is in the file.
func (w *walker) locate(key string) (string, *yaml.Node) {
	if n, ok := w.pos[key]; ok {
		return key, n
	}
	if rest, ok := strings.CutPrefix(key, "disks["); ok {
		if _, opt, ok := strings.Cut(rest, "]."); ok {
			if n, ok := w.pos["defaults."+opt]; ok {
				return "defaults." + opt, n
			}
		}
	}
	for k := parentKey(key); ; k = parentKey(k) {
		if n, ok := w.pos[k]; ok || k == "" {
			return key, n
		}
	}
}

var plainTags = map[string]bool{"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true, "!!timestamp": true}

// usable reports, after saying why not, whether n can be read at all.
func (w *walker) usable(n *yaml.Node, key string) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		w.fail(n, key, "YAML aliases (*%s) are not supported; write the value out, or put shared disk settings under defaults:", n.Value)
		return false
	case n.Kind == yaml.ScalarNode && !plainTags[n.ShortTag()],
		n.Kind == yaml.MappingNode && n.ShortTag() != "!!map",
		n.Kind == yaml.SequenceNode && n.ShortTag() != "!!seq":
		w.fail(n, key, "the YAML tag %q is not supported here; remove it", n.Tag)
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if isNull(n) {
		return "empty"
	}
	return "a single value"
}

func fieldNames(fields []field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return names
}

// mapping reads a mapping whose keys must be among fields, then calls the
// setters in the order of fields (so defaults are read before disks). A key
// with an empty value counts as absent.
func (w *walker) mapping(n *yaml.Node, key, owner string, fields []field) {
	if !w.usable(n, key) {
		return
	}
	if n.Kind != yaml.MappingNode {
		w.fail(n, key, "must be a mapping of keys, not %s; the keys of %s are %s", describe(n), owner, strings.Join(fieldNames(fields), ", "))
		return
	}
	seen := map[string]*yaml.Node{}
	values := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			w.report(k, key, "has a key that is %s; keys are plain words such as %s", describe(k), fields[0].name)
			continue
		}
		if k.ShortTag() == "!!merge" {
			w.fail(k, key, "merge keys (<<) are not supported; put shared disk settings under defaults:")
			continue
		}
		sub := joinKey(key, quoteIfNeeded(k.Value))
		if first, dup := seen[k.Value]; dup {
			w.report(k, sub, "is set twice in this mapping (first at line %d); keep one", first.Line)
			continue
		}
		seen[k.Value] = k
		if !slices.ContainsFunc(fields, func(f field) bool { return f.name == k.Value }) {
			if s := suggest(k.Value, fieldNames(fields)); s != "" {
				w.report(k, sub, "unknown key; did you mean %s?", s)
				w.meant = append(w.meant, joinKey(key, s))
			} else {
				w.report(k, sub, "unknown key; the keys of %s are %s", owner, strings.Join(fieldNames(fields), ", "))
			}
			continue
		}
		values[k.Value] = v
		w.pos[sub] = v
	}
	for _, f := range fields {
		if v, ok := values[f.name]; ok && !isNull(v) {
			f.set(joinKey(key, f.name), v)
		}
	}
}

// list calls item for every element of a sequence, so that c.Disks[i]
// always comes from disks[i] even when an element is broken.
func (w *walker) list(n *yaml.Node, key, expect string, item func(key string, n *yaml.Node)) {
	if !w.usable(n, key) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.fail(n, key, "must be a list %s, not %s", expect, describe(n))
		return
	}
	for i, it := range n.Content {
		ik := fmt.Sprintf("%s[%d]", key, i)
		w.pos[ik] = it
		item(ik, it)
	}
}

// strs reads a list of single values; each gets its own key path. An
// element that is not a single value is passed on as "".
func (w *walker) strs(n *yaml.Node, key, expect string, each func(key string, n *yaml.Node, s string)) {
	w.list(n, key, expect, func(ik string, it *yaml.Node) {
		s, _ := w.str(ik, it)
		each(ik, it, s)
	})
}

// str reads a single value. Numbers, booleans and dates are taken as
// written: disk: 0123 is the disk "0123".
func (w *walker) str(key string, n *yaml.Node) (string, bool) {
	if !w.usable(n, key) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		w.fail(n, key, "must be a single value, not %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (w *walker) text(dst *string) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		if s, ok := w.str(key, n); ok {
			*dst = s
		}
	}
}

// hostName reads a host name and lower-cases it when it is valid.
func (w *walker) hostName(dst *string) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		if s, ok := w.str(key, n); ok {
			*dst = lowerIfHost(s)
		}
	}
}

func lowerIfHost(s string) string {
	if hostProblem(s) == "" {
		return strings.ToLower(s)
	}
	return s
}

// enum reads one word of e, stored in its canonical case when it is one.
func (w *walker) enum(dst *string, e enum) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		if s, ok := w.str(key, n); ok {
			*dst = e.canon(s)
		}
	}
}

func (w *walker) integer(dst *int, hint string) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		s, ok := w.str(key, n)
		if !ok {
			return
		}
		digits := strings.Trim(strings.TrimLeft(s, "+-"), "0123456789") == "" && strings.ContainsAny(s, "0123456789")
		switch {
		case n.ShortTag() == "!!int":
		case digits && n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0:
			w.fail(n, key, "%q is text, not a number; remove the quotes", s)
			return
		case digits:
			w.fail(n, key, "%s is far too large; %s", s, hint)
			return
		default:
			w.fail(n, key, "%q is not a whole number; %s", s, hint)
			return
		}
		// Decimal unless a 0x, 0o or 0b prefix says otherwise: 0123 is 123.
		base := 10
		if t := strings.TrimLeft(s, "+-"); len(t) > 1 && t[0] == '0' && strings.ContainsAny(t[1:2], "xXoObB") {
			base = 0
		}
		v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), base, strconv.IntSize)
		if err != nil {
			w.fail(n, key, "%q is not a whole number in range; %s", s, hint)
			return
		}
		*dst = int(v)
	}
}

func (w *walker) boolean(dst *bool) func(string, *yaml.Node) {
	return func(key string, n *yaml.Node) {
		s, ok := w.str(key, n)
		if !ok {
			return
		}
		if n.ShortTag() != "!!bool" {
			w.fail(n, key, "%q is not true or false; write true or false", s)
			return
		}
		*dst = strings.EqualFold(s, "true")
	}
}

const diskExample = "(each a mapping with host, disk and postgres)"

// config reads the whole file into c.
func (w *walker) config(root *yaml.Node, c *Config) {
	var (
		repoKind, repoPath, bucket, prefix string
		s3                                 *S3Config
	)
	tmpl := defaultDisk()
	w.mapping(root, "", "a config", []field{
		{"repository", func(key string, n *yaml.Node) {
			s, ok := w.str(key, n)
			if !ok {
				return
			}
			scheme, rest, isURL := strings.Cut(s, "://")
			switch {
			case !isURL:
				repoKind, repoPath = RepoLocal, s
				if filepath.IsAbs(s) {
					repoPath = filepath.Clean(s)
				}
			case strings.EqualFold(scheme, "s3"):
				repoKind = RepoS3
				bucket, prefix, _ = strings.Cut(rest, "/")
				prefix = strings.TrimSuffix(prefix, "/")
			default:
				w.fail(n, key, "the scheme %q is not supported; use a directory (/var/lib/holdfast/repo) or s3://bucket/prefix", scheme)
			}
		}},
		{"s3", func(key string, n *yaml.Node) { s3 = w.s3(key, n) }},
		{"defaults", func(key string, n *yaml.Node) {
			w.mapping(n, key, "defaults", w.diskOptions(&tmpl))
		}},
		{"disks", func(key string, n *yaml.Node) {
			w.list(n, key, diskExample, func(ik string, it *yaml.Node) {
				c.Disks = append(c.Disks, w.disk(ik, it, tmpl))
			})
		}},
		{"hosts", func(key string, n *yaml.Node) {
			w.list(n, key, "(each a mapping with name and addresses)", func(ik string, it *yaml.Node) {
				c.Hosts = append(c.Hosts, w.host(ik, it))
			})
		}},
		{"server", func(key string, n *yaml.Node) {
			w.mapping(n, key, "server", []field{
				{"require_reserved_port", w.boolean(&c.Server.RequireReservedPort)},
			})
		}},
	})
	c.Repository = Repository{Kind: repoKind, Path: repoPath, S3: s3}
	if repoKind == RepoS3 && s3 != nil {
		s3.Bucket, s3.Prefix = bucket, prefix
	}
}

// diskOptions are the keys a disk shares with defaults.
func (w *walker) diskOptions(d *Disk) []field {
	return []field{
		{"compression", w.enum(&d.Compression, compressions)},
		{"checksums", w.enum(&d.Checksums, checksumAlgs)},
		{"level", w.enum(&d.Level, levels)},
		{"wal", w.enum(&d.WAL, walMethods)},
		{"checkpoint", w.enum(&d.Checkpoint, checkpoints)},
		{"max_rate", w.integer(&d.MaxRate, "write the limit in kB/s, e.g. max_rate: 10240, or 0 for none")},
		{"verify_checksums", w.boolean(&d.VerifyChecksums)},
		{"server_compression", func(key string, n *yaml.Node) {
			s, ok := w.str(key, n)
			if !ok {
				return
			}
			alg, detail, hasDetail := strings.Cut(s, ":")
			if a := strings.ToLower(alg); slices.Contains([]string{"gzip", "lz4", "zstd", "none"}, a) {
				alg = a
			}
			switch {
			case alg == "none" && !hasDetail:
				s = ""
			case hasDetail:
				s = alg + ":" + detail
			default:
				s = alg
			}
			d.ServerCompression = s
		}},
	}
}

func (w *walker) disk(key string, n *yaml.Node, tmpl Disk) Disk {
	d := tmpl
	d.Line = n.Line
	fields := []field{
		{"host", w.hostName(&d.Host)},
		{"disk", w.text(&d.Disk)},
		{"postgres", func(key string, n *yaml.Node) {
			s, ok := w.str(key, n)
			if !ok {
				return
			}
			if _, why := parseConnInfo(s); why != "" {
				w.fail(n, key, "%s", why)
				return
			}
			d.Postgres = ConnInfo{s}
			if hasSecret(s) {
				w.secrets = append(w.secrets, secretSite{key, n, "move the password to a password file (passfile=... or PGPASSFILE)"})
			}
		}},
	}
	w.mapping(n, key, "a disk", append(fields, w.diskOptions(&d)...))
	return d
}

func (w *walker) host(key string, n *yaml.Node) Host {
	h := Host{Line: n.Line}
	w.mapping(n, key, "a host", []field{
		{"name", w.hostName(&h.Name)},
		{"addresses", func(key string, n *yaml.Node) {
			w.strs(n, key, `of IP addresses or CIDR prefixes, e.g. ["10.0.0.5", "10.0.1.0/24"]`, func(ik string, it *yaml.Node, s string) {
				p, why := parseAddress(s)
				if why != "" && s != "" {
					w.fail(it, ik, "%s", why)
				}
				h.Addresses = append(h.Addresses, p)
			})
		}},
		{"users", func(key string, n *yaml.Node) {
			w.strs(n, key, `of user names, e.g. ["amandabackup"]`, func(_ string, _ *yaml.Node, s string) {
				h.Users = append(h.Users, s)
			})
		}},
		{"tls_names", func(key string, n *yaml.Node) {
			w.strs(n, key, `of certificate names, e.g. ["db1.example.com"]`, func(_ string, _ *yaml.Node, s string) {
				h.TLSNames = append(h.TLSNames, lowerIfHost(s))
			})
		}},
	})
	return h
}

// parseAddress reads an IP address (a one-address prefix) or a CIDR
// prefix. IPv4-mapped IPv6 forms become IPv4.
func parseAddress(s string) (netip.Prefix, string) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("%q is not a CIDR prefix; write e.g. 10.0.0.0/24 or fd00::/64", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p, ""
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil && hostProblem(s) == "":
		return netip.Prefix{}, fmt.Sprintf("%q is a name, not an address; list IP addresses, or leave addresses out to use the host name's forward-confirmed reverse DNS", s)
	case err != nil:
		return netip.Prefix{}, fmt.Sprintf("%q is not an IP address; write e.g. 10.0.0.5 or 10.0.0.0/24", s)
	case a.Zone() != "":
		return netip.Prefix{}, fmt.Sprintf("%q has an IPv6 zone; remove the %%%s", s, a.Zone())
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), ""
}

func (w *walker) s3(key string, n *yaml.Node) *S3Config {
	s := &S3Config{Endpoint: "s3.amazonaws.com", Region: "us-east-1", TLS: true}
	var sources []string
	secret := func(read func(v string) (string, string)) func(string, *yaml.Node) {
		return func(key string, n *yaml.Node) {
			v, ok := w.str(key, n)
			if !ok {
				return
			}
			sources = append(sources, key)
			sec, why := read(v)
			if why != "" {
				w.fail(n, key, "%s", why)
				return
			}
			s.SecretKey = NewSecret(sec)
		}
	}
	w.mapping(n, key, "s3", []field{
		{"endpoint", w.text(&s.Endpoint)},
		{"region", w.text(&s.Region)},
		{"access_key", w.text(&s.AccessKey)},
		{"secret_key_file", secret(readSecretFile)},
		{"secret_key_env", secret(readSecretEnv)},
		{"secret_key", func(key string, n *yaml.Node) {
			secret(func(v string) (string, string) { return v, "" })(key, n)
			w.secrets = append(w.secrets, secretSite{key, n, "move the key to secret_key_file or secret_key_env"})
		}},
		{"tls", w.boolean(&s.TLS)},
	})
	if len(sources) > 1 {
		first := w.pos[sources[0]]
		w.report(w.pos[sources[1]], sources[1], "%s (line %d) gives the secret key too; give it one way only, and remove one of them",
			strings.TrimPrefix(sources[0], key+"."), first.Line)
	}
	return s
}

// maxSecretFile bounds a secret key file; it holds one short line.
const maxSecretFile = 4096

func readSecretFile(path string) (string, string) {
	if !filepath.IsAbs(path) {
		return "", fmt.Sprintf("%q is not an absolute path; write the full path, e.g. /etc/holdfast/s3.secret", path)
	}
	q := quoteIfNeeded(path)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Sprintf("%s does not exist; write the secret key into it, readable only by holdfast (chmod 600)", q)
	case err != nil:
		return "", fmt.Sprintf("cannot read %s: %v", q, pathless(err))
	case !st.Mode().IsRegular():
		return "", fmt.Sprintf("%s is not a regular file; point secret_key_file at a file holding the key", q)
	case st.Mode().Perm()&0o004 != 0:
		return "", fmt.Sprintf("any user can read %s (mode %04o); run chmod o-r %s", q, st.Mode().Perm(), q)
	case st.Size() > maxSecretFile:
		return "", fmt.Sprintf("%s is %d bytes; it should hold only the secret key", q, st.Size())
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Sprintf("cannot read %s: %v", q, pathless(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Sprintf("cannot read %s: %v", q, pathless(err))
	}
	v := string(bytes.TrimSpace(data))
	switch {
	case v == "":
		return "", fmt.Sprintf("%s is empty; write the secret key into it", q)
	case strings.ContainsAny(v, "\r\n"):
		return "", fmt.Sprintf("%s has more than one line; keep only the secret key", q)
	}
	return v, ""
}

func readSecretEnv(name string) (string, string) {
	ok := name != "" && !('0' <= name[0] && name[0] <= '9')
	for i := 0; i < len(name) && ok; i++ {
		ok = isAlnum(name[i]) || name[i] == '_'
	}
	if !ok {
		return "", fmt.Sprintf("%q is not an environment variable name; use letters, digits and '_', e.g. HOLDFAST_S3_SECRET", name)
	}
	v, set := os.LookupEnv(name)
	switch {
	case !set:
		return "", fmt.Sprintf("the environment variable %s is not set; set it for holdfast, or use secret_key_file", name)
	case v == "":
		return "", fmt.Sprintf("the environment variable %s is empty; set it to the secret key", name)
	}
	return v, ""
}

// pathless drops the path from an os error, for messages that quote the
// path themselves.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// suggest returns the word of known closest to word, if it is within two
// edits (a swap of neighbours counting as one) and closer than word is long.
func suggest(word string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(word), k); d < bestD && d < len(word) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
