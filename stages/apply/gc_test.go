package apply

import (
	"runtime/debug"
	"testing"
)

// gcPercent reads the current GOGC (setting it back at once).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestTuneGC: apply's GOGC holds for the run and the previous one comes back after; a GOGC or
// GOMEMLIMIT of the operator's keeps apply's hands off.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	before := gcPercent()
	restore := tuneGC()
	if got := gcPercent(); got != bootGCPercent {
		t.Errorf("GOGC during the run %d, want %d", got, bootGCPercent)
	}
	restore()
	if got := gcPercent(); got != before {
		t.Errorf("GOGC after the run %d, want the previous %d", got, before)
	}
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, "50")
			restore := tuneGC()
			if got := gcPercent(); got != before {
				t.Errorf("with %s set, GOGC during the run %d, want it unchanged (%d)", env, got, before)
			}
			restore()
		})
	}
}
