//go:build race

package archive_test

// raceEnabled skips tests whose numbers mean nothing under the race detector.
const raceEnabled = true
