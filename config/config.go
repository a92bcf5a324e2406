// Package config reads the `firmware:` block of the Kairos cloud-config.
//
// The block is collected the way Kairos collects its configuration (the same directories, the
// same `#cloud-config` header rule, the same deep merge, the kernel command line in dot notation
// on top), then decoded strictly: every unknown key, wrong type or malformed pattern is an Error
// that names the file, line, column, key path and value. docs/configuration.md describes every
// key.
package config

import (
	"fmt"
	"strings"
	"time"
)

// SignaturePolicy says how extension image signatures are treated.
type SignaturePolicy string

const (
	// SignaturesAuto is SignaturesRequired on a UKI boot; otherwise it verifies a signature when
	// the image carries one and accepts unsigned images.
	SignaturesAuto SignaturePolicy = "auto"
	// SignaturesRequired refuses images that carry no valid signature.
	SignaturesRequired SignaturePolicy = "required"
	// SignaturesIgnore does not check signatures.
	SignaturesIgnore SignaturePolicy = "ignore"
)

// ReprobeMode says which devices are re-probed once firmware became visible.
type ReprobeMode string

const (
	// ReprobeFailed re-probes the devices whose firmware load failed.
	ReprobeFailed ReprobeMode = "failed"
	// ReprobeMatched re-probes every device a selected image was chosen for.
	ReprobeMatched ReprobeMode = "matched"
	// ReprobeOff re-probes nothing.
	ReprobeOff ReprobeMode = "off"
)

// Built-in defaults and limits, documented in docs/configuration.md.
const (
	DefaultAttempts = 3
	MinAttempts     = 1
	MaxAttempts     = 10
	DefaultTimeout  = 10 * time.Second
	// MaxTimeout bounds reprobe.timeout so that a typo cannot hold the boot for hours.
	MaxTimeout = 5 * time.Minute
)

// Config is the parsed, defaulted `firmware:` block.
type Config struct {
	// Auto selects images by the detected hardware.
	Auto bool `json:"auto"`
	// Signatures is the signature policy for extension images.
	Signatures SignaturePolicy `json:"signatures"`
	// Certificates are extra directories of X.509 certificates that verify image signatures,
	// absolute paths in the target root, read after /run/verity.d.
	Certificates []string `json:"certificates"`
	// Stores are extra directories searched for extension images, absolute, in order.
	Stores []string `json:"stores"`
	// Extensions are the explicit selection rules, in merge order. Several rules may name the
	// same image when they come from different sources; the image is selected if any matches.
	Extensions []Extension `json:"extensions"`
	// Reprobe configures the re-probe of devices after the firmware became visible.
	Reprobe Reprobe `json:"reprobe"`
	// Install lists image URIs (oci:, docker:, container:, file:, http:, https:) to install.
	Install []string `json:"install"`
}

// Extension selects the image Name when any of When matches, or always when When is empty.
type Extension struct {
	// Name is the image name: the file name without .sysext.raw / .raw.
	Name string `json:"name"`
	// When is any-of; empty means always.
	When []Match `json:"when,omitempty"`
}

// Match is one entry of a `when` list. Every field that is set must match (all-of); the device
// fields (USB, PCI with Class, Modalias, Driver) must match one and the same device, DMI matches
// the machine.
type Match struct {
	// USB is a vendor:product pattern of a USB device.
	USB *IDPattern `json:"usb,omitempty"`
	// PCI is a vendor:product pattern of a PCI device.
	PCI *IDPattern `json:"pci,omitempty"`
	// Class is a prefix of the PCI class code: 2, 4 or 6 lower-case hex digits without 0x.
	Class string `json:"class,omitempty"`
	// Modalias is an fnmatch glob over the device's modalias.
	Modalias string `json:"modalias,omitempty"`
	// Driver is a kernel module name that matches the device, with '-' written as '_'.
	Driver string `json:"driver,omitempty"`
	// DMI maps /sys/class/dmi/id/ field names to fnmatch globs over their values.
	DMI map[string]string `json:"dmi,omitempty"`
}

// IDPattern is a vendor:product id pattern. Each side is 4 lower-case hex digits or "*".
type IDPattern struct {
	Vendor  string
	Product string
}

// String returns the pattern as written in the configuration, "vvvv:pppp".
func (p IDPattern) String() string {
	return p.Vendor + ":" + p.Product
}

// MarshalText renders the pattern as "vvvv:pppp" so that JSON shows it as one string.
func (p IDPattern) MarshalText() ([]byte, error) {
	return []byte(p.String()), nil
}

// UnmarshalText reads "vvvv:pppp" back, so that JSON written by MarshalText round-trips (the
// report and plan files are read back by `status`). Validation of configuration files is the
// decoder's job; this only splits.
func (p *IDPattern) UnmarshalText(text []byte) error {
	vendor, product, ok := strings.Cut(string(text), ":")
	if !ok {
		return fmt.Errorf("id pattern %q: want vendor:product", text)
	}
	p.Vendor, p.Product = vendor, product
	return nil
}

// Matches reports whether a device with the given vendor and product ids matches the pattern.
func (p IDPattern) Matches(vendor, product uint16) bool {
	return idSideMatches(p.Vendor, vendor) && idSideMatches(p.Product, product)
}

func idSideMatches(side string, id uint16) bool {
	return side == "*" || side == fmt.Sprintf("%04x", id)
}

// Reprobe configures the re-probe of devices.
type Reprobe struct {
	// Mode selects the devices to re-probe.
	Mode ReprobeMode `json:"mode"`
	// Exclude lists sysfs device names that are never re-probed.
	Exclude []string `json:"exclude"`
	// Force lists sysfs device names for which the safety guards are lifted.
	Force []string `json:"force"`
	// Attempts is how many times a device is re-probed, 1..10.
	Attempts int `json:"attempts"`
	// Timeout is how long one attempt waits for the device to bind.
	Timeout Duration `json:"timeout"`
}

// Duration is a time.Duration that JSON shows as a Go duration string ("10s").
type Duration time.Duration

// String returns the duration in Go notation.
func (d Duration) String() string {
	return time.Duration(d).String()
}

// MarshalText renders the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalText reads a Go duration string back ("10s").
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("duration %q: %w", text, err)
	}
	*d = Duration(v)
	return nil
}

// Defaults returns the built-in configuration that applies when no source sets a key, and as a
// whole whenever the configuration has errors.
func Defaults() *Config {
	return &Config{
		Auto:         true,
		Signatures:   SignaturesAuto,
		Certificates: []string{},
		Stores:       []string{},
		Extensions:   []Extension{},
		Reprobe: Reprobe{
			Mode:     ReprobeFailed,
			Exclude:  []string{},
			Force:    []string{},
			Attempts: DefaultAttempts,
			Timeout:  Duration(DefaultTimeout),
		},
		Install: []string{},
	}
}
