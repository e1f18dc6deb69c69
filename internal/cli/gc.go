package cli

import (
	"os"
	"runtime/debug"
)

// dumpGCPercent is the GOGC of dump. A backup's live heap is ~40 MiB of
// buffers reused from start to end (frames, upload buffers) and it makes
// little garbage (about 10 MB per GiB backed up), so the default GOGC of
// 100 let the heap drift up to twice the live heap on long backups only:
// the peak RSS then depended on the database's size (55 MiB at 1 GiB,
// 72-74 MiB at 4 GiB). At 50 the collector runs a little earlier, which
// costs next to nothing at that garbage rate: 50 and 54 MiB. GOGC in the
// environment wins.
const dumpGCPercent = 50

// tuneDumpGC applies dumpGCPercent and returns what restores the previous
// setting (the CLI also runs in-process, in the tests).
func tuneDumpGC() (restore func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	old := debug.SetGCPercent(dumpGCPercent)
	return func() { debug.SetGCPercent(old) }
}
