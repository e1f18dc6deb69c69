//go:build !linux

package archive

// bigBuffer returns make([]byte, n, c); see the Linux version.
func bigBuffer(n, c int) []byte { return make([]byte, n, c) }
