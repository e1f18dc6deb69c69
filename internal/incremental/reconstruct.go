package incremental

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Kind says what a backup holds for one file.
type Kind uint8

const (
	// Absent: the backup has neither the plain file nor an INCREMENTAL one.
	Absent Kind = iota
	// Full: the backup has the plain file.
	Full
	// Incremental: the backup has the INCREMENTAL file.
	Incremental
)

// String names the kind for error messages.
func (k Kind) String() string {
	switch k {
	case Absent:
		return "absent"
	case Full:
		return "full"
	case Incremental:
		return "incremental"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Source is one backup's version of the file being rebuilt.
type Source struct {
	// Name identifies the source in errors, for example
	// "20240501T100000/base/5/INCREMENTAL.16384".
	Name string
	// Kind says which version of the file the backup has.
	Kind Kind
	// Size is the plain file's size (Full) or the INCREMENTAL file's size
	// (Incremental), which must equal Header.FileSize().
	Size int64
	// Header is the INCREMENTAL file's header (Incremental only).
	Header Header
	// Data reads the file's bytes: the plain file, or the whole INCREMENTAL
	// file including its header; nil when Absent. Only the ranges a Plan
	// names are read.
	Data io.ReaderAt
}

var (
	// ErrMissing reports a backup in the chain that has neither version of
	// a file the newer backups build on.
	ErrMissing = errors.New("incremental: file missing from a backup of the chain")
	// ErrNoFull reports a chain whose oldest backup has only an INCREMENTAL
	// file, so some blocks have no base.
	ErrNoFull = errors.New("incremental: full backup contains unexpected incremental file")
)

// SourceError reports a problem with one source of a reconstruction and
// names it.
type SourceError struct {
	// Index is the source's position: 0 for the latest file, i+1 for
	// older[i].
	Index int
	// Name is the source's Name.
	Name string
	// Err is ErrMissing, ErrNoFull, an error matching ErrCorrupt, or the
	// error of reading Data.
	Err error
}

// Error names the source, then the problem.
func (e *SourceError) Error() string {
	name := e.Name
	if name == "" {
		name = fmt.Sprintf("source %d", e.Index)
	}
	return fmt.Sprintf("%s: %v", name, e.Err)
}

// Unwrap returns Err.
func (e *SourceError) Unwrap() error { return e.Err }

// Zeros is the Extent.Source of blocks no backup has: they are written as
// zeros.
const Zeros = -1

// Extent is a run of output blocks read from one source in one piece.
type Extent struct {
	// Block is the first output block of the run.
	Block uint32
	// Count is the number of blocks.
	Count uint32
	// Source is 0 for the latest file, i+1 for older[i], or Zeros.
	Source int
	// Offset is where the run starts in that source's Data (0 for Zeros).
	Offset int64
}

// Plan says where every block of a rebuilt file comes from.
type Plan struct {
	// Blocks is the length of the rebuilt file in blocks.
	Blocks uint32
	// Extents cover blocks 0 to Blocks-1 in order, each as long as it can
	// be: adjacent blocks from adjacent offsets of one source share one.
	Extents []Extent
	// Copy is the index (as in Extent.Source) of a plain file that is the
	// rebuilt file byte for byte, or -1. When it is set a caller may copy,
	// clone or link that file and reuse its manifest checksum, as
	// pg_combinebackup does.
	Copy int
}

// Size is the length of the rebuilt file in bytes.
func (p *Plan) Size() int64 { return int64(p.Blocks) * BlockSize }

func (p *Plan) add(block, count uint32, src int, off int64) {
	if count == 0 {
		return
	}
	if n := len(p.Extents); n > 0 {
		e := &p.Extents[n-1]
		if e.Source == src && e.Block+e.Count == block && (src == Zeros || e.Offset+int64(e.Count)*BlockSize == off) {
			e.Count += count
			return
		}
	}
	p.Extents = append(p.Extents, Extent{Block: block, Count: count, Source: src, Offset: off})
}

func sourceAt(latest Source, older []Source, i int) Source {
	if i == 0 {
		return latest
	}
	return older[i-1]
}

// checkIncremental verifies an INCREMENTAL source's header against its size.
func checkIncremental(i int, s Source) error {
	if err := s.Header.Validate(); err != nil {
		return &SourceError{Index: i, Name: s.Name, Err: err}
	}
	if want := s.Header.FileSize(); s.Size != want {
		return &SourceError{Index: i, Name: s.Name,
			Err: fmt.Errorf("%w: size %d, but its header describes %d bytes", ErrCorrupt, s.Size, want)}
	}
	return nil
}

// MakePlan decides, as pg_combinebackup does, where each block of the file
// rebuilt from latest comes from. latest must be Incremental; older lists the
// earlier backups' versions newest first, ending with the full backup. Only
// the sources down to the first Full one are consulted.
func MakePlan(latest Source, older []Source) (*Plan, error) {
	if latest.Kind != Incremental {
		return nil, fmt.Errorf("incremental: %s: latest version is %v, not incremental", latest.Name, latest.Kind)
	}
	if err := checkIncremental(0, latest); err != nil {
		return nil, err
	}

	type incr struct {
		src    int
		blocks []uint32
		data   int64
	}
	var incs []incr // the older INCREMENTAL files consulted, newest first
	full := -1
	var fullSize int64
	for i, s := range older {
		idx := i + 1
		switch s.Kind {
		case Absent:
			return nil, &SourceError{Index: idx, Name: s.Name, Err: ErrMissing}
		case Incremental:
			if err := checkIncremental(idx, s); err != nil {
				return nil, err
			}
			incs = append(incs, incr{src: idx, blocks: s.Header.Blocks, data: s.Header.DataOffset()})
			continue
		case Full:
			if s.Size < 0 {
				return nil, &SourceError{Index: idx, Name: s.Name, Err: fmt.Errorf("%w: negative size %d", ErrCorrupt, s.Size)}
			}
			full, fullSize = idx, s.Size
		default:
			return nil, &SourceError{Index: idx, Name: s.Name, Err: fmt.Errorf("incremental: unknown source kind %v", s.Kind)}
		}
		break
	}
	if full < 0 {
		last := len(older)
		return nil, &SourceError{Index: last, Name: sourceAt(latest, older, last).Name, Err: ErrNoFull}
	}

	lh := latest.Header
	trunc := lh.TruncationBlockLength
	length := lh.BlockLength()
	fullBlocks := uint32(min(fullSize/BlockSize, RelSegSize))
	// Every listed block can start a run and end another one, so this
	// bounds the extents and saves regrowing them.
	listed := len(lh.Blocks)
	for _, in := range incs {
		listed += len(in.blocks)
	}
	p := &Plan{Blocks: length, Copy: -1, Extents: make([]Extent, 0, min(int(length), 2*listed+1))}
	fromIncremental := len(lh.Blocks) > 0
	cursor := make([]int, len(incs))
	next := 0 // index into lh.Blocks

	// Each turn settles block b, or the run of blocks from b to the next
	// block any INCREMENTAL file lists, so the work is proportional to the
	// listed blocks times the chain length, not to the file size.
	for b := uint32(0); b < length; {
		if next < len(lh.Blocks) && lh.Blocks[next] == b {
			p.add(b, 1, 0, lh.DataOffset()+int64(next)*BlockSize)
			next++
			b++
			continue
		}
		end := length
		if next < len(lh.Blocks) {
			end = lh.Blocks[next]
		}
		if b >= trunc {
			// Past the truncation length only the latest file counts.
			p.add(b, end-b, Zeros, 0)
			b = end
			continue
		}
		end = min(end, trunc)
		found := false
		for k := range incs {
			in := &incs[k]
			c := cursor[k]
			for c < len(in.blocks) && in.blocks[c] < b {
				c++
			}
			cursor[k] = c
			if c == len(in.blocks) {
				continue
			}
			if in.blocks[c] == b {
				p.add(b, 1, in.src, in.data+int64(c)*BlockSize)
				found, fromIncremental = true, true
				break
			}
			end = min(end, in.blocks[c])
		}
		if found {
			b++
			continue
		}
		if b < fullBlocks {
			end = min(end, fullBlocks)
			p.add(b, end-b, full, int64(b)*BlockSize)
		} else {
			p.add(b, end-b, Zeros, 0)
		}
		b = end
	}
	if !fromIncremental && fullSize == int64(trunc)*BlockSize {
		p.Copy = full
	}
	return p, nil
}

// Reconstruct writes to w the file rebuilt from latest and older (see
// MakePlan), block by block in order.
func Reconstruct(w io.Writer, latest Source, older []Source) error {
	p, err := MakePlan(latest, older)
	if err != nil {
		return err
	}
	return p.Execute(w, latest, older)
}

// bufSize bounds the memory of one Execute: runs are read in pieces of at
// most this many bytes (32 blocks).
const bufSize = 32 * BlockSize

var (
	bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}
	// zeros is only ever read.
	zeros [bufSize]byte
)

// Execute writes the file p describes, reading from the sources p was made
// from.
func (p *Plan) Execute(w io.Writer, latest Source, older []Source) error {
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	for _, e := range p.Extents {
		n := int64(e.Count) * BlockSize
		if e.Source == Zeros {
			for n > 0 {
				k := min(n, bufSize)
				if _, err := w.Write(zeros[:k]); err != nil {
					return fmt.Errorf("incremental: write: %w", err)
				}
				n -= k
			}
			continue
		}
		if e.Source < 0 || e.Source > len(older) {
			return fmt.Errorf("incremental: plan names source %d of %d", e.Source, len(older)+1)
		}
		s := sourceAt(latest, older, e.Source)
		if s.Data == nil {
			return &SourceError{Index: e.Source, Name: s.Name, Err: errors.New("incremental: no data to read")}
		}
		for off := e.Offset; n > 0; {
			k := min(n, bufSize)
			got, err := s.Data.ReadAt(buf[:k], off)
			if int64(got) < k {
				if err == nil || errors.Is(err, io.EOF) {
					err = fmt.Errorf("%w: read %d of %d bytes at offset %d: %w", ErrCorrupt, got, k, off, io.ErrUnexpectedEOF)
				}
				return &SourceError{Index: e.Source, Name: s.Name, Err: err}
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return fmt.Errorf("incremental: write: %w", err)
			}
			off += k
			n -= k
		}
	}
	return nil
}
