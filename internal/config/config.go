package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Config is one backup set, read from <dir>/<Name>.yaml. Defaults are
// applied: every field holds the value to use.
type Config struct {
	Name       string // the config name: the file name without .yaml
	Path       string // the file it was read from; empty for a config built in code
	Repository Repository
	Disks      []Disk // in file order; (Host, Disk) pairs are unique
	Hosts      []Host // in file order; names are unique and each has disks
	Server     Server
}

// Repository kinds.
const (
	RepoLocal = "local"
	RepoS3    = "s3"
)

// Repository says where backups are stored.
type Repository struct {
	Kind string    // RepoLocal or RepoS3
	Path string    // RepoLocal: an absolute, clean directory; empty for RepoS3
	S3   *S3Config // RepoS3 only
}

// String returns the repository as the config file writes it:
// /var/lib/holdfast/repo or s3://bucket/prefix.
func (r Repository) String() string {
	if r.Kind == RepoS3 && r.S3 != nil {
		return strings.TrimSuffix("s3://"+r.S3.Bucket+"/"+r.S3.Prefix, "/")
	}
	return r.Path
}

// S3Config is an S3-compatible object store.
type S3Config struct {
	Endpoint  string // host or host:port, no scheme; default s3.amazonaws.com
	Region    string // default us-east-1
	Bucket    string
	Prefix    string // key prefix, without leading or trailing '/'; may be empty
	AccessKey string
	SecretKey Secret // from secret_key_file, secret_key_env or secret_key
	TLS       bool   // HTTPS; default true
}

// Disk compressions: how Holdfast stores archives.
const (
	CompressionZstd = "zstd"
	CompressionNone = "none"
)

// Backup levels.
const (
	LevelAuto        = "auto" // incremental when a usable parent exists, else full
	LevelFull        = "full"
	LevelIncremental = "incremental"
)

// WAL methods.
const (
	WALStream = "stream" // a second replication connection streams WAL during the backup
	WALFetch  = "fetch"  // the server appends the WAL to base.tar at the end
)

// Checkpoint modes.
const (
	CheckpointFast   = "fast"
	CheckpointSpread = "spread"
)

// Limits of Disk.MaxRate, in kB/s, as PostgreSQL's MAX_RATE has them.
const (
	MinMaxRate = 32
	MaxMaxRate = 1048576
)

// Disk is one PostgreSQL cluster to back up: a disk of a host, in Amanda's
// words.
type Disk struct {
	Host     string   // client host name, lower case
	Disk     string   // disk name as clients use it; see ValidDisk and DiskKey
	Postgres ConnInfo // how to reach the server

	Compression       string // CompressionZstd (default) or CompressionNone
	Checksums         string // manifest checksums: CRC32C (default), SHA224, SHA256, SHA384, SHA512 or NONE
	Level             string // LevelAuto (default), LevelFull or LevelIncremental
	WAL               string // WALStream (default) or WALFetch
	Checkpoint        string // CheckpointFast (default) or CheckpointSpread
	MaxRate           int    // kB/s; 0 (default) for no limit, else MinMaxRate..MaxMaxRate
	VerifyChecksums   bool   // server verifies data-page checksums; default true
	ServerCompression string // "" (default) or gzip, lz4, zstd, optionally ":detail"

	Line int // line of the disk in the config file; 0 when built in code
}

// String names the disk as host:disk.
func (d Disk) String() string { return d.Host + ":" + d.Disk }

// Host is an Amanda client allowed to call the service.
type Host struct {
	Name      string         // a host with disks in this config, lower case
	Addresses []netip.Prefix // peer addresses; empty: forward-confirmed reverse DNS of Name
	Users     []string       // client users allowed; empty: nobody (secure by default)
	TLSNames  []string       // client-certificate names for this host, lower case
	Line      int            // line in the config file; 0 when built in code
}

// Server holds settings for `holdfast serve` that apply to this config.
type Server struct {
	// RequireReservedPort refuses peers whose source port is 1024 or above,
	// as Amanda's bsdtcp does. Default false.
	RequireReservedPort bool
}

// enum is a closed set of words for a setting.
type enum struct {
	what   string
	values []string // canonical spellings
}

var (
	compressions = enum{"compression", []string{CompressionZstd, CompressionNone}}
	checksumAlgs = enum{"checksum algorithm", []string{"CRC32C", "SHA224", "SHA256", "SHA384", "SHA512", "NONE"}}
	levels       = enum{"level", []string{LevelAuto, LevelFull, LevelIncremental}}
	walMethods   = enum{"WAL method", []string{WALStream, WALFetch}}
	checkpoints  = enum{"checkpoint mode", []string{CheckpointFast, CheckpointSpread}}
)

// canon returns the canonical spelling of s, matched without regard to
// case, or s itself if it is not one of the values.
func (e enum) canon(s string) string {
	for _, v := range e.values {
		if strings.EqualFold(s, v) {
			return v
		}
	}
	return s
}

func (e enum) problem(v string) string {
	if slices.Contains(e.values, v) {
		return ""
	}
	return fmt.Sprintf("%q is not a %s; use %s", v, e.what, orList(e.values))
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// defaultDisk holds the built-in value of every disk setting.
func defaultDisk() Disk {
	return Disk{
		Compression:     CompressionZstd,
		Checksums:       "CRC32C",
		Level:           LevelAuto,
		WAL:             WALStream,
		Checkpoint:      CheckpointFast,
		VerifyChecksums: true,
	}
}

// DisksOf returns the disks of host, in file order. Host names match without
// regard to case.
func (c *Config) DisksOf(host string) []Disk {
	var out []Disk
	for _, d := range c.Disks {
		if strings.EqualFold(d.Host, host) {
			out = append(out, d)
		}
	}
	return out
}

// Find returns the disk named disk (exactly) of host.
func (c *Config) Find(host, disk string) (Disk, bool) {
	for _, d := range c.Disks {
		if d.Disk == disk && strings.EqualFold(d.Host, host) {
			return d, true
		}
	}
	return Disk{}, false
}

// Select returns the named disks of host in the order given, each once; with
// no names, all disks of host. An unknown host or disk is an error that
// matches ErrUnknownHost or ErrUnknownDisk and lists what is known.
func (c *Config) Select(host string, disks []string) ([]Disk, error) {
	all := c.DisksOf(host)
	if len(all) == 0 {
		var hosts []string
		for _, d := range c.Disks {
			if !slices.Contains(hosts, d.Host) {
				hosts = append(hosts, d.Host)
			}
		}
		return nil, &kindError{fmt.Sprintf("config %s: no host %q; known hosts: %s", c.Name, host, quoteList(hosts)), ErrUnknownHost}
	}
	if len(disks) == 0 {
		return all, nil
	}
	out := make([]Disk, 0, len(disks))
	for i, name := range disks {
		if slices.Contains(disks[:i], name) {
			continue
		}
		d, ok := c.Find(host, name)
		if !ok {
			names := make([]string, len(all))
			for j, d := range all {
				names[j] = d.Disk
			}
			return nil, &kindError{fmt.Sprintf("config %s: no disk %q on host %q; known disks: %s", c.Name, name, all[0].Host, quoteList(names)), ErrUnknownDisk}
		}
		out = append(out, d)
	}
	return out, nil
}

// quoteList joins names with ", ", quoting those that need it.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quoteIfNeeded(n)
	}
	return strings.Join(q, ", ")
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsGraphic(r) || unicode.IsSpace(r) || strings.ContainsRune(`"',\`, r)
	}) {
		return strconv.Quote(s)
	}
	return s
}
