package plan

import (
	"fmt"
	"strings"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hwmatch"
)

// reprobeList picks the devices to re-probe per reprobe.mode:
//   - failed: devices whose firmware load failed and that a selected image (or the system, since)
//     now provides that firmware for;
//   - matched: those, plus every device a selected image was chosen for;
//   - off: none.
//
// Devices in reprobe.exclude are left out. USB devices themselves (not interfaces) are never
// candidates: drivers bind to interfaces, and re-enumerating the device is a method, not a target.
func reprobeList(devices []*hwmatch.Device, cfg config.Reprobe, s *selector) []Reprobe {
	out := []Reprobe{}
	if cfg.Mode == config.ReprobeOff {
		return out
	}
	excluded := map[string]bool{}
	for _, id := range cfg.Exclude {
		excluded[id] = true
	}
	for _, d := range devices {
		if excluded[d.ID] || (d.Bus == "usb" && !strings.Contains(d.ID, ":")) {
			continue
		}
		why := failedAndNowProvided(d, s)
		if why == "" && cfg.Mode == config.ReprobeMatched && (s.matched[d.ID] || len(s.served[d.ID]) > 0) {
			why = "a selected image serves it (reprobe.mode matched)"
		}
		if why == "" {
			continue
		}
		out = append(out, methodFor(d, why))
	}
	return out
}

// failedAndNowProvided explains why a device whose firmware failed can now succeed, or "": a
// selected image provides the file (whichever device it was selected for: once visible, the
// firmware is there for every driver), or the system has it now.
func failedAndNowProvided(d *hwmatch.Device, s *selector) string {
	for _, name := range d.FirmwareFailed {
		if s.served[d.ID][name] || s.selectedProvides(name) {
			return fmt.Sprintf("%s failed to load; a selected image provides it", name)
		}
		if where := s.present(name); where != "" {
			return fmt.Sprintf("%s failed to load; the system has it now at %s", name, where)
		}
	}
	return ""
}

// methodFor chooses the first re-probe method and the escalation path for a device.
func methodFor(d *hwmatch.Device, why string) Reprobe {
	r := Reprobe{Device: d.ID, Bus: d.Bus, Why: why}
	switch {
	case d.Driver != "":
		// Bound, but degraded or without its firmware: only an unbind + bind probes again.
		r.Method = MethodRebind
	default:
		r.Method = MethodDriversProbe
	}
	switch d.Bus {
	case "usb":
		r.Fallbacks = []string{MethodUSBReenumerate}
	case "pci":
		r.Fallbacks = []string{MethodPCIRescan}
	default:
		r.Fallbacks = []string{}
	}
	return r
}
