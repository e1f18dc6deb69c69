package backup

import (
	"fmt"
	"strings"
)

// Target is one disk to back up, as plain values. The composition root
// builds it from the config.
type Target struct {
	Config          string
	Host            string
	Disk            string // the disk name clients use
	DiskKey         string // path-safe encoding of Disk
	ConnInfo        string // may hold a password: never log or print it
	ConnDisplay     string // ConnInfo with secrets redacted, for messages
	Compression     string // zstd | none
	Checksums       string // manifest checksum algorithm
	Level           string // full | incremental | auto
	WAL             string // stream | fetch
	Checkpoint      string // fast | spread
	MaxRate         int    // kB/s, 0 = unlimited
	VerifyChecksums bool
	// ServerCompression asks the server to compress ("gzip", "lz4",
	// "zstd", optionally ":detail"); Holdfast decompresses on arrival and
	// stores its own framed zstd, so this only saves network bandwidth.
	ServerCompression string
}

func (t Target) String() string {
	return fmt.Sprintf("%s/%s/%s", t.Config, t.Host, t.Disk)
}

func (t Target) objectSuffix() string {
	if strings.EqualFold(t.Compression, "none") {
		return ".tar"
	}
	return ".tar.zst"
}
