// Package apply carries out a plan at a boot point: it mounts the selected images and makes
// their firmware visible to the kernel (stages/merge), re-probes the devices that failed
// (stages/reprobe), and writes the report (stages/report). `apply --dry-run` stops after the plan
// and the merge it would make, from the same code path.
package apply

import (
	"fmt"
	"io"
	"path"
	"runtime/debug"
	"strings"
	"time"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/merge"
	"github.com/kairos-io/kairos-firmware/stages/plan"
	"github.com/kairos-io/kairos-firmware/stages/report"
	"github.com/kairos-io/kairos-firmware/stages/reprobe"
	"github.com/kairos-io/kairos-firmware/stages/sysops"
)

// InitrdRelease marks an initrd (systemd's convention); its presence makes /sysroot the
// default target root.
const InitrdRelease = "/etc/initrd-release"

// DefaultSysroot is where an initrd mounts the real root.
const DefaultSysroot = "/sysroot"

// SysrootFor is the default target root: DefaultSysroot in an initrd (InitrdRelease exists
// under root), "/" otherwise.
func SysrootFor(root *hostfs.Root) string {
	if _, err := root.FS.Stat(InitrdRelease); err == nil {
		return DefaultSysroot
	}
	return "/"
}

// Options says what apply works on.
type Options struct {
	// Root is the running system: devices, kernel, mounts, /run.
	Root *hostfs.Root
	// Sysroot is the target root as seen under Root; "" picks DefaultSysroot in an initrd
	// (InitrdRelease exists) and "/" otherwise. Config, store and boot state come from it.
	Sysroot       string
	KernelRelease string
	KmsgPath      string
	ConfigFiles   []string
	DryRun        bool
	Ops           sysops.Ops
	// Console receives the human log lines; they also go to the kernel log unless DryRun.
	Console io.Writer
	// ReportPath defaults to report.DefaultPath.
	ReportPath string
	// Merge overrides merge options other than Sysroot and DryRun (tests point
	// FirmwareClassPath at a file of their own).
	Merge merge.Options
}

// Result is what Run did.
type Result struct {
	Plan   *plan.Plan
	Merge  *merge.State
	Report *report.Report
}

// Failed reports whether anything of ours failed or a device stayed unbound: what --strict
// turns into a non-zero exit.
func (r *Result) Failed() bool {
	if len(r.Report.Errors) > 0 || len(r.Report.ConfigErrors) > 0 {
		return true
	}
	for _, img := range r.Report.Images {
		if img.Outcome == report.ImageFailed {
			return true
		}
	}
	for _, d := range r.Report.Devices {
		if d.Outcome == report.DeviceStillUnbound {
			return true
		}
	}
	return false
}

// Run plans, merges, re-probes and reports. It never fails as a whole once it has a root: every
// failure is recorded in the report, and the boot goes on. Even a bug of ours (a panic) ends in
// the report and a normal return, not in a crashed boot step.
func Run(opts Options) (res *Result) {
	defer tuneGC()()
	ops := opts.Ops
	started := ops.Now()
	command := "apply"
	if opts.DryRun {
		command = "apply --dry-run"
	}
	rep := report.New(command, started.UTC())
	log := report.NewLogger(opts.Root, opts.Console, !opts.DryRun)
	defer log.Close()
	res = &Result{Report: rep}
	defer func() {
		if r := recover(); r != nil {
			rep.Errorf("internal error (a bug of kairos-firmware, please report it): %v\n%s", r, debug.Stack())
			log.Warnf("internal error: %v; the boot goes on", r)
			res = finish(opts, res, log, started)
		}
	}()

	sysroot := opts.Sysroot
	if sysroot == "" {
		sysroot = SysrootFor(opts.Root)
	}
	rep.Sysroot = sysroot
	target := opts.Root
	if sysroot != "/" {
		t, err := hostfs.New(opts.Root.Real(sysroot))
		if err != nil {
			rep.Errorf("sysroot %s: %v; nothing applied", sysroot, err)
			log.Warnf("sysroot %s: %v; nothing applied", sysroot, err)
			return finish(opts, res, log, started)
		}
		target = t
	}

	// 1. Plan.
	t0 := ops.Now()
	in, err := plan.Gather(plan.Options{Root: opts.Root, Target: target, KernelRelease: opts.KernelRelease,
		KmsgPath: opts.KmsgPath, ConfigFiles: opts.ConfigFiles})
	if err != nil {
		rep.Errorf("gathering the plan's inputs: %v", err)
		return finish(opts, res, log, started)
	}
	t1 := ops.Now()
	p := plan.DecideVerified(in)
	res.Plan = p
	rep.Timings.GatherMS, rep.Timings.PlanMS = ms(t1.Sub(t0)), ms(ops.Now().Sub(t1))
	rep.KernelRelease, rep.BootState = p.KernelRelease, string(p.BootState)
	rep.ConfigErrors = append(rep.ConfigErrors, p.ConfigErrors...)
	rep.Warnings = append(rep.Warnings, p.Warnings...)
	for _, e := range p.ConfigErrors {
		log.Warnf("config error (built-in defaults apply): %s", e.Error())
	}
	for _, r := range p.Rejected {
		rep.Images = append(rep.Images, report.Image{Name: r.Name, Path: r.Path, Outcome: report.ImageRejected, Reason: r.Reason})
		log.Warnf("image %s (%s) rejected: %s", r.Name, r.Path, r.Reason)
	}
	for _, u := range p.Unresolved {
		rep.Warnings = append(rep.Warnings, u)
		log.Warnf("unresolved: %s", u)
	}
	log.Printf("kernel %s, boot state %s, sysroot %s: %d images selected, %d devices to re-probe",
		p.KernelRelease, p.BootState, sysroot, len(p.Selected), len(p.Reprobe))

	// 2. Merge: mount the selected images, firmware_class.path, the sysext merge, links.
	t2 := ops.Now()
	images := selectedImages(in.Images, p.Selected)
	mopts := opts.Merge
	mopts.Sysroot, mopts.DryRun = sysroot, opts.DryRun
	if len(images) > 0 || !opts.DryRun {
		st, err := merge.Merge(opts.Root, ops, images, mopts)
		res.Merge = st
		if err != nil {
			rep.Errorf("merge: %v", err)
			log.Warnf("merge: %v", err)
		}
		recordMerge(rep, log, st, images, opts.DryRun)
	}
	rep.Timings.MergeMS = ms(ops.Now().Sub(t2))

	// 3. Re-probe.
	t3 := ops.Now()
	if opts.DryRun {
		for _, r := range p.Reprobe {
			rep.Devices = append(rep.Devices, report.Device{Device: r.Device, Bus: r.Bus, Outcome: report.DevicePlanned, Method: r.Method, Reason: r.Why})
		}
	} else if len(p.Reprobe) > 0 {
		ropts := reprobe.Options{}
		if opts.KmsgPath != "" { // a log file given on the command line is a real path
			ropts.KmsgFS, ropts.KmsgPath = vfs.OSFS, opts.KmsgPath
		}
		results := reprobe.Run(opts.Root, ops, p.Devices, p.Reprobe, p.Config.Reprobe, ropts)
		for _, r := range results {
			rep.Devices = append(rep.Devices, report.Device{Device: r.Device, Bus: r.Bus, Outcome: string(r.Outcome), Reason: r.Reason,
				Method: r.Method, Tried: r.Tried, Attempts: r.Attempts, Driver: r.Driver, DurationMS: ms(r.Duration), FirmwareFailed: r.FirmwareFailed})
			switch r.Outcome {
			case reprobe.OutcomeBound:
				log.Printf("device %s (%s): bound to %s by %s after %d attempt(s)", r.Device, r.Bus, r.Driver, r.Method, r.Attempts)
			default:
				log.Warnf("device %s (%s): %s: %s", r.Device, r.Bus, r.Outcome, r.Reason)
			}
		}
	}
	rep.Timings.ReprobeMS = ms(ops.Now().Sub(t3))

	// 4. Bill of materials, after the re-probe so that hashing never delays a device.
	t4 := ops.Now()
	if res.Merge != nil && !opts.DryRun {
		rep.Firmware = billOfMaterials(opts.Root, res.Merge, images, p.Selected, rep)
	}
	rep.Timings.BOMMS = ms(ops.Now().Sub(t4))
	return finish(opts, res, log, started)
}

// finish stamps the report and writes it (not in a dry run: it changes nothing).
func finish(opts Options, res *Result, log *report.Logger, started time.Time) *Result {
	rep := res.Report
	now := opts.Ops.Now()
	rep.Finished = now.UTC()
	rep.Timings.TotalMS = ms(now.Sub(started))
	if opts.DryRun {
		return res
	}
	p := opts.ReportPath
	if p == "" {
		p = report.DefaultPath
	}
	if err := report.Write(opts.Root, p, rep); err != nil {
		rep.Errorf("%v", err)
		log.Warnf("%v", err)
	}
	log.Printf("done in %d ms: %d images merged, %d devices bound, %d errors; report %s",
		rep.Timings.TotalMS, count(rep.Images, report.ImageMerged), countDevices(rep.Devices, report.DeviceBound), len(rep.Errors), opts.Root.Real(p))
	return res
}

func selectedImages(all []*manifests.Image, selected []plan.Selection) []*manifests.Image {
	want := map[string]bool{}
	for _, s := range selected {
		want[s.Name] = true
	}
	var out []*manifests.Image
	for _, img := range all {
		if want[img.Name] {
			out = append(out, img)
			delete(want, img.Name) // the first of a name, as the plan chose
		}
	}
	return out
}

// recordMerge turns the merge state into the report's image entries and mechanism.
func recordMerge(rep *report.Report, log *report.Logger, st *merge.State, images []*manifests.Image, dry bool) {
	if st == nil {
		for _, img := range images {
			rep.Images = append(rep.Images, report.Image{Name: img.Name, Path: img.Path, Outcome: report.ImageFailed, Reason: "merge did not run"})
		}
		return
	}
	for _, is := range st.Images {
		e := report.Image{Name: is.Name, Path: is.Path, Mount: is.Mount, Outcome: report.ImageMerged}
		switch {
		case is.Error != "": // logged with the other problems below
			e.Outcome, e.Reason, e.Mount = report.ImageFailed, is.Error, ""
		case dry:
			e.Outcome = report.ImagePlanned
		default:
			log.Printf("image %s mounted read-only on %s", is.Name, is.Mount)
		}
		rep.Images = append(rep.Images, e)
	}
	if st.Firmware.Dir != "" {
		rep.Mechanism = "firmware_class.path=" + st.Firmware.Dir
		if st.Firmware.Error != "" {
			rep.Errorf("firmware_class.path: %s", st.Firmware.Error)
			log.Warnf("firmware_class.path: %s", st.Firmware.Error)
		} else if !dry {
			log.Printf("firmware visible to the kernel: firmware_class.path=%s (images, top first: %s)", st.Firmware.Dir, strings.Join(st.Firmware.Layers, ", "))
		}
	}
	for _, problem := range st.Problems() {
		rep.Warnings = append(rep.Warnings, problem)
		log.Warnf("%s", problem)
	}
}

// billOfMaterials lists every firmware file made visible, with the image the kernel reads it
// from (the top layer that has it) and its sha256. The sha256 is the embedded manifest's; an
// image without a manifest has hashed, from its file (hashAll), only the files the plan chose it
// for: hashing a whole linux-firmware image (500 MB) would hold the boot for seconds. The other
// files of such an image are listed without a digest, and a warning says so. Hashing runs on
// every core.
func billOfMaterials(root *hostfs.Root, st *merge.State, images []*manifests.Image, selected []plan.Selection, rep *report.Report) []report.Firmware {
	byName := map[string]*manifests.Image{}
	for _, img := range images {
		byName[img.Name] = img
	}
	needed := map[string]map[string]bool{}
	for _, sel := range selected {
		needed[sel.Name] = map[string]bool{}
		for _, r := range sel.Reasons {
			for _, f := range r.Firmware {
				needed[sel.Name][f] = true
			}
		}
	}
	mounted := map[string]string{} // image name -> its file, a real path
	for _, is := range st.Images {
		if is.Error == "" {
			mounted[is.Name] = root.Real(is.File)
		}
	}
	bom := []report.Firmware{}
	if st.Firmware.Dir == "" {
		return bom
	}
	var jobs []hashJob
	unhashed := map[string]int{}
	seen := map[string]bool{}
	for _, layer := range st.Firmware.Layers {
		img, file := byName[layer], mounted[layer]
		if img == nil || file == "" {
			continue
		}
		for _, f := range img.Firmware {
			if seen[f.Name] {
				continue
			}
			seen[f.Name] = true
			stored := strings.TrimPrefix(f.Path, manifests.FirmwareDir+"/")
			entry := report.Firmware{Name: f.Name, Image: layer, Path: path.Join(st.Firmware.Dir, stored), Size: f.Size, SHA256: f.SHA256}
			switch {
			case entry.SHA256 != "":
			case needed[layer][f.Name]:
				jobs = append(jobs, hashJob{entry: len(bom), image: file, path: f.Path})
			default:
				unhashed[layer]++
			}
			bom = append(bom, entry)
		}
	}
	for _, e := range hashAll(bom, jobs) {
		rep.Errorf("bill of materials: %v", e)
	}
	for layer, n := range unhashed {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("image %s has no embedded manifest: %d of its firmware files are listed without a sha256 (kairos-firmware split writes manifests)", layer, n))
	}
	return bom
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func count(images []report.Image, outcome string) int {
	n := 0
	for _, i := range images {
		if i.Outcome == outcome {
			n++
		}
	}
	return n
}

func countDevices(devices []report.Device, outcome string) int {
	n := 0
	for _, d := range devices {
		if d.Outcome == outcome {
			n++
		}
	}
	return n
}
