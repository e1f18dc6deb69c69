package incremental_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/holdfast-backup/holdfast/internal/incremental"
)

const bs = incremental.BlockSize

// version is one backup's copy of a file, as a test describes it.
type version struct {
	kind   incremental.Kind
	blocks int // Full: number of whole blocks
	tail   int // Full: bytes of a partial block after them
	trunc  uint32
	listed []uint32 // Incremental: blocks held
}

func full(blocks int) version { return version{kind: incremental.Full, blocks: blocks} }
func incr(trunc uint32, listed ...uint32) version {
	return version{kind: incremental.Incremental, trunc: trunc, listed: listed}
}

var absent = version{kind: incremental.Absent}

// image is the content of block blk as stored in source src: every block of
// every source differs, so a block taken from the wrong place shows.
func image(src int, blk uint32) []byte {
	b := make([]byte, bs)
	for i := 0; i < bs; i += 8 {
		copy(b[i:], []byte{byte(src), byte(blk), byte(blk >> 8), byte(blk >> 16), 0xa5, byte(i >> 3), byte(i >> 11), 0x5a})
	}
	return b
}

// materialize builds the Sources of a chain, chain[0] being the latest.
func materialize(chain []version) (incremental.Source, []incremental.Source) {
	srcs := make([]incremental.Source, len(chain))
	for i, v := range chain {
		s := incremental.Source{Name: fmt.Sprintf("backup%d/base/5/%d", len(chain)-1-i, 16384), Kind: v.kind}
		var data []byte
		switch v.kind {
		case incremental.Full:
			for b := range v.blocks {
				data = append(data, image(i, uint32(b))...)
			}
			data = append(data, bytes.Repeat([]byte{0xee}, v.tail)...)
		case incremental.Incremental:
			s.Name = fmt.Sprintf("backup%d/base/5/INCREMENTAL.%d", len(chain)-1-i, 16384)
			s.Header = incremental.NewHeader(v.trunc, v.listed)
			data = s.Header.Encode()
			for _, b := range v.listed {
				data = append(data, image(i, b)...)
			}
		}
		if v.kind != incremental.Absent {
			s.Size = int64(len(data))
			s.Data = bytes.NewReader(data)
		}
		srcs[i] = s
	}
	return srcs[0], srcs[1:]
}

// ref is where one output block comes from in the reference model.
type ref struct {
	src int // -1: zeros
	blk uint32
}

// model is the reference: pg_combinebackup's reconstruct_from_incremental_file
// transcribed naively, one map entry per block, no runs and no cursors.
// It returns the origin of each block, whether a whole-file copy applies, and
// the error kind ("missing", "nofull") with the index of the guilty source.
func model(chain []version) (refs []ref, copyFrom int, errKind string, errIdx int) {
	latest := chain[0]
	length := latest.trunc
	for _, b := range latest.listed {
		if b >= length {
			length = b + 1
		}
	}
	refs = make([]ref, length)
	for i := range refs {
		refs[i] = ref{src: -1}
	}
	fullCopyPossible := true
	for _, b := range latest.listed {
		refs[b] = ref{0, b}
		fullCopyPossible = false
	}
	copyFrom = -1
	for j := 1; j < len(chain); j++ {
		v := chain[j]
		switch v.kind {
		case incremental.Absent:
			return nil, -1, "missing", j
		case incremental.Full:
			for b := uint32(0); b < latest.trunc; b++ {
				if refs[b].src == -1 && int(b) < v.blocks {
					refs[b] = ref{j, b}
				}
			}
			if fullCopyPossible && v.blocks*bs+v.tail == int(latest.trunc)*bs {
				copyFrom = j
			}
			return refs, copyFrom, "", 0
		case incremental.Incremental:
			for _, b := range v.listed {
				if b < latest.trunc && refs[b].src == -1 {
					refs[b] = ref{j, b}
					fullCopyPossible = false
				}
			}
		}
	}
	return nil, -1, "nofull", len(chain) - 1
}

func render(refs []ref) []byte {
	var out []byte
	for _, r := range refs {
		if r.src < 0 {
			out = append(out, make([]byte, bs)...)
		} else {
			out = append(out, image(r.src, r.blk)...)
		}
	}
	return out
}

// expand turns a plan back into one origin per block, reading the block
// number out of the stored image.
func expand(t *testing.T, p *incremental.Plan, latest incremental.Source, older []incremental.Source) []ref {
	t.Helper()
	var refs []ref
	next := uint32(0)
	for _, e := range p.Extents {
		if e.Block != next || e.Count == 0 {
			t.Fatalf("extents do not tile the file: %+v", p.Extents)
		}
		next += e.Count
		for i := range e.Count {
			if e.Source == incremental.Zeros {
				refs = append(refs, ref{src: -1})
				continue
			}
			s := latest
			if e.Source > 0 {
				s = older[e.Source-1]
			}
			img := make([]byte, bs)
			if _, err := s.Data.ReadAt(img, e.Offset+int64(i)*bs); err != nil {
				t.Fatalf("extent %+v: %v", e, err)
			}
			if !bytes.Equal(img, image(e.Source, e.Block+i)) {
				t.Fatalf("extent %+v block %d: source %d holds another block there", e, i, e.Source)
			}
			refs = append(refs, ref{e.Source, e.Block + i})
		}
	}
	if next != p.Blocks {
		t.Fatalf("extents cover %d blocks, plan says %d", next, p.Blocks)
	}
	return refs
}

// check runs MakePlan and Reconstruct on a chain and compares both with the
// model.
func check(t *testing.T, chain []version) (*incremental.Plan, error) {
	t.Helper()
	latest, older := materialize(chain)
	wantRefs, wantCopy, wantErr, wantIdx := model(chain)
	p, err := incremental.MakePlan(latest, older)
	var out bytes.Buffer
	rerr := incremental.Reconstruct(&out, latest, older)
	if (err == nil) != (rerr == nil) {
		t.Fatalf("MakePlan error %v, Reconstruct error %v", err, rerr)
	}
	if wantErr != "" {
		sentinel := map[string]error{"missing": incremental.ErrMissing, "nofull": incremental.ErrNoFull}[wantErr]
		var se *incremental.SourceError
		if !errors.Is(err, sentinel) || !errors.As(err, &se) || se.Index != wantIdx {
			t.Fatalf("got error %v, want %v at source %d", err, sentinel, wantIdx)
		}
		return nil, err
	}
	if err != nil {
		t.Fatalf("MakePlan: %v", err)
	}
	if diff := cmp.Diff(wantRefs, expand(t, p, latest, older), cmp.AllowUnexported(ref{}), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("block origins (-model +plan):\n%s", diff)
	}
	if p.Copy != wantCopy {
		t.Errorf("Copy = %d, want %d", p.Copy, wantCopy)
	}
	if p.Size() != int64(len(wantRefs))*bs {
		t.Errorf("Size = %d, want %d", p.Size(), len(wantRefs)*bs)
	}
	if want := render(wantRefs); !bytes.Equal(out.Bytes(), want) {
		t.Errorf("Reconstruct wrote %d bytes that differ from the model's %d", out.Len(), len(want))
	}
	return p, nil
}

func TestReconstruct(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chain   []version // latest first
		extents []incremental.Extent
	}{
		{"modified blocks", []version{incr(4, 1, 3), full(4)}, []incremental.Extent{
			{Block: 0, Count: 1, Source: 1, Offset: 0},
			{Block: 1, Count: 1, Source: 0, Offset: 8192},
			{Block: 2, Count: 1, Source: 1, Offset: 2 * bs},
			{Block: 3, Count: 1, Source: 0, Offset: 2 * bs},
		}},
		{"adjacent modified blocks share an extent", []version{incr(6, 2, 3, 4), full(6)}, []incremental.Extent{
			{Block: 0, Count: 2, Source: 1, Offset: 0},
			{Block: 2, Count: 3, Source: 0, Offset: bs},
			{Block: 5, Count: 1, Source: 1, Offset: 5 * bs},
		}},
		{"relation grew", []version{incr(2, 2, 3), full(2)}, []incremental.Extent{
			{Block: 0, Count: 2, Source: 1, Offset: 0},
			{Block: 2, Count: 2, Source: 0, Offset: bs},
		}},
		{"relation shrank", []version{incr(3), full(6)}, []incremental.Extent{
			{Block: 0, Count: 3, Source: 1, Offset: 0},
		}},
		{"shrank then grew", []version{incr(5, 3, 4), incr(3, 1), full(6)}, nil},
		{"full shorter than truncation length", []version{incr(4), full(2)}, []incremental.Extent{
			{Block: 0, Count: 2, Source: 1, Offset: 0},
			{Block: 2, Count: 2, Source: incremental.Zeros},
		}},
		{"full with a partial last block", []version{incr(3), version{kind: incremental.Full, blocks: 2, tail: 100}}, nil},
		{"blocks past the truncation length with a gap", []version{incr(1, 0, 5), full(3)}, []incremental.Extent{
			{Block: 0, Count: 1, Source: 0, Offset: bs},
			{Block: 1, Count: 4, Source: incremental.Zeros},
			{Block: 5, Count: 1, Source: 0, Offset: 2 * bs},
		}},
		{"zero-block incrementals copy the full file", []version{incr(3), incr(3), full(3)}, []incremental.Extent{
			{Block: 0, Count: 3, Source: 2, Offset: 0},
		}},
		{"zero-block incremental of an empty file", []version{incr(0), full(0)}, nil},
		{"empty result from a longer file", []version{incr(0), full(2)}, nil},
		{"intermediate incremental supplies blocks", []version{incr(4, 2), incr(4, 0, 2), full(4)}, []incremental.Extent{
			{Block: 0, Count: 1, Source: 1, Offset: bs},
			{Block: 1, Count: 1, Source: 2, Offset: bs},
			{Block: 2, Count: 1, Source: 0, Offset: bs},
			{Block: 3, Count: 1, Source: 2, Offset: 3 * bs},
		}},
		{"older blocks past the latest truncation are ignored", []version{incr(2), incr(4, 3), full(4)}, []incremental.Extent{
			{Block: 0, Count: 2, Source: 2, Offset: 0},
		}},
		{"older incremental without useful blocks still allows a copy", []version{incr(2), incr(4, 2, 3), full(2)}, nil},
		{"older incremental blocks prevent a copy", []version{incr(2), incr(2, 1), full(2)}, nil},
		{"three incrementals", []version{incr(8, 7), incr(8, 1, 6), incr(7, 1, 2, 5), full(5)}, nil},
		{"plain file in an intermediate backup ends the search", []version{incr(4, 0), full(3), absent}, nil},
		{"plain file in an intermediate backup before an incremental", []version{incr(4, 0), full(4), incr(4, 1), full(1)}, nil},
		{"new relation, zeros before the first block", []version{incr(0, 3), full(0)}, []incremental.Extent{
			{Block: 0, Count: 3, Source: incremental.Zeros},
			{Block: 3, Count: 1, Source: 0, Offset: bs},
		}},
		{"full backup holds only an incremental file", []version{incr(2, 1), incr(2, 0)}, nil},
		{"no older backup", []version{incr(2, 1)}, nil},
		{"missing intermediate", []version{incr(2, 1), absent, full(2)}, nil},
		{"missing full", []version{incr(2, 1), incr(2, 0), absent}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := check(t, tc.chain)
			if err == nil && tc.extents != nil {
				if diff := cmp.Diff(tc.extents, p.Extents); diff != "" {
					t.Errorf("extents (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestReconstructErrorsNameTheSource(t *testing.T) {
	latest, older := materialize([]version{incr(2, 1), absent, full(2)})
	err := incremental.Reconstruct(io.Discard, latest, older)
	if want := "backup1/base/5/16384: incremental: file missing from a backup of the chain"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	latest, older = materialize([]version{incr(2, 1), incr(2, 0)})
	err = incremental.Reconstruct(io.Discard, latest, older)
	if want := "backup0/base/5/INCREMENTAL.16384: incremental: full backup contains unexpected incremental file"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// errReaderAt fails every read.
type errReaderAt struct{ err error }

func (e errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, e.err }

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

func TestReconstructBadSources(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		edit    func(latest *incremental.Source, older []incremental.Source)
		w       io.Writer
		idx     int // -1 when no SourceError is expected
		corrupt bool
		msg     string
	}{
		{"latest is plain", func(l *incremental.Source, _ []incremental.Source) { l.Kind = incremental.Full },
			nil, -1, false, "latest version is full, not incremental"},
		{"latest size disagrees with header", func(l *incremental.Source, _ []incremental.Source) { l.Size-- },
			nil, 0, true, "size 16383, but its header describes 16384 bytes"},
		{"older size disagrees with header", func(_ *incremental.Source, o []incremental.Source) { o[0].Size++ },
			nil, 1, true, "size 16385, but its header describes 16384 bytes"},
		{"latest header invalid", func(l *incremental.Source, _ []incremental.Source) { l.Header.BlockCount = 2 },
			nil, 0, true, "block count 2 but 1 block numbers"},
		{"older header invalid", func(_ *incremental.Source, o []incremental.Source) { o[0].Header.Blocks = []uint32{1 << 20} },
			nil, 1, true, "beyond segment size"},
		{"negative full size", func(_ *incremental.Source, o []incremental.Source) { o[1].Size = -1 },
			nil, 2, true, "negative size -1"},
		{"unknown kind", func(_ *incremental.Source, o []incremental.Source) { o[1].Kind = 7 },
			nil, 2, false, "unknown source kind Kind(7)"},
		{"latest data short", func(l *incremental.Source, _ []incremental.Source) {
			l.Data = io.NewSectionReader(l.Data, 0, l.Size-1)
		}, nil, 0, true, "read 8191 of 8192 bytes at offset 8192"},
		{"full data short", func(_ *incremental.Source, o []incremental.Source) {
			o[1].Data = io.NewSectionReader(o[1].Data, 0, 100)
		}, nil, 2, true, "read 0 of 8192 bytes at offset 16384"},
		{"no data", func(_ *incremental.Source, o []incremental.Source) { o[1].Data = nil },
			nil, 2, false, "no data to read"},
		{"read error", func(_ *incremental.Source, o []incremental.Source) { o[0].Data = errReaderAt{errBoom} },
			nil, 1, false, "boom"},
		{"write error", func(*incremental.Source, []incremental.Source) {}, errWriter{errBoom}, -1, false, "incremental: write: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			latest, older := materialize([]version{incr(3, 1), incr(3, 0), full(3)})
			tc.edit(&latest, older)
			w := tc.w
			if w == nil {
				w = io.Discard
			}
			err := incremental.Reconstruct(w, latest, older)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
			if errors.Is(err, incremental.ErrCorrupt) != tc.corrupt {
				t.Errorf("errors.Is(%v, ErrCorrupt) = %v", err, !tc.corrupt)
			}
			var se *incremental.SourceError
			if errors.As(err, &se) != (tc.idx >= 0) || tc.idx >= 0 && se.Index != tc.idx {
				t.Errorf("SourceError %+v, want index %d", se, tc.idx)
			}
			if tc.name == "read error" && !errors.Is(err, errBoom) {
				t.Error("the reader's error is not reachable")
			}
		})
	}
}

func TestWholeSegment(t *testing.T) {
	// The largest file an INCREMENTAL header can describe: the latest holds
	// the last block, everything else comes from a 1 GiB full file.
	last := uint32(incremental.RelSegSize - 1)
	h := incremental.NewHeader(incremental.RelSegSize, []uint32{last})
	latest := incremental.Source{Kind: incremental.Incremental, Size: h.FileSize(), Header: h}
	older := []incremental.Source{{Kind: incremental.Full, Size: incremental.RelSegSize * bs}}
	p, err := incremental.MakePlan(latest, older)
	if err != nil {
		t.Fatal(err)
	}
	want := []incremental.Extent{
		{Block: 0, Count: last, Source: 1, Offset: 0},
		{Block: last, Count: 1, Source: 0, Offset: bs},
	}
	if diff := cmp.Diff(want, p.Extents); diff != "" || p.Blocks != incremental.RelSegSize || p.Copy != -1 {
		t.Errorf("plan %d blocks, copy %d, extents (-want +got):\n%s", p.Blocks, p.Copy, diff)
	}
}
