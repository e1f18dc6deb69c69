package local

// DisableOpenat2 makes s resolve paths one segment at a time, as it does on
// kernels without openat2(2), so tests cover both ways.
func DisableOpenat2(s *Store) { s.noOpenat2.Store(true) }
