package kmsg

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// The spike's log lines (kairos-spike-firmware-sysext.txt), as dmesg and journalctl printed them.
const (
	spikeDmesgFirmware = "[ 49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2"
	spikeDmesgProbe    = "[ 49.078480] rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22"
	spikeJournalFW     = "Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2"
	spikeJournalProbe  = "Sep 04 09:19:13 localhost kernel: rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22"
)

var (
	spikeFirmwareEvent = Event{Kind: FirmwareFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin", Errno: -2}
	spikeProbeEvent    = Event{Kind: ProbeFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Errno: -22}
)

func TestParseOneLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []Event // Seq is 1 unless set
	}{
		// Formats, with the spike's failure.
		{"dmesg spike", spikeDmesgFirmware, []Event{spikeFirmwareEvent}},
		{"dmesg spike probe", spikeDmesgProbe, []Event{spikeProbeEvent}},
		{"journal spike", spikeJournalFW, []Event{spikeFirmwareEvent}},
		{"journal spike probe", spikeJournalProbe, []Event{spikeProbeEvent}},
		{"dmesg padded timestamp", "[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg -t", "rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg -r", "<4>[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg -x", "kern  :warn  : [   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg -T", "[Thu Sep  4 09:19:13 2025] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg iso", "2025-09-04T09:19:13,065898+00:00 rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"dmesg with caller id", "[   49.065898] [  T123] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"journal short-precise", "Sep 04 09:19:13.065898 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"journal short-iso", "2025-09-04T09:19:13+0000 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"journal short-monotonic", "[   49.065898] localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"journal short-unix", "1756977553.065898 localhost kernel: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"syslog with kernel timestamp", "Sep  4 09:19:13 localhost kernel: [   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", []Event{spikeFirmwareEvent}},
		{"kmsg record", "4,1234,49065898,-;rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2",
			[]Event{{Seq: 1234, Kind: FirmwareFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin", Errno: -2}}},
		{"kmsg record with caller", "3,1240,49078480,-,caller=T57;rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22",
			[]Event{{Seq: 1240, Kind: ProbeFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Errno: -22}}},

		// Line kinds.
		{"debian failed to load", "[    7.395672] iwlwifi 0000:00:14.3: firmware: failed to load iwlwifi-so-a0-gf-a0-72.ucode (-2)",
			[]Event{{Kind: FirmwareFailed, Driver: "iwlwifi", Device: "0000:00:14.3", Firmware: "iwlwifi-so-a0-gf-a0-72.ucode", Errno: -2}}},
		{"debian direct-loading", "[    7.283175] platform regulatory.0: firmware: direct-loading firmware regulatory.db",
			[]Event{{Kind: FirmwareLoaded, Driver: "platform", Device: "regulatory.0", Firmware: "regulatory.db"}}},
		{"debian direct-loading class device", "[    8.233515] bluetooth hci0: firmware: direct-loading firmware intel/ibt-hw-37.8.10-fw-1.10.3.11.e.bseq",
			[]Event{{Kind: FirmwareLoaded, Driver: "bluetooth", Device: "hci0", Firmware: "intel/ibt-hw-37.8.10-fw-1.10.3.11.e.bseq"}}},
		{"mainline direct-loading", "[ 1753.2] rtw_8821au 1-4:1.0: direct-loading rtw88/rtw8821a_fw.bin",
			[]Event{{Kind: FirmwareLoaded, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin"}}},
		{"mainline decompressing", "[ 1753.2] rtw_8821au 1-4:1.0: f/w decompressing rtw88/rtw8821a_fw.bin",
			[]Event{{Kind: FirmwareLoaded, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin"}}},
		{"mainline built-in", "[    0.9] i915 0000:00:02.0: using built-in i915/kbl_dmc_ver1_04.bin",
			[]Event{{Kind: FirmwareLoaded, Driver: "i915", Device: "0000:00:02.0", Firmware: "i915/kbl_dmc_ver1_04.bin"}}},
		{"dynamic debug decoration", "[ 1753.2] firmware_class:fw_get_filesystem_firmware:567: rtw_8821au 1-4:1.0: direct-loading rtw88/rtw8821a_fw.bin",
			[]Event{{Kind: FirmwareLoaded, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin"}}},
		{"old probe format", "[    2.107512] e1000e: probe of 0000:00:19.0 failed with error -2",
			[]Event{{Kind: ProbeFailed, Driver: "e1000e", Device: "0000:00:19.0", Errno: -2}}},
		{"new probe format pci", "[    3.1] edu 0000:00:04.0: probe with driver edu_fw failed with error -2",
			[]Event{{Kind: ProbeFailed, Driver: "edu_fw", Device: "0000:00:04.0", Errno: -2}}},
		{"device without driver", "[    3.1]  foo0: Direct firmware load for foo.bin failed with error -110",
			[]Event{{Kind: FirmwareFailed, Driver: "", Device: "foo0", Firmware: "foo.bin", Errno: -110}}},
		{"trailing carriage return", spikeDmesgFirmware + "\r", []Event{spikeFirmwareEvent}},

		// Lines that are not events.
		{"driver's own failure text", "[ 49.065904] rtw_8821au 1-4:1.0: failed to request firmware", nil},
		{"firmware version", "[ 1753.244128] rtw_8821au 1-4:1.0: Firmware version 42.4.0, H2C version 0", nil},
		{"pr_info with prefix", "[ 49.078964] usbcore: registered new interface driver rtw_8821au", nil},
		{"netdev prefix", "[ 1753.893615] rtw_8821au 1-4:1.0 wlxec750c0937b1: renamed from wlan0", nil},
		{"probe rejects match", "[ 3.1] edu 0000:00:04.0: probe with driver edu rejects match -19", nil},
		{"old probe rejects match", "[ 3.1] edu: probe of 0000:00:04.0 rejects match -19", nil},
		{"no errno", "[ 3.1] drv 1-1: Direct firmware load for a.bin failed with error", nil},
		{"errno not a number", "[ 3.1] drv 1-1: Direct firmware load for a.bin failed with error minus two", nil},
		{"empty firmware name", "[ 3.1] drv 1-1: firmware: direct-loading firmware ", nil},
		{"debian failed without errno", "[ 3.1] drv 1-1: firmware: failed to load a.bin", nil},
		{"NULL device", "[ 3.1] (NULL device *): Direct firmware load for a.bin failed with error -2", nil},
		{"user space syslog line", "Sep 04 09:19:14 localhost kairos-firmware[812]: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"user space syslog line without pid", "Sep 04 09:19:14 localhost kairos-firmware: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"user space iso journal line", "2025-09-04T09:19:13+0000 localhost wifi-once.sh[1859]: rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"systemd line", "Sep 04 09:19:14 localhost systemd[1]: Starting systemd-sysext.service - Merge System Extension Images into /usr/ and /opt/...", nil},
		{"dmesg -r user facility", "<12>[   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"dmesg -x user facility", "user  :warn  : [   49.065898] rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"kmsg record from user space", "12,1300,50000000,-;rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2", nil},
		{"slash in device", "[ 3.1] drv ../../sys: Direct firmware load for a.bin failed with error -2", nil},
		{"dot-dot device", "[ 3.1] drv ..: Direct firmware load for a.bin failed with error -2", nil},
		{"slash in driver", "[ 3.1] d/rv 1-1: Direct firmware load for a.bin failed with error -2", nil},
		{"slash in probed driver", "[ 3.1] drv 1-1: probe with driver ../x failed with error -2", nil},
		{"old probe slash in device", "[ 3.1] drv: probe of a/b failed with error -2", nil},
		{"dot-dot in firmware name", "[ 3.1] drv 1-1: Direct firmware load for rtw88/../../etc/shadow failed with error -2", nil},
		{"dot-dot firmware loaded", "[ 3.1] drv 1-1: firmware: direct-loading firmware ..", nil},
		{"dots inside firmware name", "[ 3.1] drv 1-1: firmware: direct-loading firmware foo/bar..bin",
			[]Event{{Kind: FirmwareLoaded, Driver: "drv", Device: "1-1", Firmware: "foo/bar..bin"}}},
		{"garbage", "\x00\xff;;;,,,[[[ :: probe firmware", nil},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, err := Parse(strings.NewReader(tt.line + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			for i := range want {
				if want[i].Seq == 0 {
					want[i].Seq = 1
				}
			}
			if !reflect.DeepEqual(log.Events, want) {
				t.Errorf("line %q\n got %+v\nwant %+v", tt.line, log.Events, want)
			}
		})
	}
}

func TestParseKmsgContinuationLines(t *testing.T) {
	input := "6,1233,48874800,-;usb 1-4: new high-speed USB device number 3 using xhci_hcd\n" +
		" SUBSYSTEM=usb\n" +
		" DEVICE=c189:2\n" +
		"4,1234,49065898,-;rtw_8821au 1-4:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n" +
		" SUBSYSTEM=usb\n" +
		" DEVICE=+usb:1-4:1.0\n" +
		"3,1240,49078480,-;rtw_8821au 1-4:1.0: probe with driver rtw_8821au failed with error -22\n" +
		" SUBSYSTEM=usb\n" +
		" DEVICE=+usb:1-4:1.0\n" +
		"4,1241,49078964,-;e1000e: probe of 0000:00:19.0 failed with error -2\n"
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Seq: 1234, Kind: FirmwareFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Subsystem: "usb", Firmware: "rtw88/rtw8821a_fw.bin", Errno: -2},
		{Seq: 1240, Kind: ProbeFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Subsystem: "usb", Errno: -22},
		{Seq: 1241, Kind: ProbeFailed, Driver: "e1000e", Device: "0000:00:19.0", Errno: -2},
	}
	if !reflect.DeepEqual(log.Events, want) {
		t.Errorf("got  %+v\nwant %+v", log.Events, want)
	}
	if log.Records != 4 {
		t.Errorf("Records = %d, want 4 (continuation lines belong to their record)", log.Records)
	}
}

func TestParseKmsgEscapes(t *testing.T) {
	input := `4,10,1,-;drv 1-1: Direct firmware load for vendor\x5cdir/fw\x20name.bin failed with error -2` + "\n" +
		" SUBSYSTEM=u\\x73b\n" +
		// A message spanning lines: only the first carries the device prefix.
		`4,11,2,-;drv 1-2: Direct firmware load for b.bin failed with error -2\x0asecond line failed with error -5` + "\n" +
		// Not an escape: kept as written.
		`4,12,3,-;drv 1-3: firmware: direct-loading firmware c\xzz.bin` + "\n"
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Seq: 10, Kind: FirmwareFailed, Driver: "drv", Device: "1-1", Subsystem: "usb", Firmware: `vendor\dir/fw name.bin`, Errno: -2},
		{Seq: 11, Kind: FirmwareFailed, Driver: "drv", Device: "1-2", Firmware: "b.bin", Errno: -2},
		{Seq: 12, Kind: FirmwareLoaded, Driver: "drv", Device: "1-3", Firmware: `c\xzz.bin`},
	}
	if !reflect.DeepEqual(log.Events, want) {
		t.Errorf("got  %+v\nwant %+v", log.Events, want)
	}
}

func TestUnescapeKmsg(t *testing.T) {
	tests := map[string]string{
		``:                 ``,
		`plain`:            `plain`,
		`a\x5cb`:           `a\b`,
		`\x41\x42`:         `AB`,
		`tab\x09end`:       "tab\tend",
		`high\xc3\xa9`:     "high\u00e9",
		`upper\x4A`:        `upperJ`,
		`short\x4`:         `short\x4`,
		`bad\xg1`:          `bad\xg1`,
		`lone\`:            `lone\`,
		`\x`:               `\x`,
		`not\nan\tescape`:  `not\nan\tescape`,
		`double\x5c\x5cok`: `double\\ok`,
	}
	for in, want := range tests {
		if got := unescapeKmsg(in); got != want {
			t.Errorf("unescapeKmsg(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMixedFormats(t *testing.T) {
	input := strings.Join([]string{
		"[ 48.874800] usb 1-4: new high-speed USB device number 3 using xhci_hcd", // line 1
		spikeDmesgFirmware, // line 2
		"4,1234,49065898,-;rtw_8821au 1-4:1.0: firmware: failed to load rtw88/rtw8821a_fw.bin (-2)", // line 3, seq 1234
		" SUBSYSTEM=usb",                   // continuation
		"-- Boot 0123456789abcdef --",      // line 5, journal noise
		spikeJournalProbe,                  // line 6
		"  indented text without a record", // line 7: not a continuation, no record before it
	}, "\n")
	log, err := Parse(strings.NewReader(input)) // no newline after the last line
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Seq: 2, Kind: FirmwareFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Firmware: "rtw88/rtw8821a_fw.bin", Errno: -2},
		{Seq: 1234, Kind: FirmwareFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Subsystem: "usb", Firmware: "rtw88/rtw8821a_fw.bin", Errno: -2},
		{Seq: 6, Kind: ProbeFailed, Driver: "rtw_8821au", Device: "1-4:1.0", Errno: -22},
	}
	if !reflect.DeepEqual(log.Events, want) {
		t.Errorf("got  %+v\nwant %+v", log.Events, want)
	}
	if log.Records != 6 {
		t.Errorf("Records = %d, want 6", log.Records)
	}
}

func TestParseLastLineWithoutNewline(t *testing.T) {
	log, err := Parse(strings.NewReader(spikeDmesgProbe))
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Events) != 1 || log.Events[0].Kind != ProbeFailed {
		t.Errorf("got %+v, want the probe failure", log.Events)
	}
}

func TestParseSkipsOverlongLines(t *testing.T) {
	long := "[ 1.0] drv 1-1: firmware: direct-loading firmware " + strings.Repeat("x", maxLineBytes) + ".bin"
	input := long + "\n" + spikeDmesgFirmware + "\n" + long
	log, err := Parse(strings.NewReader(input))
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{spikeFirmwareEvent}
	want[0].Seq = 2
	if !reflect.DeepEqual(log.Events, want) {
		t.Errorf("got %+v, want %+v", log.Events, want)
	}
	if log.Records != 3 {
		t.Errorf("Records = %d, want 3", log.Records)
	}
}

func TestKindString(t *testing.T) {
	for kind, want := range map[Kind]string{FirmwareFailed: "firmware-failed", FirmwareLoaded: "firmware-loaded", ProbeFailed: "probe-failed", 0: "Kind(0)"} {
		if got := kind.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(kind), got, want)
		}
	}
}

func TestParseReaderError(t *testing.T) {
	broken := errors.New("disk on fire")
	r := io.MultiReader(strings.NewReader(spikeDmesgFirmware+"\n"+spikeDmesgProbe+"\n"), iotest.ErrReader(broken))
	_, err := Parse(r)
	if !errors.Is(err, broken) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	if !strings.Contains(err.Error(), "line 3") {
		t.Errorf("error %q does not name the line being read", err)
	}
}
