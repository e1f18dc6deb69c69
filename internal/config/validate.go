package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/holdfast-backup/holdfast/internal/blob"
)

// problem is one invalid value found by validate, named by its key path
// ("disks[1].compression").
type problem struct {
	key string
	msg string
	// other is the key path of an earlier value this one repeats or
	// clashes with; the message then reads "msg (first at <other>); fix".
	other string
	fix   string
	// cross marks problems that involve more than one value; they are
	// dropped while the file has other errors, which could cause them.
	cross bool
}

func (p problem) text(where func(key string) string) string {
	s := p.msg
	if p.other != "" {
		s += " (first at " + where(p.other) + ")"
	}
	if p.fix != "" {
		s += "; " + p.fix
	}
	return s
}

// Validate checks a Config as Parse would, for configs built in code. Its
// errors name key paths instead of lines.
func (c *Config) Validate() error {
	var errs []*Error
	for _, p := range validate(c) {
		errs = append(errs, &Error{Config: c.Name, Key: p.key, Msg: p.text(func(k string) string { return k })})
	}
	return joinErrors(errs)
}

// validate checks every value of c and how values relate.
func validate(c *Config) []problem {
	var ps []problem
	add := func(key, msg string) { ps = append(ps, problem{key: key, msg: msg}) }

	if why := nameProblem(c.Name); why != "" {
		add("", fmt.Sprintf("invalid config name %q: %s", c.Name, why))
	}
	r := c.Repository
	switch r.Kind {
	case "":
		add("repository", "is required; set it to a directory (repository: /var/lib/holdfast/repo) or to s3://bucket/prefix")
	case RepoLocal:
		switch {
		case r.Path == "":
			add("repository", "is required; set it to a directory (repository: /var/lib/holdfast/repo) or to s3://bucket/prefix")
		case !filepath.IsAbs(r.Path):
			add("repository", fmt.Sprintf("%q is not an absolute path; write the full path, e.g. /var/lib/holdfast/repo", r.Path))
		case filepath.Clean(r.Path) != r.Path:
			add("repository", fmt.Sprintf("%q is not a clean path; write %s", r.Path, filepath.Clean(r.Path)))
		}
		if r.S3 != nil {
			ps = append(ps, problem{key: "s3", msg: "is only used with an s3:// repository; remove it, or set repository: s3://bucket/prefix", cross: true})
		}
	case RepoS3:
		if r.S3 == nil {
			add("s3", "is required with an s3:// repository; add an s3: block with access_key and secret_key_file")
			break
		}
		ps = append(ps, s3Problems(r.S3)...)
		if r.Path != "" {
			add("repository", "an S3 repository has no local path; clear Repository.Path")
		}
	default:
		add("repository", fmt.Sprintf("kind %q is unknown; use %s or %s", r.Kind, RepoLocal, RepoS3))
	}

	if len(c.Disks) == 0 {
		add("disks", "is required; list at least one disk with host, disk and postgres")
	}
	diskAt := map[[2]string]int{}
	hasDisks := map[string]bool{}
	for i, d := range c.Disks {
		k := fmt.Sprintf("disks[%d]", i)
		switch {
		case d.Host == "":
			add(k+".host", "is required; write the client's host name, e.g. host: db1")
		case hostProblem(d.Host) != "":
			add(k+".host", fmt.Sprintf("%q is not a valid host name: %s", d.Host, hostProblem(d.Host)))
		case strings.ToLower(d.Host) != d.Host:
			add(k+".host", fmt.Sprintf("%q is not in lower case; write %s", d.Host, strings.ToLower(d.Host)))
		}
		switch {
		case d.Disk == "":
			add(k+".disk", "is required; write the disk name clients use, e.g. disk: pg-main")
		case diskProblem(d.Disk) != "":
			add(k+".disk", fmt.Sprintf("%q is not a valid disk name: %s", d.Disk, diskProblem(d.Disk)))
		}
		if d.Postgres.IsZero() {
			add(k+".postgres", `is required; write how to reach PostgreSQL, e.g. postgres: "host=/run/postgresql user=backup"`)
		} else if _, why := parseConnInfo(d.Postgres.Reveal()); why != "" {
			add(k+".postgres", why)
		}
		ps = append(ps, diskOptionProblems(k, d)...)
		if d.Host == "" || d.Disk == "" {
			continue
		}
		hasDisks[d.Host] = true
		id := [2]string{d.Host, d.Disk}
		if j, dup := diskAt[id]; dup {
			ps = append(ps, problem{key: k, other: fmt.Sprintf("disks[%d]", j), cross: true,
				msg: fmt.Sprintf("disk %q of host %q is defined twice", d.Disk, d.Host),
				fix: "remove one, or give it another disk name"})
			continue
		}
		diskAt[id] = i
	}

	type addrAt struct {
		p    netip.Prefix
		host int
		key  string
	}
	var addrs []addrAt
	hostAt := map[string]int{}
	tlsAt := map[string]string{}
	for i, h := range c.Hosts {
		k := fmt.Sprintf("hosts[%d]", i)
		switch {
		case h.Name == "":
			add(k+".name", "is required; write the client's host name as its disks have it, e.g. name: db1")
		case hostProblem(h.Name) != "":
			add(k+".name", fmt.Sprintf("%q is not a valid host name: %s", h.Name, hostProblem(h.Name)))
		case strings.ToLower(h.Name) != h.Name:
			add(k+".name", fmt.Sprintf("%q is not in lower case; write %s", h.Name, strings.ToLower(h.Name)))
		default:
			if j, dup := hostAt[h.Name]; dup {
				ps = append(ps, problem{key: k + ".name", other: fmt.Sprintf("hosts[%d].name", j), cross: true,
					msg: fmt.Sprintf("host %q is listed twice", h.Name),
					fix: "merge the two entries"})
				break
			}
			hostAt[h.Name] = i
			if !hasDisks[h.Name] {
				ps = append(ps, problem{key: k + ".name", cross: true,
					msg: fmt.Sprintf("host %q has no disks in this config; add disks for it, or remove the entry", h.Name)})
			}
		}
		for j, p := range h.Addresses {
			ak := fmt.Sprintf("%s.addresses[%d]", k, j)
			switch {
			case !p.IsValid():
				add(ak, "is not a valid address; write an IP address or a CIDR prefix such as 10.0.0.0/24")
				continue
			case p.Addr().Is4In6():
				add(ak, fmt.Sprintf("%s is an IPv4-mapped address; write the IPv4 address %s", p, p.Addr().Unmap()))
				continue
			case p != p.Masked():
				add(ak, fmt.Sprintf("%s has bits set after the /%d prefix; write %s for the network, or %s alone for one address",
					p, p.Bits(), p.Masked(), p.Addr()))
				continue
			}
			for _, q := range addrs {
				if q.host != i && q.p.Overlaps(p) {
					ps = append(ps, problem{key: ak, other: q.key, cross: true,
						msg: fmt.Sprintf("%s overlaps %s of host %q", prefixString(p), prefixString(q.p), c.Hosts[q.host].Name),
						fix: "an address must identify one host; narrow one of them"})
					break
				}
			}
			addrs = append(addrs, addrAt{p, i, ak})
		}
		for j, u := range h.Users {
			if why := userProblem(u); why != "" {
				add(fmt.Sprintf("%s.users[%d]", k, j), why)
			}
		}
		for j, t := range h.TLSNames {
			tk := fmt.Sprintf("%s.tls_names[%d]", k, j)
			switch {
			case hostProblem(t) != "":
				add(tk, fmt.Sprintf("%q is not a valid certificate name: %s", t, hostProblem(t)))
			case strings.ToLower(t) != t:
				add(tk, fmt.Sprintf("%q is not in lower case; write %s", t, strings.ToLower(t)))
			default:
				if other, dup := tlsAt[t]; dup {
					ps = append(ps, problem{key: tk, other: other, cross: true,
						msg: fmt.Sprintf("certificate name %q is given twice", t),
						fix: "a certificate name must identify one host; remove one"})
					break
				}
				tlsAt[t] = tk
			}
		}
	}
	return ps
}

// diskOptionProblems checks the settings a disk can take from defaults.
func diskOptionProblems(k string, d Disk) []problem {
	var ps []problem
	for _, o := range []struct {
		key string
		e   enum
		v   string
	}{
		{"compression", compressions, d.Compression},
		{"checksums", checksumAlgs, d.Checksums},
		{"level", levels, d.Level},
		{"wal", walMethods, d.WAL},
		{"checkpoint", checkpoints, d.Checkpoint},
	} {
		if why := o.e.problem(o.v); why != "" {
			ps = append(ps, problem{key: k + "." + o.key, msg: why})
		}
	}
	if d.MaxRate != 0 && (d.MaxRate < MinMaxRate || d.MaxRate > MaxMaxRate) {
		ps = append(ps, problem{key: k + ".max_rate", msg: fmt.Sprintf("%d kB/s is out of range; use 0 for no limit, or %d to %d", d.MaxRate, MinMaxRate, MaxMaxRate)})
	}
	if why := serverCompressionProblem(d.ServerCompression); why != "" {
		ps = append(ps, problem{key: k + ".server_compression", msg: why})
	}
	return ps
}

func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// serverCompressionProblem checks a BASE_BACKUP COMPRESSION value with its
// COMPRESSION_DETAIL, by PostgreSQL's rules (src/common/compression.c).
func serverCompressionProblem(s string) string {
	if s == "" {
		return ""
	}
	alg, detail, hasDetail := strings.Cut(s, ":")
	var lo, hi, def int
	switch alg {
	case "gzip":
		lo, hi, def = 1, 9, -1
	case "lz4":
		lo, hi, def = 1, 12, 0
	case "zstd":
		lo, hi, def = -131072, 22, 3
	default:
		return fmt.Sprintf("%q is not a server compression; use gzip, lz4 or zstd, optionally with a level (zstd:5) or options (zstd:level=5,workers=4,long), or leave it empty", alg)
	}
	if !hasDetail {
		return ""
	}
	level := func(v string) string {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return fmt.Sprintf("%q: level %q is not a whole number; write e.g. %s:level=5", s, v, alg)
		case (n < lo || n > hi) && n != def:
			return fmt.Sprintf("%q: %s level %d is out of range; use %d to %d", s, alg, n, lo, hi)
		}
		return ""
	}
	if detail == "" {
		return fmt.Sprintf("%q: the detail after ':' is empty; write e.g. %s:5, or remove the ':'", s, alg)
	}
	if _, err := strconv.Atoi(detail); err == nil {
		return level(detail)
	}
	for item := range strings.SplitSeq(detail, ",") {
		kw, val, hasVal := strings.Cut(item, "=")
		var why string
		switch {
		case kw == "":
			why = fmt.Sprintf("%q: an option is empty; remove the extra ','", s)
		case kw != "level" && kw != "workers" && kw != "long":
			why = fmt.Sprintf("%q: %q is not a compression option; use level, workers or long", s, kw)
		case kw != "level" && alg != "zstd":
			why = fmt.Sprintf("%q: %s does not take %s; remove it or use zstd", s, alg, kw)
		case kw == "long":
			if hasVal && !isPGBool(val) {
				why = fmt.Sprintf("%q: long=%s is not a boolean; write long, long=on or long=off", s, val)
			}
		case !hasVal:
			why = fmt.Sprintf("%q: %s needs a value, e.g. %s=4", s, kw, kw)
		case kw == "level":
			why = level(val)
		default: // workers
			if n, err := strconv.Atoi(val); err != nil || n < 0 {
				why = fmt.Sprintf("%q: workers=%s is not a whole number of 0 or more", s, val)
			}
		}
		if why != "" {
			return why
		}
	}
	return ""
}

func isPGBool(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "1", "0":
		return true
	}
	return false
}

func userProblem(u string) string {
	const rule = "use letters, digits, '.', '_' and '-' (and a final '$'), e.g. amandabackup"
	if u == "" || len(u) > 64 {
		return fmt.Sprintf("%q is not a user name: it must be 1 to 64 bytes; %s", u, rule)
	}
	body := strings.TrimSuffix(u, "$")
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !isAlnum(c) && c != '_' && (i == 0 || c != '.' && c != '-') {
			return fmt.Sprintf("%q is not a user name: %s at byte %d; %s", u, describeByte(body, i), i, rule)
		}
	}
	if body == "" {
		return fmt.Sprintf("%q is not a user name; %s", u, rule)
	}
	return ""
}

func s3Problems(s *S3Config) []problem {
	var ps []problem
	add := func(key, msg string) { ps = append(ps, problem{key: key, msg: msg}) }
	if why := bucketProblem(s.Bucket); why != "" {
		add("repository", why)
	}
	if s.Prefix != "" && blob.CheckKey(s.Prefix) != nil {
		add("repository", fmt.Sprintf("the key prefix %q has an empty, '.' or '..' segment, a NUL or a backslash; fix the path after the bucket name", s.Prefix))
	}
	if why := endpointProblem(s.Endpoint); why != "" {
		add("s3.endpoint", why)
	}
	if !isRegion(s.Region) {
		add("s3.region", fmt.Sprintf("%q is not a region name; write e.g. us-east-1", s.Region))
	}
	switch {
	case s.AccessKey == "":
		add("s3.access_key", "is required; write the access key ID, e.g. access_key: holdfast")
	case strings.ContainsFunc(s.AccessKey, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		add("s3.access_key", "contains white space or a control character; write the access key ID alone")
	}
	if s.SecretKey.IsZero() {
		add("s3", "has no secret key; add secret_key_file: /etc/holdfast/s3.secret, or secret_key_env: VARIABLE")
	}
	return ps
}

func bucketProblem(b string) string {
	const rule = "use 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit"
	if b == "" {
		return "the bucket name is missing; write s3://bucket/prefix"
	}
	bad := len(b) < 3 || len(b) > 63 || !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) || strings.Contains(b, "..")
	for i := 0; i < len(b) && !bad; i++ {
		c := b[i]
		bad = !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-')
	}
	if bad {
		return fmt.Sprintf("%q is not a valid S3 bucket name; %s", b, rule)
	}
	if a, err := netip.ParseAddr(b); err == nil && a.Is4() {
		return fmt.Sprintf("%q is an IP address, not a bucket name; %s", b, rule)
	}
	return ""
}

func endpointProblem(e string) string {
	const example = "e.g. s3.amazonaws.com or 127.0.0.1:9000"
	if e == "" {
		return "is empty; write host or host:port, " + example
	}
	if strings.Contains(e, "://") {
		return fmt.Sprintf("%q has a scheme; write only host or host:port (and tls: false for plain HTTP)", e)
	}
	host := e
	if h, port, err := net.SplitHostPort(e); err == nil {
		host = h
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("%q has a bad port; use 1 to 65535, %s", e, example)
		}
	}
	if _, err := netip.ParseAddr(host); err != nil && hostProblem(host) != "" {
		return fmt.Sprintf("%q is not host or host:port; write %s", e, example)
	}
	return ""
}

func isRegion(r string) bool {
	if r == "" || len(r) > 64 {
		return false
	}
	for i := 0; i < len(r); i++ {
		if c := r[i]; !isAlnum(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
