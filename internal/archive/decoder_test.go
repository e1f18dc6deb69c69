package archive

import (
	"bytes"
	"errors"
	"testing"
)

// decodeFrame behaves the same in both builds (scripts/test.sh runs this
// package with and without the libzstd tag): it appends, it stops at the
// capacity it is given, and it checks the content checksum only when
// asked.
func TestDecodeFrame(t *testing.T) {
	raw := bytes.Repeat([]byte("heap page, tuple, tuple, free space "), 30000)
	e := newFrameEncoder(DefaultLevel, DefaultFrameSize)
	frame := e.encodeFrame(nil, raw)

	for _, checksums := range []bool{true, false} {
		out, err := decodeFrame(append(make([]byte, 0, len(raw)+3), "abc"...), frame, checksums)
		if err != nil || !bytes.Equal(out, append([]byte("abc"), raw...)) {
			t.Fatalf("checksums %v: %d bytes, %v; want the prefix and the frame's %d bytes", checksums, len(out), err, len(raw))
		}
	}
	if out, err := decodeFrame(make([]byte, 0, len(raw)-1), frame, true); err == nil {
		t.Fatalf("decoded %d bytes into room for %d", len(out), len(raw)-1)
	}

	// The last four bytes are the content checksum.
	bad := bytes.Clone(frame)
	bad[len(bad)-1] ^= 1
	if _, err := decodeFrame(make([]byte, 0, len(raw)), bad, true); err == nil {
		t.Fatal("a wrong content checksum passed with checksums on")
	}
	if out, err := decodeFrame(make([]byte, 0, len(raw)), bad, false); err != nil || !bytes.Equal(out, raw) {
		t.Fatalf("checksums off: %d bytes, %v; want the frame's content", len(out), err)
	}

	for name, src := range map[string][]byte{
		"garbage":          bytes.Repeat([]byte{0x5a}, 100),
		"truncated":        frame[:len(frame)/2],
		"header only":      frame[:6],
		"trailing garbage": append(bytes.Clone(frame), 1, 2, 3, 4, 5, 6, 7, 8),
	} {
		if out, err := decodeFrame(make([]byte, 0, 2*len(raw)), src, true); err == nil {
			t.Errorf("%s: decoded %d bytes without an error", name, len(out))
		}
	}
}

// FuzzDecodeFrame: stored frames come from the repository, so anything
// may arrive. Decoding never panics, never writes past the capacity it is
// given, and a frame the encoder made decodes to what was encoded.
func FuzzDecodeFrame(f *testing.F) {
	e := newFrameEncoder(DefaultLevel, DefaultFrameSize)
	f.Add(e.encodeFrame(nil, []byte("some tar bytes")), uint16(64), false)
	f.Add(e.encodeFrame(nil, bytes.Repeat([]byte{0}, 5000)), uint16(4096), true)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, uint16(10), true)
	f.Fuzz(func(t *testing.T, src []byte, room uint16, checksums bool) {
		buf := make([]byte, 0, int(room)+8)
		dst := buf[:0:room]
		out, err := decodeFrame(dst, src, checksums)
		if len(out) > int(room) || (len(out) > 0 && &out[0] != &buf[:1][0]) {
			t.Fatalf("decoded %d bytes into room for %d, or elsewhere", len(out), room)
		}
		if err == nil {
			// What decodes also encodes and comes back.
			again, err := decodeFrame(make([]byte, 0, len(out)), e.encodeFrame(nil, out), true)
			if err != nil || !bytes.Equal(again, out) {
				t.Fatalf("round trip of %d decoded bytes: %d bytes, %v", len(out), len(again), err)
			}
		}
	})
}

// decodeIndexed holds a frame to its size in the index, reports a wrong
// one as corruption, and gives the buffer back with its capacity (pooled
// buffers must not shrink to the size of a small frame).
func TestDecodeIndexed(t *testing.T) {
	raw := bytes.Repeat([]byte("wal record "), 1000)
	frame := newFrameEncoder(DefaultLevel, DefaultFrameSize).encodeFrame(nil, raw)
	buf := make([]byte, 0, 4*len(raw))
	f := &Frame{RawSize: int64(len(raw)), StoredSize: int64(len(frame))}
	out, err := decodeIndexed(buf, frame, 3, f, true)
	if err != nil || !bytes.Equal(out, raw) || cap(out) != cap(buf) {
		t.Fatalf("%d bytes (capacity %d of %d), %v; want the frame in the whole buffer", len(out), cap(out), cap(buf), err)
	}
	for _, size := range []int64{int64(len(raw)) - 1, int64(len(raw)) + 1} {
		f.RawSize = size
		if _, err := decodeIndexed(buf, frame, 3, f, true); !errors.Is(err, ErrCorrupt) {
			t.Errorf("index says %d bytes for a frame of %d: %v, want ErrCorrupt", size, len(raw), err)
		}
	}
	f.RawSize = int64(len(raw))
	if out, err := decodeIndexed(buf, frame[:len(frame)-5], 3, f, true); !errors.Is(err, ErrCorrupt) || cap(out) != cap(buf) {
		t.Errorf("truncated frame: %v (capacity %d); want ErrCorrupt and the buffer back", err, cap(out))
	}
}
