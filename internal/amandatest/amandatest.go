package amandatest

import (
	"testing"

	"github.com/holdfast-backup/holdfast/internal/envtest"
)

// Paths are the locations of Amanda's programs.
type Paths struct {
	// Amservice is the client that asks an amandad for a service (amdumpd, noop, …).
	Amservice string
	// Amandad is the real amandad, which serves Amanda's services.
	Amandad string
}

// Debian is where Debian 12's amanda-client and amanda-server install the programs.
var Debian = Paths{
	Amservice: "/usr/sbin/amservice",
	Amandad:   "/usr/lib/amanda/amandad",
}

// Require returns the paths of Amanda's programs. When one is missing it skips the test, or
// fails it when CI=true.
func Require(t testing.TB) Paths {
	t.Helper()
	envtest.Executable(t, "Amanda's amservice (Debian package amanda-client)", Debian.Amservice)
	envtest.Executable(t, "Amanda's amandad (Debian package amanda-client)", Debian.Amandad)
	return Debian
}
