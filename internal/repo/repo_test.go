package repo

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func sample() *Backup {
	p := "20261122T170102Z-a1b2c3"
	return &Backup{
		ID: "20261122T180102Z-d4e5f6", Config: "daily", Host: "db1", Disk: "pg main", Level: LevelIncremental, Parent: &p,
		PGVersion: 17, SystemIdentifier: "7710952269893484041", Timeline: 1, StartLSN: 0x7000028, EndLSN: 0x7000120,
		StartedAt: time.Date(2026, 11, 22, 18, 1, 2, 0, time.UTC), FinishedAt: time.Date(2026, 11, 22, 18, 2, 2, 0, time.UTC),
		Archives: []Archive{{Name: "base.tar", Object: "base.tar.zst", Index: "base.tar.zst.idx", Compression: "zstd", CRC32C: "0a1b2c3d"}},
	}
}

func TestMetaRoundTripAndTamper(t *testing.T) {
	b := sample()
	b.Format, b.FormatVersion = "holdfast-backup", BackupFormatVersion
	data, err := sealMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMeta("k", data)
	if err != nil {
		t.Fatalf("ParseMeta: %v", err)
	}
	if got.ID != b.ID || *got.Parent != *b.Parent || got.StartLSN != b.StartLSN {
		t.Fatalf("round trip changed the record: %+v", got)
	}
	// Every single flipped byte must be detected.
	for i := range data {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x01
		if _, err := ParseMeta("k", bad); err == nil {
			t.Fatalf("flipping byte %d (%q) went unnoticed", i, data[i])
		}
	}
}

func TestParseMetaRejects(t *testing.T) {
	for name, mut := range map[string]func(*Backup){
		"bad id":           func(b *Backup) { b.ID = "../../etc" },
		"bad level":        func(b *Backup) { b.Level = "differential" },
		"full with parent": func(b *Backup) { b.Level = LevelFull },
		"future version":   func(b *Backup) { b.FormatVersion = BackupFormatVersion + 1 },
		"escaping object":  func(b *Backup) { b.Archives[0].Object = "../x.tar" },
		"no digest":        func(b *Backup) { b.Archives[0].CRC32C = "" },
		"short digest":     func(b *Backup) { b.Archives[0].CRC32C = "0a1b2c3" },
		"upper-case hex":   func(b *Backup) { b.Archives[0].CRC32C = "0A1B2C3D" },
		"v1 with crc32c":   func(b *Backup) { b.FormatVersion = 1 },
		"v2 with xxh64":    func(b *Backup) { b.Archives[0].XXH64 = "0123456789abcdef" },
	} {
		b := sample()
		b.Format, b.FormatVersion = "holdfast-backup", BackupFormatVersion
		mut(b)
		data, _ := sealMeta(b)
		if _, err := ParseMeta("k", data); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v is neither ErrCorrupt nor ErrVersion", name, err)
		}
	}
}

// A record of backup format 1 (XXH64 digests) is still read; one from a
// newer Holdfast is refused as a version, even with fields this one does
// not know.
func TestParseMetaVersions(t *testing.T) {
	b := sample()
	b.Format, b.FormatVersion = "holdfast-backup", 1
	b.Archives[0].CRC32C, b.Archives[0].XXH64 = "", "0123456789abcdef"
	data, _ := sealMeta(b)
	if m, err := ParseMeta("k", data); err != nil || m.Archives[0].XXH64 != "0123456789abcdef" {
		t.Fatalf("format 1: %v", err)
	}
	future := []byte(`{"format": "holdfast-backup", "format_version": 3, "new_field": 1}`)
	if _, err := ParseMeta("k", future); !errors.Is(err, ErrVersion) {
		t.Fatalf("format 3 with an unknown field: %v, want ErrVersion", err)
	}
}

func TestValidID(t *testing.T) {
	if err := ValidID(NewID(time.Now())); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "latest", "20261122T170102Z-a1b2c", "20261322T170102Z-a1b2c3", "20261122T170102Z/a1b2c3", "../../../../../../x"} {
		if ValidID(bad) == nil {
			t.Errorf("ValidID(%q) accepted", bad)
		}
	}
}

func FuzzParseMeta(f *testing.F) {
	b := sample()
	b.Format, b.FormatVersion = "holdfast-backup", BackupFormatVersion
	data, _ := sealMeta(b)
	f.Add(data)
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMeta("k", data)
		if err != nil {
			return
		}
		if ValidID(m.ID) != nil {
			t.Fatalf("accepted a record with id %q", m.ID)
		}
	})
}

func TestManifestPrefix(t *testing.T) {
	if p := (Archive{Name: "base.tar"}).ManifestPrefix(); p != "" {
		t.Errorf("base archive: %q", p)
	}
	if p := (Archive{Name: "16385.tar", TablespaceID: 16385}).ManifestPrefix(); p != "pg_tblspc/16385/" {
		t.Errorf("tablespace archive: %q", p)
	}
}

// readSized reads an object of the size backup.json gives into one buffer
// and reads one byte more than that, so that a longer object is caught by
// the caller's size check; a size it does not trust is read as it comes.
func TestReadSized(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	for _, c := range []struct {
		name    string
		size    int64
		wantLen int
	}{
		{"exact", int64(len(data)), len(data)},
		{"object shorter than recorded", int64(len(data)) + 100, len(data)},
		{"object longer than recorded", 100, 101},
		{"empty record", 0, 1},
		{"negative record", -1, 0},
		{"record beyond the limit", sizedLimit + 1, len(data)},
	} {
		b, err := readSized(bytes.NewReader(data), c.size)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(b) != c.wantLen || !bytes.Equal(b, data[:len(b)]) {
			t.Errorf("%s: read %d bytes (matching the object: %v), want %d", c.name, len(b), bytes.Equal(b, data[:len(b)]), c.wantLen)
		}
		if c.size >= 0 && c.size < sizedLimit && cap(b) != int(c.size)+1 {
			t.Errorf("%s: buffer of capacity %d, want one allocation of %d", c.name, cap(b), c.size+1)
		}
	}
	failing := io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(errors.New("disk on fire")))
	if _, err := readSized(failing, int64(len(data))); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("read error: got %v", err)
	}
}
