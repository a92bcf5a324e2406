package kmsg

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	vfs "github.com/twpayne/go-vfs/v4"
	"github.com/twpayne/go-vfs/v4/vfst"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

func newRoot(t *testing.T, tree map[string]any) *hostfs.Root {
	t.Helper()
	testfs, cleanup, err := vfst.NewTestFS(tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return hostfs.FromFS(testfs.TempDir(), testfs)
}

func TestReadFileText(t *testing.T) {
	root := newRoot(t, map[string]any{
		"/var/log/kern.log": spikeJournalFW + "\n" + spikeJournalProbe, // no final newline
	})
	log, err := ReadFile(root.FS, "/var/log/kern.log")
	if err != nil {
		t.Fatal(err)
	}
	first, second := spikeFirmwareEvent, spikeProbeEvent
	first.Seq, second.Seq = 1, 2
	if want := []Event{first, second}; !reflect.DeepEqual(log.Events, want) {
		t.Errorf("got  %+v\nwant %+v", log.Events, want)
	}
	if log.Truncated || log.Records != 2 {
		t.Errorf("Truncated = %v, Records = %d; want false, 2", log.Truncated, log.Records)
	}
}

func TestReadFileMissing(t *testing.T) {
	root := newRoot(t, map[string]any{"/var/log": &vfst.Dir{Perm: 0o755}})
	_, err := ReadFile(root.FS, "/dev/kmsg")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadFile of a missing file: err = %v, want one matching fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "/dev/kmsg") {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestReadFileCapsInput(t *testing.T) {
	filler := "[    1.000000] some driver chatter that is not about firmware at all\n"
	var b bytes.Buffer
	b.WriteString(spikeDmesgFirmware + "\n")
	for b.Len()+len(filler) <= maxInputBytes-40 {
		b.WriteString(filler)
	}
	// This line straddles the cap: read whole it would give the name "rtw88/rtw8821a_fw.bin",
	// cut it would give a wrong, shorter one. It must give nothing.
	straddling := "[ 1753.2] rtw_8821au 1-4:1.0: direct-loading rtw88/rtw8821a_fw.bin\n"
	b.WriteString(straddling)
	b.WriteString(spikeDmesgProbe + "\n") // past the cap
	if b.Len() <= maxInputBytes {
		t.Fatalf("test input is %d bytes, want more than the cap %d", b.Len(), maxInputBytes)
	}
	root := newRoot(t, map[string]any{"/kern.log": b.Bytes()})
	log, err := ReadFile(root.FS, "/kern.log")
	if err != nil {
		t.Fatal(err)
	}
	if !log.Truncated {
		t.Error("Truncated = false for input past the cap")
	}
	want := spikeFirmwareEvent
	want.Seq = 1
	if !reflect.DeepEqual(log.Events, []Event{want}) {
		t.Errorf("got %+v, want only the first line's event", log.Events)
	}

	// Exactly at the cap, ending in a line without newline: complete, nothing cut.
	last := "[ 9.0] drv 9-9: firmware: direct-loading firmware z.bin"
	var exact bytes.Buffer
	for exact.Len()+len(filler)+len(last)+1 <= maxInputBytes {
		exact.WriteString(filler)
	}
	exact.WriteString(strings.Repeat("x", maxInputBytes-exact.Len()-len(last)-1) + "\n")
	exact.WriteString(last)
	if exact.Len() != maxInputBytes {
		t.Fatalf("test input is %d bytes, want the cap %d", exact.Len(), maxInputBytes)
	}
	root = newRoot(t, map[string]any{"/kern.log": exact.Bytes()})
	log, err = ReadFile(root.FS, "/kern.log")
	if err != nil {
		t.Fatal(err)
	}
	if log.Truncated {
		t.Errorf("Truncated = true for input of exactly the cap, %d bytes", maxInputBytes)
	}
	if got := log.Device("9-9").FirmwareLoaded; !reflect.DeepEqual(got, []string{"z.bin"}) {
		t.Errorf("last line without newline: FirmwareLoaded = %q, want [z.bin]", got)
	}
}

// openRealKmsg opens the running kernel's /dev/kmsg the way ReadFile does, or skips.
func openRealKmsg(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("the real /dev/kmsg is not readable here (%v); the character-device path is untested", err)
	}
	return f
}

// TestReadRecordsRealKmsg reads this machine's kernel log. It must come back (EAGAIN at the
// newest record, not a wait for the next one) having seen well-formed records, among them one
// this test wrote, which the kernel stamps with a user-space facility: the property the parser
// relies on to ignore kernel-looking lines written by programs. The marker is plain text, so
// it cannot pass for a firmware failure in this machine's dmesg.
func TestReadRecordsRealKmsg(t *testing.T) {
	f := openRealKmsg(t)
	defer f.Close()

	marker := fmt.Sprintf("kairos-firmware-kmsg-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	wrote := false
	if w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		// "<0>" asks for LOG_KERN; devkmsg_write keeps LOG_USER for facility 0.
		_, err = fmt.Fprintf(w, "<0>%s: a marker written by the kairos-firmware hwmatch/kmsg tests\n", marker)
		w.Close()
		wrote = err == nil
	}

	records, markerFacility := 0, -1
	_, truncated, err := readRecords(f, maxInputBytes, func(record []byte) {
		records++
		first, _, _ := bytes.Cut(record, []byte{'\n'})
		facility, _, message, ok := parseRecordHeader(first)
		if !ok {
			t.Errorf("record %d is not in the /dev/kmsg format: %q", records, first)
			return
		}
		if bytes.Contains(message, []byte(marker)) {
			markerFacility = facility
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if records == 0 || truncated {
		t.Errorf("read %d records, truncated %v: want some, not truncated", records, truncated)
	}
	if wrote && markerFacility < 0 {
		t.Errorf("the record written just before reading (%s) was not read", marker)
	}
	if wrote && markerFacility == kernelFacility {
		t.Errorf("the kernel kept facility 0 for a user-space record; the facility filter is unsound")
	}

	log, err := ReadFile(vfs.OSFS, "/dev/kmsg")
	if err != nil {
		t.Fatal(err)
	}
	if log.Records == 0 {
		t.Error("ReadFile(/dev/kmsg) read no records")
	}
	for _, ev := range log.Events {
		if ev.Device == "" || (ev.Kind != ProbeFailed && ev.Firmware == "") {
			t.Errorf("incomplete event from the real log: %+v", ev)
		}
	}
	if !wrote {
		t.Log("/dev/kmsg is not writable here; the facility check was not made")
	}
}

// TestReadFileDeviceUnderRoot gives ReadFile a character device inside a fake root, as
// --root would, so the device path goes through the vfs.
func TestReadFileDeviceUnderRoot(t *testing.T) {
	f := openRealKmsg(t)
	f.Close()
	root := newRoot(t, map[string]any{"/dev": &vfst.Dir{Perm: 0o755}})
	node := filepath.Join(root.Dir, "dev", "kmsg")
	// /dev/kmsg is character device 1:11 (drivers/char/mem.c, devlist).
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o600, 1<<8|11); err != nil {
		t.Skipf("cannot create a device node under %s: %v", root.Dir, err)
	}
	log, err := ReadFile(root.FS, "/dev/kmsg")
	if errors.Is(err, fs.ErrPermission) {
		t.Skipf("device nodes unusable under %s (nodev mount?): %v", root.Dir, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if log.Records == 0 {
		t.Error("read no records through the device node")
	}
}
