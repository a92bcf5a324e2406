package plan

import (
	"path"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// StoreRoot is the Kairos extension store: images live flat in it, and enable links in its
// active/, passive/, recovery/ and common/ directories point at them (kairos-agent sysext).
const StoreRoot = "/var/lib/kairos/extensions"

// RunExtensions is where immucore links the enabled images for systemd-sysext.
const RunExtensions = "/run/extensions"

// BootState is the Kairos boot state, from the sentinel files immucore writes in /run/cos.
type BootState string

// Boot states with an extension directory of their own. Others (live media, unknown) have none.
const (
	StateActive   BootState = "active"
	StatePassive  BootState = "passive"
	StateRecovery BootState = "recovery"
	StateLive     BootState = "live"
	StateUnknown  BootState = "unknown"
)

// bootSentinels map /run/cos/<name> to the state, checked in this order. autoreset boots the
// recovery system to reset the machine, so it uses the recovery store, as immucore's
// EnableSysExtensions does for every recovery boot (immucore pkg/state/steps.go).
var bootSentinels = []struct {
	file  string
	state BootState
}{
	{"/run/cos/active_mode", StateActive},
	{"/run/cos/passive_mode", StatePassive},
	{"/run/cos/recovery_mode", StateRecovery},
	{"/run/cos/autoreset_mode", StateRecovery},
	{"/run/cos/live_mode", StateLive},
}

// DetectBootState reads the boot state under root.
func DetectBootState(root *hostfs.Root) BootState {
	for _, s := range bootSentinels {
		if _, err := root.FS.Stat(s.file); err == nil {
			return s.state
		}
	}
	return StateUnknown
}

// detectBootState reads the sentinels in the target root, then in the running root: in an
// initrd immucore writes /run/cos/* into the initrd's /run (which becomes the real root's /run
// at switch_root), while /sysroot/run is still empty.
func detectBootState(target, running *hostfs.Root) BootState {
	if state := DetectBootState(target); state != StateUnknown || target == running {
		return state
	}
	return DetectBootState(running)
}

// StoreDirs lists the directories whose images a boot in state may use, in precedence order
// (the first image of a name wins): the state's enable directory, common/ (immucore links both,
// the state's first), /run/extensions (images enabled at runtime or by immucore), then the
// configured stores. Live and unknown boots have no enable directory: like immucore, they use
// none, and only /run/extensions and configured stores remain.
func StoreDirs(state BootState, configured []string) []string {
	var dirs []string
	switch state {
	case StateActive, StatePassive, StateRecovery:
		dirs = append(dirs, path.Join(StoreRoot, string(state)), path.Join(StoreRoot, "common"))
	}
	dirs = append(dirs, RunExtensions)
	return append(dirs, configured...)
}
