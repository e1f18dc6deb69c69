package incremental_test

import (
	"io"
	"testing"

	"github.com/holdfast-backup/holdfast/internal/incremental"
)

func every(n, step uint32) []uint32 {
	var l []uint32
	for b := uint32(0); b < n; b += step {
		l = append(l, b)
	}
	return l
}

func BenchmarkReconstruct(b *testing.B) {
	const n = 4096 // 32 MiB per rebuilt file
	for _, bc := range []struct {
		name  string
		chain []version
	}{
		{"copy", []version{incr(n), full(n)}},
		{"sparse", []version{incr(n, every(n, 64)...), full(n)}},
		{"alternate", []version{incr(n, every(n, 2)...), full(n)}},
		{"chain3", []version{incr(n, every(n, 16)...), incr(n, every(n, 13)...), incr(n, every(n, 7)...), full(n)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			latest, older := materialize(bc.chain)
			b.SetBytes(n * bs)
			b.ReportAllocs()
			for b.Loop() {
				if err := incremental.Reconstruct(io.Discard, latest, older); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMakePlan(b *testing.B) {
	// A whole segment where every other block changed, over three older
	// incrementals: the most extents a plan can have.
	const n = incremental.RelSegSize
	src := func(h incremental.Header) incremental.Source {
		return incremental.Source{Kind: incremental.Incremental, Size: h.FileSize(), Header: h}
	}
	latest := src(incremental.NewHeader(n, every(n, 2)))
	older := []incremental.Source{
		src(incremental.NewHeader(n, every(n, 3))),
		src(incremental.NewHeader(n, every(n, 5))),
		src(incremental.NewHeader(n, every(n, 7))),
		{Kind: incremental.Full, Size: n * bs},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := incremental.MakePlan(latest, older); err != nil {
			b.Fatal(err)
		}
	}
}
