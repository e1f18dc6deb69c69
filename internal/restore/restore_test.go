package restore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/holdfast-backup/holdfast/internal/archive"
	"github.com/holdfast-backup/holdfast/internal/blob/blobtest"
	"github.com/holdfast-backup/holdfast/internal/manifest"
	"github.com/holdfast-backup/holdfast/internal/repo"
	"github.com/holdfast-backup/holdfast/internal/restore"
)

// member is one entry of a hand-made base archive.
type member struct {
	name, link string
	typ        byte
	data       string
}

// storeBackup commits a full backup whose base archive holds exactly ms,
// with a manifest listing its regular files, into an in-memory repository.
func storeBackup(t *testing.T, ms []member) (*repo.Repo, repo.Entry) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, blobtest.NewMem())
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	var files []manifest.File
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Linkname: m.link, Mode: 0o600, Size: int64(len(m.data)), Format: tar.FormatUSTAR, ModTime: time.Unix(1700000000, 0)}
		if m.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			tw.Write([]byte(m.data))
			files = append(files, manifest.File{Path: m.name, Size: int64(len(m.data)), LastModified: "2023-11-14 22:13:20 GMT"})
		}
	}
	tw.Close()
	id := repo.NewID(time.Now())
	dir := repo.Dir("c", "h", "d", id)
	up, _ := r.Writer().Create(ctx, dir+"base.tar.zst")
	aw := archive.NewWriter(up, archive.Options{Compression: archive.Zstd})
	aw.Write(tb.Bytes())
	res, err := aw.Close()
	if err != nil {
		t.Fatalf("archive: %v", err)
	}
	up.Commit(ctx)
	iu, _ := r.Writer().Create(ctx, dir+"base.tar.zst.idx")
	iu.Write(res.Index)
	iu.Commit(ctx)
	var mb bytes.Buffer
	if err := manifest.Encode(&mb, &manifest.Manifest{Version: 2, SystemIdentifier: 1, Files: files,
		WALRanges: []manifest.WALRange{{Timeline: 1, Start: 0x1000028, End: 0x1000100}}}); err != nil {
		t.Fatal(err)
	}
	mu, _ := r.Writer().Create(ctx, repo.ManifestKey(dir))
	mu.Write(mb.Bytes())
	mu.Commit(ctx)
	b := &repo.Backup{ID: id, Config: "c", Host: "h", Disk: "d", Level: repo.LevelFull, SystemIdentifier: "1", Timeline: 1,
		ManifestSize: int64(mb.Len()), ManifestSHA256: sha(mb.Bytes()),
		Archives: []repo.Archive{{Name: "base.tar", Object: "base.tar.zst", Compression: "zstd", RawSize: res.RawSize,
			StoredSize: res.StoredSize, Index: "base.tar.zst.idx", IndexSize: int64(len(res.Index)), IndexSHA256: sha(res.Index)}}}
	if err := r.Commit(ctx, dir, b); err != nil {
		t.Fatal(err)
	}
	return r, repo.Entry{Backup: *b, Dir: dir}
}

func TestRestoreRefusesHostileArchives(t *testing.T) {
	for name, ms := range map[string][]member{
		"parent escape":       {{name: "../escaped", typ: tar.TypeReg, data: "x"}},
		"nested escape":       {{name: "base/../../escaped", typ: tar.TypeReg, data: "x"}},
		"absolute path":       {{name: "/tmp/holdfast-absolute-escape", typ: tar.TypeReg, data: "x"}},
		"symlink elsewhere":   {{name: "evil", typ: tar.TypeSymlink, link: "/"}},
		"through tblspc link": {{name: "pg_tblspc/", typ: tar.TypeDir}, {name: "pg_tblspc/16385/x", typ: tar.TypeReg, data: "x"}},
		"unknown tablespace":  {{name: "pg_tblspc/", typ: tar.TypeDir}, {name: "pg_tblspc/16385/", typ: tar.TypeSymlink, link: "/etc"}},
		"hard link":           {{name: "a", typ: tar.TypeReg, data: "x"}, {name: "b", typ: tar.TypeLink, link: "a"}},
		"device":              {{name: "dev", typ: tar.TypeChar}},
	} {
		t.Run(name, func(t *testing.T) {
			r, e := storeBackup(t, ms)
			root := t.TempDir()
			target := filepath.Join(root, "sub", "data")
			err := restore.Restore(context.Background(), r, []repo.Entry{e}, restore.Options{Target: target})
			if err == nil {
				t.Fatal("restore of a hostile archive succeeded")
			}
			if name != "unknown tablespace" && !errors.Is(err, restore.ErrUnsafe) {
				t.Errorf("refused for another reason: %v", err)
			}
			for _, p := range []string{filepath.Join(root, "escaped"), filepath.Join(root, "sub", "escaped"), "/tmp/holdfast-absolute-escape", filepath.Join(target, "evil")} {
				if _, serr := os.Lstat(p); serr == nil {
					t.Errorf("restore created %s (%v)", p, err)
				}
			}
		})
	}
}

func TestRestoreTargets(t *testing.T) {
	r, e := storeBackup(t, []member{{name: "PG_VERSION", typ: tar.TypeReg, data: "18\n"}, {name: "base/", typ: tar.TypeDir}, {name: "base/1/", typ: tar.TypeDir}, {name: "base/1/1259", typ: tar.TypeReg, data: "page"}})
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "data")
	if err := restore.Restore(ctx, r, []repo.Entry{e}, restore.Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "base/1/1259")); err != nil || string(b) != "page" {
		t.Fatalf("restored file: %q %v", b, err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("target mode: %v %v", fi.Mode(), err)
	}
	// A second restore into the now non-empty directory is refused.
	if err := restore.Restore(ctx, r, []repo.Entry{e}, restore.Options{Target: target}); !errors.Is(err, restore.ErrTarget) {
		t.Fatalf("restore into a non-empty directory: %v, want ErrTarget", err)
	}
	// Mapping a tablespace the backup does not have is refused up front.
	other := filepath.Join(t.TempDir(), "other")
	err := restore.Restore(ctx, r, []repo.Entry{e}, restore.Options{Target: other, Tablespaces: map[string]string{"/srv/ts": "/srv/new"}})
	if !errors.Is(err, restore.ErrTarget) {
		t.Fatalf("unknown tablespace mapping: %v, want ErrTarget", err)
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
