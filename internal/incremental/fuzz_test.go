package incremental_test

import (
	"testing"

	"github.com/holdfast-backup/holdfast/internal/incremental"
)

// decodeChain turns fuzz bytes into a small chain: up to 4 older versions
// of any kind, files of up to 24 blocks, truncation lengths that may be
// shorter or longer than the data.
func decodeChain(data []byte) []version {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	blocks := func() []uint32 {
		mask := uint32(next()) | uint32(next())<<8 | uint32(next())<<16
		var l []uint32
		for b := uint32(0); b < 24; b++ {
			if mask&(1<<b) != 0 {
				l = append(l, b)
			}
		}
		return l
	}
	n := 1 + int(next()%4)
	chain := []version{incr(uint32(next()%20), blocks()...)}
	for range n {
		switch k := next() % 8; {
		case k == 0:
			chain = append(chain, absent)
		case k < 4:
			chain = append(chain, incr(uint32(next()%20), blocks()...))
		default:
			chain = append(chain, version{kind: incremental.Full, blocks: int(next() % 22), tail: int(next()%3) * 100})
		}
	}
	return chain
}

// FuzzReconstruct compares MakePlan and Reconstruct with the reference model
// on random small chains.
func FuzzReconstruct(f *testing.F) {
	f.Add([]byte{0, 4, 0x0a, 0, 0, 5, 4})                                     // modified blocks over a full file
	f.Add([]byte{1, 3, 0, 0, 0, 1, 3, 0, 0, 0, 7, 3, 0})                      // zero-block chain: whole-file copy
	f.Add([]byte{2, 5, 0x18, 0, 0, 1, 3, 0x02, 0, 0, 2, 3, 0x21, 0, 7, 6, 1}) // shrink then grow
	f.Add([]byte{1, 2, 0x02, 0, 0, 0})                                        // missing intermediate
	f.Add([]byte{0, 2, 0x02, 0, 0, 1, 2, 0x01, 0, 0})                         // only incrementals
	f.Add([]byte{0, 1, 0, 0, 0x80, 5, 2, 0})                                  // block far past truncation
	f.Fuzz(func(t *testing.T, data []byte) {
		check(t, decodeChain(data))
	})
}
