package plan

import (
	"fmt"
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/hwmatch/fwpath"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/manifests/sysextcheck"
	"github.com/kairos-io/kairos-firmware/manifests/verity"
)

// Options says which system to plan for.
type Options struct {
	// Root is the running system: its devices, kernel, kernel log and firmware search path.
	Root *hostfs.Root
	// Target is the root the configuration, the extension store and the boot state are read
	// from: the real root mounted at /sysroot when planning in an initrd. nil means Root.
	Target        *hostfs.Root
	KernelRelease string
	KmsgPath      string
	// ConfigFiles are extra cloud-config files (--config), highest precedence.
	ConfigFiles []string
}

// dmiDir holds the machine's DMI fields (drivers/firmware/dmi-id.c).
const dmiDir = "/sys/class/dmi/id"

// Gather reads everything Decide needs: from the running system (opts.Root) the device
// inventory, the DMI fields the configuration asks about and the firmware already visible to
// the kernel; from the target root the configuration, the boot state and the images of its
// stores. Nothing in it fails as a whole: what cannot be read becomes a warning, a config
// error or a rejected image.
func Gather(opts Options) (Input, error) {
	target := opts.Target
	if target == nil {
		target = opts.Root
	}
	// The inventory and the images are independent and both mostly wait on reads: they run
	// side by side (boot time; the machine has at least two cores more often than not).
	type detected struct {
		inv *hwmatch.Inventory
		err error
	}
	done := make(chan detected, 1)
	go func() {
		inv, err := hwmatch.Detect(hwmatch.Options{Root: opts.Root, KernelRelease: opts.KernelRelease, KmsgPath: opts.KmsgPath})
		done <- detected{inv, err}
	}()
	cfg, sources, cfgErrs := config.Load(target, opts.ConfigFiles)
	in := Input{
		Config:        cfg,
		ConfigErrors:  cfgErrs,
		ConfigSources: sources,
		DMI:           readDMI(opts.Root, cfg),
		BootState:     detectBootState(target, opts.Root),
		Warnings:      []string{},
	}
	in.Stores = StoreDirs(in.BootState, cfg.Stores)
	images, rejected := scanStores(target, in.Stores)
	in.ImageRoot = target
	in.Images, in.Rejected = admitImages(opts.Root, target, images, rejected, cfg, &in.Warnings)
	d := <-done
	if d.err != nil {
		return Input{}, d.err
	}
	inv := d.inv
	in.KernelRelease, in.Devices = inv.KernelRelease, inv.Devices
	in.Warnings = append(append([]string{}, inv.Warnings...), in.Warnings...)
	search := fwpath.New(opts.Root, inv.KernelRelease)
	in.Present, in.Supports = search.Find, search.Supports
	return in, nil
}

// admitImages keeps the images systemd-sysext would accept for this system and the signature
// policy allows; the others join the rejected, with the field or check that refused them.
//
// SYSEXT_SCOPE: firmware made visible before the pivot is the booting system's, so an image is
// judged as systemd-sysext judges it for the target root (scope "system", the target's
// os-release). An image declaring only "initrd" scope is admitted when it passes for the
// running initrd instead (scope "initrd", the initrd's os-release). Images without SYSEXT_SCOPE
// (AuroraBoot's, hadron-firmware's) are "system portable" and pass for the system.
func admitImages(running, target *hostfs.Root, images []*manifests.Image, rejected []manifests.Rejected, cfg *config.Config, warnings *[]string) ([]*manifests.Image, []manifests.Rejected) {
	if len(images) == 0 {
		return images, rejected
	}
	targetHost, err := sysextcheck.ReadHost(target)
	if err != nil {
		*warnings = append(*warnings, fmt.Sprintf("target os-release: %v", err))
	}
	runningHost := targetHost
	if running != target {
		if runningHost, err = sysextcheck.ReadHost(running); err != nil {
			runningHost = nil
		}
	}
	arch := sysextcheck.HostArch()
	uki := isUKIBoot(running) || isUKIBoot(target)
	trust := verity.LoadTrustStore(running, verity.DefaultCertDirs)
	if len(cfg.Certificates) > 0 {
		// Configured directories are the target's (/oem, /usr/local, ...); their certificates
		// come after /run/verity.d's.
		more := verity.LoadTrustStore(target, cfg.Certificates)
		trust.Dirs = append(trust.Dirs, more.Dirs...)
		trust.Certs = append(trust.Certs, more.Certs...)
		trust.Problems = append(trust.Problems, more.Problems...)
	}
	for _, problem := range trust.Problems {
		*warnings = append(*warnings, problem.Error())
	}
	var admitted []*manifests.Image
	for _, img := range images {
		reason := ""
		if err := sysextcheck.Check(img.Release, targetHost, "system", arch); err != nil {
			if running == target || runningHost == nil || sysextcheck.Check(img.Release, runningHost, "initrd", arch) != nil {
				reason = "systemd-sysext would refuse it: " + err.Error()
			}
		}
		if reason == "" {
			if err := manifests.Admit(target, img, string(cfg.Signatures), uki, trust); err != nil {
				reason = err.Error()
			}
		}
		if reason != "" {
			rejected = append(rejected, manifests.Rejected{Name: img.Name, Path: img.Path, Target: img.Target, Reason: reason})
			continue
		}
		admitted = append(admitted, img)
	}
	return admitted, rejected
}

// isUKIBoot: immucore marks Trusted Boot (UKI) boots with /run/cos/uki_boot_mode.
func isUKIBoot(root *hostfs.Root) bool {
	_, err := root.FS.Stat("/run/cos/uki_boot_mode")
	return err == nil
}

// readDMI reads the DMI fields that `dmi` matchers name, and only those.
func readDMI(root *hostfs.Root, cfg *config.Config) map[string]string {
	dmi := map[string]string{}
	for _, rule := range cfg.Extensions {
		for _, m := range rule.When {
			for field := range m.DMI {
				if _, done := dmi[field]; done {
					continue
				}
				if data, err := root.FS.ReadFile(path.Join(dmiDir, field)); err == nil {
					dmi[field] = strings.TrimSpace(string(data))
				}
			}
		}
	}
	return dmi
}

// storeStateDirs are the flat store's enable directories, which are not images themselves.
var storeStateDirs = []string{"active", "passive", "recovery", "common"}

// scanStores reads the images of every store directory in precedence order. An image reached
// through several directories (immucore's /run/extensions link to the active/ link to the flat
// store file) counts once; a different image with a name already taken is rejected, naming both.
func scanStores(root *hostfs.Root, dirs []string) ([]*manifests.Image, []manifests.Rejected) {
	var images []*manifests.Image
	var rejected []manifests.Rejected
	byName := map[string]*manifests.Image{}
	for _, dir := range dirs {
		var skip []string
		if path.Clean(dir) == StoreRoot {
			skip = storeStateDirs
		}
		imgs, rej := manifests.ScanStore(root, dir, skip...)
		rejected = append(rejected, rej...)
		for _, img := range imgs {
			first, taken := byName[img.Name]
			switch {
			case !taken:
				byName[img.Name] = img
				images = append(images, img)
			case realFile(first) != realFile(img):
				rejected = append(rejected, manifests.Rejected{Name: img.Name, Path: img.Path, Target: img.Target,
					Reason: fmt.Sprintf("image name %q is already taken by %s (a store searched earlier); %s is ignored", img.Name, first.Path, img.Path)})
			}
		}
	}
	return images, rejected
}

func realFile(img *manifests.Image) string {
	if img.Target != "" {
		return img.Target
	}
	return img.Path
}
