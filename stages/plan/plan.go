// Package plan decides, without side effects, which firmware extension images a machine needs
// and which devices to re-probe once their firmware is visible, and says why. `plan` and
// `apply --dry-run` print what Decide returns; `apply` carries it out.
package plan

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch"
	"github.com/kairos-io/kairos-firmware/manifests"
)

// Input is everything a decision depends on. Gather collects it from a system.
type Input struct {
	KernelRelease string
	Devices       []*hwmatch.Device
	// DMI holds /sys/class/dmi/id/<field> values of the machine, for `dmi` matchers.
	DMI           map[string]string
	Config        *config.Config
	ConfigErrors  []config.Error
	ConfigSources []config.Source
	// BootState is the Kairos boot state; Stores the directories searched for images.
	BootState BootState
	Stores    []string
	// Warnings are inputs that were missing or unreadable.
	Warnings []string
	// Images are the usable images, in the order the stores were scanned.
	Images []*manifests.Image
	// Rejected are store entries that cannot be used, with the reason.
	Rejected []manifests.Rejected
	// ImageRoot is the root Images are read from (the target root), for DecideVerified.
	ImageRoot *hostfs.Root
	// Present reports where the running kernel would already find a firmware file ("" when it
	// would not): firmware present on the system is not a reason to select an image.
	Present func(name string) string
	// Supports reports whether the kernel reads firmware stored with a compression suffix
	// ("", ".zst", ".xz"); nil means every suffix.
	Supports func(suffix string) bool
}

// Plan is the decision.
type Plan struct {
	KernelRelease string            `json:"kernel_release"`
	BootState     BootState         `json:"boot_state"`
	Stores        []string          `json:"stores"`
	Devices       []*hwmatch.Device `json:"devices"`
	Selected      []Selection       `json:"selected"`
	Rejected      []Rejection       `json:"rejected"`
	Reprobe       []Reprobe         `json:"reprobe"`
	ConfigErrors  []config.Error    `json:"config_errors"`
	// Unresolved lists what the plan could not satisfy: rules naming an image no store has,
	// failed firmware no image provides.
	Unresolved []string `json:"unresolved"`
	// Config is the configuration in force (the defaults when ConfigErrors is not empty), and
	// ConfigSources the files and command line it was read from.
	Config        *config.Config  `json:"config"`
	ConfigSources []config.Source `json:"config_sources"`
	Warnings      []string        `json:"warnings"`
}

// Selection is an image to make visible, with every reason it was chosen.
type Selection struct {
	Name    string   `json:"name"`
	Path    string   `json:"path"`
	Reasons []Reason `json:"reasons"`
}

// Reason is one cause for selecting an image.
type Reason struct {
	// Device is the sysfs id of the device the reason is about; "" for the machine as a whole
	// (a rule without `when`, or a `dmi` matcher).
	Device string `json:"device"`
	// Rule says which rule selected the image: "extensions[0].when[1] (usb 2357:011e)",
	// "auto: failed in the kernel log" or "auto: declared by <module>, missing".
	Rule string `json:"rule"`
	// Firmware lists the firmware names the image provides for this reason (auto only).
	Firmware []string `json:"firmware"`
}

// Rejection is an image that cannot be used.
type Rejection struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Reprobe is a device to re-probe once the selected firmware is visible.
type Reprobe struct {
	Device string `json:"device"`
	Bus    string `json:"bus"`
	// Method is the first re-probe method to try; apply escalates through Fallbacks.
	Method    string   `json:"method"`
	Fallbacks []string `json:"fallbacks"`
	// Why says what made the device a candidate.
	Why string `json:"why"`
}

// Re-probe methods, in the order apply may escalate through them (docs/plan.md).
const (
	// MethodDriversProbe writes the device to /sys/bus/<bus>/drivers_probe: the kernel tries
	// every driver of the bus on an unbound device.
	MethodDriversProbe = "drivers_probe"
	// MethodRebind unbinds the bound driver and binds it again (a driver that bound degraded).
	MethodRebind = "rebind"
	// MethodUSBReenumerate unbinds and binds the interface's USB device through the generic
	// "usb" driver, as the spike's script did: the interfaces are created anew.
	MethodUSBReenumerate = "usb-reenumerate"
	// MethodPCIRescan removes the PCI device and rescans the bus: the last resort.
	MethodPCIRescan = "pci-rescan"
)

// Decide computes the plan. It is deterministic: the same input gives the same plan.
func Decide(in Input) *Plan {
	p := &Plan{
		KernelRelease: in.KernelRelease,
		BootState:     in.BootState,
		Stores:        append([]string{}, in.Stores...),
		ConfigSources: append([]config.Source{}, in.ConfigSources...),
		Warnings:      append([]string{}, in.Warnings...),
		Devices:       in.Devices,
		Selected:      []Selection{},
		Rejected:      []Rejection{},
		Reprobe:       []Reprobe{},
		ConfigErrors:  append([]config.Error{}, in.ConfigErrors...),
		Unresolved:    []string{},
	}
	if p.Devices == nil {
		p.Devices = []*hwmatch.Device{}
	}
	cfg := in.Config
	if cfg == nil {
		cfg = config.Defaults()
	}
	p.Config = cfg
	for _, r := range in.Rejected {
		// The reason need not repeat the path the rejection names.
		p.Rejected = append(p.Rejected, Rejection{Name: r.Name, Path: r.Path, Reason: strings.TrimPrefix(r.Reason, r.Path+": ")})
	}

	s := newSelector(in)
	s.explicitRules(cfg.Extensions)
	if cfg.Auto {
		s.auto()
	}
	p.Selected = s.selections()
	p.Unresolved = append(p.Unresolved, s.unresolved...)
	p.Reprobe = reprobeList(in.Devices, cfg.Reprobe, s)

	sort.Slice(p.Rejected, func(i, j int) bool {
		if p.Rejected[i].Name != p.Rejected[j].Name {
			return p.Rejected[i].Name < p.Rejected[j].Name
		}
		return p.Rejected[i].Path < p.Rejected[j].Path
	})
	sort.Strings(p.Unresolved)
	return p
}

// selector accumulates selections.
type selector struct {
	in         Input
	byName     map[string]*manifests.Image
	providers  map[string][]*manifests.Image // firmware name -> images that provide it for this kernel
	chosen     map[string]*Selection
	reasonAt   map[reasonKey]int // index of a (image, device, rule) reason in its selection
	order      []string
	unresolved []string
	// served records, per device, the firmware names some selected image provides for it.
	served map[string]map[string]bool
	// matched records the devices an explicit rule matched.
	matched map[string]bool
	// presentCache memoizes Input.Present: many devices declare the same firmware, and each
	// look-up stats up to 15 paths.
	presentCache map[string]string
}

// present is Input.Present, memoized; "" when absent or unknown.
func (s *selector) present(name string) string {
	if s.in.Present == nil {
		return ""
	}
	where, ok := s.presentCache[name]
	if !ok {
		where = s.in.Present(name)
		s.presentCache[name] = where
	}
	return where
}

func newSelector(in Input) *selector {
	s := &selector{
		in:        in,
		byName:    map[string]*manifests.Image{},
		providers: map[string][]*manifests.Image{},
		chosen:    map[string]*Selection{},
		reasonAt:  map[reasonKey]int{},
		served:    map[string]map[string]bool{},
		matched:   map[string]bool{},

		presentCache: map[string]string{},
	}
	for _, img := range in.Images {
		if _, dup := s.byName[img.Name]; dup {
			continue // the scan already rejected later duplicates; keep the first
		}
		s.byName[img.Name] = img
		seen := map[string]bool{}
		for _, f := range img.Firmware {
			if seen[f.Name] || !s.readable(f) {
				continue
			}
			seen[f.Name] = true
			s.providers[f.Name] = append(s.providers[f.Name], img)
		}
	}
	return s
}

// selectedProvides reports whether a selected image provides firmware name in a variant the
// kernel reads.
func (s *selector) selectedProvides(name string) bool {
	for _, img := range s.providers[name] {
		if _, ok := s.chosen[img.Name]; ok {
			return true
		}
	}
	return false
}

// readable says whether the running kernel can load the stored file (a .zst file is invisible
// to a kernel without CONFIG_FW_LOADER_COMPRESS_ZSTD).
func (s *selector) readable(f manifests.FirmwareFile) bool {
	if s.in.Supports == nil {
		return true
	}
	switch f.Compression {
	case "zstd":
		return s.in.Supports(".zst")
	case "xz":
		return s.in.Supports(".xz")
	}
	return s.in.Supports("")
}

type reasonKey struct{ image, device, rule string }

func (s *selector) add(img *manifests.Image, r Reason) {
	sel, ok := s.chosen[img.Name]
	if !ok {
		sel = &Selection{Name: img.Name, Path: img.Path, Reasons: []Reason{}}
		s.chosen[img.Name] = sel
		s.order = append(s.order, img.Name)
	}
	if r.Firmware == nil {
		r.Firmware = []string{}
	}
	key := reasonKey{img.Name, r.Device, r.Rule}
	if _, have := s.reasonAt[key]; have {
		return
	}
	s.reasonAt[key] = len(sel.Reasons)
	sel.Reasons = append(sel.Reasons, r)
	if r.Device != "" {
		for _, name := range r.Firmware {
			if s.served[r.Device] == nil {
				s.served[r.Device] = map[string]bool{}
			}
			s.served[r.Device][name] = true
		}
	}
}

func (s *selector) selections() []Selection {
	names := append([]string(nil), s.order...)
	sort.Strings(names)
	out := make([]Selection, 0, len(names))
	for _, n := range names {
		sel := s.chosen[n]
		sort.SliceStable(sel.Reasons, func(i, j int) bool {
			if sel.Reasons[i].Device != sel.Reasons[j].Device {
				return sel.Reasons[i].Device < sel.Reasons[j].Device
			}
			return sel.Reasons[i].Rule < sel.Reasons[j].Rule
		})
		out = append(out, *sel)
	}
	return out
}

// explicitRules selects each rule's image when one of its matchers matches.
func (s *selector) explicitRules(rules []config.Extension) {
	for i, rule := range rules {
		img := s.byName[rule.Name]
		if img == nil {
			s.unresolved = append(s.unresolved, fmt.Sprintf("extensions[%d]: no usable image named %q in the stores", i, rule.Name))
			continue
		}
		if len(rule.When) == 0 {
			s.add(img, Reason{Rule: fmt.Sprintf("extensions[%d]: always (no when)", i)})
			continue
		}
		for j, m := range rule.When {
			label := fmt.Sprintf("extensions[%d].when[%d] (%s)", i, j, describeMatch(m))
			if !dmiMatches(m.DMI, s.in.DMI) {
				continue
			}
			if !hasDeviceFields(m) {
				s.add(img, Reason{Rule: label})
				continue
			}
			for _, d := range s.in.Devices {
				if deviceMatches(m, d) {
					s.matched[d.ID] = true
					s.add(img, Reason{Device: d.ID, Rule: label, Firmware: provided(img, d)})
				}
			}
		}
	}
}

// provided lists the firmware a device's drivers declare or failed to load that img provides.
func provided(img *manifests.Image, d *hwmatch.Device) []string {
	want := map[string]bool{}
	for _, n := range d.Needs {
		want[n] = true
	}
	for _, n := range d.FirmwareFailed {
		want[n] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range img.Firmware {
		if want[f.Name] && !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// auto selects images by what devices need: firmware the kernel log says failed, and firmware
// a matching module declares that the running system lacks.
func (s *selector) auto() {
	for _, d := range s.in.Devices {
		for _, name := range d.FirmwareFailed {
			// Already on the system now (installed since the failure): a re-probe alone fixes it.
			if s.present(name) != "" {
				continue
			}
			if !s.provide(d, name, "auto: failed to load in the kernel log") {
				s.unresolved = append(s.unresolved, fmt.Sprintf("%s: %s failed to load and no image provides it", d.ID, name))
			}
		}
		// The firmware of the modules expected to drive the device (hwmatch.Device.Drivers):
		// not that of a catch-all module another one overrides, nor of any module when an
		// out-of-tree driver is bound.
		if len(d.Drivers) == 0 {
			continue
		}
		rule := fmt.Sprintf("auto: declared by %s, missing", strings.Join(d.Drivers, ", "))
		for _, name := range d.Needs {
			if s.present(name) != "" {
				continue
			}
			s.provide(d, name, rule)
		}
	}
}

// provide selects an image providing firmware name for device d. An image already selected is
// preferred; otherwise the most specific one (fewest firmware files), then the first by name,
// so that a per-driver image wins over a catch-all linux-firmware image.
func (s *selector) provide(d *hwmatch.Device, name, rule string) bool {
	candidates := s.providers[name]
	if len(candidates) == 0 {
		return false
	}
	best := candidates[0]
	for _, c := range candidates[1:] {
		if better(s, c, best) {
			best = c
		}
	}
	s.add(best, Reason{Device: d.ID, Rule: rule, Firmware: []string{name}})
	s.mergeFirmware(best.Name, d.ID, rule, name)
	return true
}

func better(s *selector, a, b *manifests.Image) bool {
	_, aChosen := s.chosen[a.Name]
	_, bChosen := s.chosen[b.Name]
	if aChosen != bChosen {
		return aChosen
	}
	if len(a.Firmware) != len(b.Firmware) {
		return len(a.Firmware) < len(b.Firmware)
	}
	return a.Name < b.Name
}

// mergeFirmware adds name to the reason (device, rule) of an image, so one reason lists every
// firmware file the image provides for it.
func (s *selector) mergeFirmware(image, device, rule, name string) {
	r := &s.chosen[image].Reasons[s.reasonAt[reasonKey{image, device, rule}]]
	if !slices.Contains(r.Firmware, name) {
		r.Firmware = append(r.Firmware, name)
		sort.Strings(r.Firmware)
	}
	if s.served[device] == nil {
		s.served[device] = map[string]bool{}
	}
	s.served[device][name] = true
}
