package main

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holdfast-backup/holdfast/internal/crc32c"
)

// coreScaling measures how much of a second core the machine gives right
// now: the same CRC-32C work (vector code on a buffer in the L1 cache, as
// in verify's hot loop) on one goroutine, then on one per CPU, each with
// a full share. The result is CPUs × time(one) / time(all): the number of
// cores' worth of throughput. On a virtual machine whose vCPUs the host
// puts on two threads of one physical core it is near 1 even though the
// guest sees 2 cores; then anything that gains by using both cores (verify
// against single-threaded pg_verifybackup, for one) cannot gain. The
// median of three tries is returned.
func coreScaling() float64 {
	n := runtime.NumCPU()
	if n < 2 {
		return 1
	}
	work := func(workers int) time.Duration {
		var wg sync.WaitGroup
		t0 := time.Now()
		for range workers {
			wg.Go(func() {
				b := make([]byte, 16<<10)
				for i := range b {
					b[i] = byte(i * 7)
				}
				var s uint32
				for range 20000 {
					s = crc32c.Update(s, b)
				}
				sink.Add(s)
			})
		}
		wg.Wait()
		return time.Since(t0)
	}
	var tries []float64
	for range 3 {
		one := work(1)
		all := work(n)
		tries = append(tries, float64(n)*one.Seconds()/all.Seconds())
	}
	slices.Sort(tries)
	return tries[1]
}

// sink keeps the CRC loop from being optimised away.
var sink atomic.Uint32
