package apply

import (
	"os"
	"runtime/debug"
)

// bootGCPercent is the garbage collector's GOGC while apply runs. apply is one short burst at
// boot that allocates a few MB (device inventory, kernel log, image listings, report) and keeps
// little: with Go's default of 100 and its 4 MB minimum heap target, the collector runs once or
// twice per apply and takes a core from it on a 2-core machine for several milliseconds each
// time. At 400 the heap may grow to five times what is live (a few MB at boot) before a
// collection. BenchmarkApplyHost's own time goes from 24-26 ms to 16-19 ms with it
// (docs/development.md, "Apply benchmarks").
const bootGCPercent = 400

// tuneGC sets bootGCPercent for the run and returns what puts the previous setting back. A
// GOGC or GOMEMLIMIT the operator set in the environment wins: then nothing changes.
func tuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	previous := debug.SetGCPercent(bootGCPercent)
	return func() { debug.SetGCPercent(previous) }
}
