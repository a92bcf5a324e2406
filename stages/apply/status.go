package apply

import (
	"bufio"
	"bytes"
	"path"
	"strings"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/hwmatch/fwpath"
	"github.com/kairos-io/kairos-firmware/stages/report"
)

// StatusReport is the last report next to the live state it describes.
type StatusReport struct {
	Report *report.Report `json:"report"`
	// FirmwareClassPath is the kernel's firmware_class.path now.
	FirmwareClassPath string         `json:"firmware_class_path"`
	Images            []ImageStatus  `json:"images"`
	Devices           []DeviceStatus `json:"devices"`
}

// ImageStatus is a report image and whether its mount is still there.
type ImageStatus struct {
	report.Image
	Mounted bool `json:"mounted"`
}

// DeviceStatus is a report device and its driver now.
type DeviceStatus struct {
	report.Device
	DriverNow string `json:"driver_now"`
}

// Status reads the last report (reportPath, default report.DefaultPath) and checks the live
// state under root: mounts in /proc/self/mountinfo, firmware_class.path, each device's driver.
func Status(root *hostfs.Root, reportPath string) (*StatusReport, error) {
	if reportPath == "" {
		reportPath = report.DefaultPath
	}
	r, err := report.Load(root, reportPath)
	if err != nil {
		return nil, err
	}
	st := &StatusReport{Report: r, Images: []ImageStatus{}, Devices: []DeviceStatus{}}
	if data, err := root.FS.ReadFile(fwpath.ParameterPath); err == nil {
		st.FirmwareClassPath = strings.TrimSpace(string(data))
	}
	mounts := mountPoints(root)
	for _, img := range r.Images {
		st.Images = append(st.Images, ImageStatus{Image: img, Mounted: img.Mount != "" && mounts[root.Real(img.Mount)]})
	}
	for _, d := range r.Devices {
		link, _ := root.FS.Readlink(path.Join("/sys/bus", d.Bus, "devices", d.Device, "driver"))
		drv := ""
		if link != "" {
			drv = path.Base(link)
		}
		st.Devices = append(st.Devices, DeviceStatus{Device: d, DriverNow: drv})
	}
	return st, nil
}

// mountPoints reads the mount points of /proc/self/mountinfo under root (field 5, octal
// escapes as the kernel writes them: fs/proc_namespace.c show_mountinfo).
func mountPoints(root *hostfs.Root) map[string]bool {
	points := map[string]bool{}
	data, err := root.FS.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return points
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 4 {
			points[unescapeOctal(f[4])] = true
		}
	}
	return points
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := 0
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + int(c-'0')
			}
			if ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
