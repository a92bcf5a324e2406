// Package report is what apply leaves behind for people and tools: a JSON report per boot in
// /run/kairos-firmware/report.json, and log lines on the console and in the kernel log, as Kairos'
// own tools write them.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
)

// Version is the report format's version.
const Version = 1

// DefaultPath is where apply writes the report (under the running root; the initrd's /run
// becomes the real root's /run at switch_root).
const DefaultPath = "/run/kairos-firmware/report.json"

// Report is one run of apply.
type Report struct {
	Version       int       `json:"version"`
	Command       string    `json:"command"` // "apply", "apply --dry-run", "unmerge"
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	KernelRelease string    `json:"kernel_release"`
	Sysroot       string    `json:"sysroot"`
	BootState     string    `json:"boot_state"`
	// Mechanism says how the firmware was made visible ("firmware_class.path=/run/...").
	Mechanism    string         `json:"mechanism"`
	ConfigErrors []config.Error `json:"config_errors"`
	Images       []Image        `json:"images"`
	Devices      []Device       `json:"devices"`
	// Firmware is the bill of materials: every firmware file made visible.
	Firmware []Firmware `json:"firmware"`
	Timings  Timings    `json:"timings"`
	// Errors are failures of ours; they never stop a boot. Warnings are degraded inputs.
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
}

// Image outcomes.
const (
	ImageMerged   = "merged"
	ImageRejected = "rejected"
	ImageFailed   = "failed"
	ImagePlanned  = "planned" // dry run
)

// Image is one image's fate.
type Image struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Mount is where the image is mounted read-only, when merged.
	Mount string `json:"mount,omitempty"`
}

// Device outcomes.
const (
	DeviceBound        = "bound"
	DeviceStillUnbound = "still-unbound"
	DeviceSkipped      = "skipped"
	DevicePlanned      = "planned" // dry run
)

// Device is one re-probed (or skipped) device.
type Device struct {
	Device  string `json:"device"`
	Bus     string `json:"bus"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Method is the method of the last attempt; Tried lists every attempt's, in order.
	Method   string   `json:"method,omitempty"`
	Tried    []string `json:"tried,omitempty"`
	Attempts int      `json:"attempts"`
	Driver   string   `json:"driver,omitempty"`
	// DurationMS is the time spent re-probing this device.
	DurationMS     int64    `json:"duration_ms"`
	FirmwareFailed []string `json:"firmware_failed,omitempty"`
}

// Firmware is one file of the bill of materials.
type Firmware struct {
	Name   string `json:"name"`  // what drivers request
	Image  string `json:"image"` // the image that provides it (the top one when several do)
	Path   string `json:"path"`  // where the kernel reads it, as a path of the running system
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Timings are the durations of apply's steps, in milliseconds.
type Timings struct {
	GatherMS  int64 `json:"gather_ms"`
	PlanMS    int64 `json:"plan_ms"`
	MergeMS   int64 `json:"merge_ms"`
	ReprobeMS int64 `json:"reprobe_ms"`
	BOMMS     int64 `json:"bom_ms"`
	TotalMS   int64 `json:"total_ms"`
}

// New starts a report.
func New(command string, now time.Time) *Report {
	return &Report{
		Version: Version, Command: command, Started: now,
		ConfigErrors: []config.Error{}, Images: []Image{}, Devices: []Device{}, Firmware: []Firmware{},
		Errors: []string{}, Warnings: []string{},
	}
}

// Errorf records a failure of ours.
func (r *Report) Errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}

// Write stores the report at p under root atomically (a temporary file, then rename), so a
// reader never sees half a report.
func Write(root *hostfs.Root, p string, r *Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	dir := path.Dir(p)
	if err := mkdirAll(root, dir); err != nil {
		return fmt.Errorf("report: %s: %w", root.Real(dir), err)
	}
	tmp := p + ".tmp"
	if err := root.FS.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := root.FS.Rename(tmp, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Load reads a report written by Write.
func Load(root *hostfs.Root, p string) (*Report, error) {
	data, err := root.FS.ReadFile(p)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // the path is named once
			err = pe.Err
		}
		return nil, fmt.Errorf("report %s: %w (has kairos-firmware apply run on this boot?)", root.Real(p), err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", root.Real(p), err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("report %s: version %d, this kairos-firmware reads version %d", root.Real(p), r.Version, Version)
	}
	return &r, nil
}

func mkdirAll(root *hostfs.Root, dir string) error {
	if dir == "/" || dir == "." {
		return nil
	}
	if info, err := root.FS.Stat(dir); err == nil {
		if !info.IsDir() {
			return fmt.Errorf("not a directory")
		}
		return nil
	}
	if err := mkdirAll(root, path.Dir(dir)); err != nil {
		return err
	}
	if err := root.FS.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return nil
}
