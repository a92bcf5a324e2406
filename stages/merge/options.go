package merge

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Defaults of Options.
const (
	// DefaultRunDir holds everything Merge makes: image mounts, the firmware directory, the
	// sysext metadata and state.json. It is under /run so that it survives switch_root (see
	// docs/merge.md) and vanishes at reboot.
	DefaultRunDir = "/run/kairos-firmware"
	// DefaultFirmwareClassPath is the kernel's firmware_class.path parameter
	// (drivers/base/firmware_loader/main.c, module_param_string(path, fw_path_para, ...)).
	DefaultFirmwareClassPath = "/sys/module/firmware_class/parameters/path"
	// DefaultMountInfo is the mount table Merge and Unmerge check their mounts against.
	DefaultMountInfo = "/proc/self/mountinfo"
	// DefaultRunExtensions is where immucore links the enabled images for systemd-sysext.
	DefaultRunExtensions = "/run/extensions"
)

// SystemdHierarchies are systemd-sysext's own defaults ("/usr" + "/opt", arg_hierarchies in
// src/sysext/sysext.c), used when SYSTEMD_SYSEXT_HIERARCHIES is unset.
var SystemdHierarchies = []string{"/usr", "/opt"}

// DefaultHierarchies are the hierarchies Kairos' systemd-sysext.service merges after the pivot
// (its drop-in sets SYSTEMD_SYSEXT_HIERARCHIES, kairos-init 99_sysext.yaml), without the
// /usr/local/* ones: /usr/local is the persistent partition, which immucore mounts on the
// sysroot only after the rootfs stage, so a merge there would be covered and lost. Merging the
// same hierarchies systemd-sysext will is what lets its `refresh` recognise and replace our
// merge instead of stacking its own on top (docs/merge.md).
var DefaultHierarchies = []string{"/usr/bin", "/usr/share", "/usr/lib", "/usr/include", "/usr/src", "/usr/sbin"}

// Options say where Merge works. Paths are absolute paths as seen under the root given to
// Merge, except MountInfo, which is a real path (the kernel's mount table names real paths).
type Options struct {
	// Sysroot is the target root: /sysroot in an initrd, "/" when not in one (the default).
	// Images' paths are paths inside it, as a plan gives them.
	Sysroot string
	// RunDir defaults to DefaultRunDir.
	RunDir string
	// Hierarchies are merged the way systemd-sysext merges them, each only if an image
	// populates it. Default DefaultHierarchies; they must not nest.
	Hierarchies []string
	// FirmwareClassPath is the attribute written with the firmware directory. Default
	// DefaultFirmwareClassPath; tests point it at a file of their own.
	FirmwareClassPath string
	// MountInfo defaults to DefaultMountInfo.
	MountInfo string
	// RunExtensions defaults to DefaultRunExtensions. It is the running root's, not the
	// sysroot's: the initrd's /run becomes the real root's /run at switch_root.
	RunExtensions string
	// DryRun computes the State Merge would make and touches nothing.
	DryRun bool
}

// normalized returns o with defaults applied, or an error for unusable values.
func (o Options) normalized() (Options, error) {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.Sysroot, "/")
	def(&o.RunDir, DefaultRunDir)
	def(&o.FirmwareClassPath, DefaultFirmwareClassPath)
	def(&o.MountInfo, DefaultMountInfo)
	def(&o.RunExtensions, DefaultRunExtensions)
	if o.Hierarchies == nil {
		o.Hierarchies = DefaultHierarchies
	}
	for _, p := range []struct{ name, v string }{
		{"Sysroot", o.Sysroot}, {"RunDir", o.RunDir}, {"FirmwareClassPath", o.FirmwareClassPath},
		{"MountInfo", o.MountInfo}, {"RunExtensions", o.RunExtensions},
	} {
		if !path.IsAbs(p.v) {
			return o, fmt.Errorf("merge: %s %q is not an absolute path", p.name, p.v)
		}
	}
	o.Sysroot, o.RunDir, o.RunExtensions = path.Clean(o.Sysroot), path.Clean(o.RunDir), path.Clean(o.RunExtensions)
	if o.RunDir == "/" {
		return o, fmt.Errorf("merge: RunDir must not be /")
	}
	var hs []string
	for _, h := range o.Hierarchies {
		if !path.IsAbs(h) || path.Clean(h) == "/" {
			return o, fmt.Errorf("merge: hierarchy %q: want an absolute path below /", h)
		}
		h = path.Clean(h)
		if slices.Contains(hs, h) {
			continue
		}
		// systemd-sysext mounts every overlay in a private workspace first and then binds them
		// into place, so a nested hierarchy sees its host directory, not the outer merge. Merge
		// mounts in place and does not reproduce that; nested lists are refused.
		for _, other := range hs {
			if strings.HasPrefix(h+"/", other+"/") || strings.HasPrefix(other+"/", h+"/") {
				return o, fmt.Errorf("merge: hierarchies %s and %s nest; merging nested hierarchies is not supported", other, h)
			}
		}
		hs = append(hs, h)
	}
	o.Hierarchies = hs
	return o, nil
}
