package pgrepl

import "crypto/tls"

// BatchedReads is how many of c's reads waited for the low mark
// (SO_RCVLOWAT): more than zero once a BASE_BACKUP over TCP has read.
func BatchedReads(c *Conn) int {
	if c.rd == nil {
		return 0
	}
	return c.rd.waited
}

// UsesTLS reports whether c talks to its server over TLS.
func UsesTLS(c *Conn) bool {
	_, ok := c.pg.Conn().(*tls.Conn)
	return ok
}
