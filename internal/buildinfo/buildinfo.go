// Package buildinfo reports which Holdfast is running: the release version,
// the commit it was built from and the Go toolchain.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is the release version, set at link time with
// -ldflags "-X github.com/holdfast-backup/holdfast/internal/buildinfo.Version=v0.1.0".
var Version = "0.1.0-dev"

// Commit is the source commit, set at link time by the Makefile and the
// scripts (-X …/buildinfo.Commit=…); otherwise Go's VCS stamp is used, which
// is absent when building with -buildvcs=false.
var Commit = ""

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
}

// Read returns the binary's build information. Commit comes from the VCS
// stamp Go embeds when building inside a git checkout.
func Read() Info {
	in := Info{Version: Version, Commit: "unknown", GoVersion: runtime.Version()}
	if Commit != "" {
		in.Commit = Commit
		return in
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return in
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}
