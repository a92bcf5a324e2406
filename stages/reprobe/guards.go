package reprobe

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
)

// Guards are the places in sysfs that a re-probe must not disturb, each with its reason: the
// storage under every mounted file system, swap and active device-mapper or md device; the
// network interface of a network root; the console's graphics device. Unbinding or removing a
// device takes everything below it in /sys/devices with it, so a device is guarded when one of
// those places is its own directory or lies below it.
//
// Whatever cannot be read makes the guards wider, never narrower: without mountinfo every
// device holding a block device is guarded, without the command line every network device.
type Guards struct {
	protected []protection
}

// protection is one sysfs path that must stay.
type protection struct {
	// path is a /sys/devices directory: a block device, or a device.
	path string
	// what says why, as a predicate of the guarded device: "holds the storage of mounted /".
	what string
	// chain is how the path relates to what ("dm-0", "sda2", "sda"); the guarded device's name
	// ends it in the reason.
	chain []string
}

// reason is the protection as told about the device id: what, then the chain down to id.
func (p protection) reason(id string) string {
	chain := p.chain
	if len(chain) == 0 || chain[len(chain)-1] != id {
		chain = append(slices.Clip(chain), id)
	}
	if len(chain) == 1 {
		return p.what
	}
	return fmt.Sprintf("%s (%s)", p.what, strings.Join(chain, " → "))
}

// FindGuards looks at the system under root: /proc/self/mountinfo, /proc/swaps and sysfs for
// storage, the kernel command line at cmdlinePath (and dracut's /etc/cmdline.d) for the network,
// boot_vga and fb0 for the console. devices is the inventory.
func FindGuards(root *hostfs.Root, devices []*hwmatch.Device, cmdlinePath string) *Guards {
	if cmdlinePath == "" {
		cmdlinePath = DefaultCmdlinePath
	}
	g := &Guards{}
	g.storage(root)
	g.network(root, devices, cmdlinePath)
	g.console(root, devices)
	return g
}

// Reason returns why the device id, whose directory is sysfsPath, must not be unbound or
// removed, or "" when nothing protects it.
func (g *Guards) Reason(id, sysfsPath string) string {
	if sysfsPath == "" {
		return "its place in /sys/devices is unknown, so what it holds cannot be told"
	}
	for _, p := range g.protected {
		if p.path == sysfsPath || strings.HasPrefix(p.path, sysfsPath+"/") {
			return p.reason(id)
		}
	}
	return ""
}

func (g *Guards) protect(p, what string, chain []string) {
	g.protected = append(g.protected, protection{path: p, what: what, chain: slices.Clone(chain)})
}

// unwrapPathError drops the operation and path an *fs.PathError repeats, for messages that
// name the path themselves.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
