package kmsg

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"
)

// TestFollowTextLogInPieces: a text log written in pieces of any size, read after each piece,
// gives the events Parse gives for the whole, with the same sequence numbers; a line is only
// read once its newline is there. A /dev/kmsg record copied into a text log is written whole,
// header and dictionary lines together, as anything appending records does: Read does not wait
// for dictionary lines that may never come.
func TestFollowTextLogInPieces(t *testing.T) {
	data := syntheticLog(256 << 10)
	// An overlong line in the middle is skipped, as Parse skips it.
	cut := bytes.IndexByte(data[len(data)/2:], '\n') + len(data)/2 + 1
	data = append(append(append([]byte{}, data[:cut]...), append(bytes.Repeat([]byte("x"), maxLineBytes+10), '\n')...), data[cut:]...)
	want, err := Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kern.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Follow(vfs.OSFS, path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var got []Event
	for rest := data; len(rest) > 0; {
		n := wholeRecords(rest, min(len(rest), 1+rng.IntN(9000)))
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
		events, err := f.Read()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, events...)
	}
	if !reflect.DeepEqual(got, want.Events) {
		t.Fatalf("%d events read in pieces, Parse gives %d; first differences:\n%s", len(got), len(want.Events), firstDifference(got, want.Events))
	}
	if f.Records() != want.Records {
		t.Errorf("records %d, Parse counts %d", f.Records(), want.Records)
	}
}

// TestFollowWaitsForTheNewline: half a failure line gives nothing; its end gives the event.
func TestFollowWaitsForTheNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kern.log")
	line := "[    3.1] rtw_8821au 1-1:1.0: Direct firmware load for rtw88/rtw8821a_fw.bin failed with error -2\n"
	if err := os.WriteFile(path, []byte(line[:40]), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Follow(vfs.OSFS, path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if events, err := f.Read(); err != nil || len(events) != 0 {
		t.Fatalf("half a line: %v, %v; want nothing", events, err)
	}
	w, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	w.WriteString(line[40:])
	w.Close()
	events, err := f.Read()
	if err != nil || len(events) != 1 || events[0].Firmware != "rtw88/rtw8821a_fw.bin" || events[0].Device != "1-1:1.0" {
		t.Fatalf("whole line: %+v, %v", events, err)
	}
	if events, err := f.Read(); err != nil || len(events) != 0 {
		t.Fatalf("nothing new: %v, %v", events, err)
	}
	f.Close()
	if _, err := f.Read(); err == nil {
		t.Error("Read after Close succeeded")
	}
}

// TestFollowDevKmsg: on the real /dev/kmsg, a Read after draining returns at once (it never
// waits for the kernel) and a record written since is read once.
func TestFollowDevKmsg(t *testing.T) {
	f, err := Follow(vfs.OSFS, "/dev/kmsg")
	if err != nil {
		t.Skipf("no readable /dev/kmsg: %v", err)
	}
	defer f.Close()
	if _, err := f.Read(); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("/dev/kmsg is not writable here: %v", err)
	}
	before := f.Records()
	fmt.Fprintf(w, "kairos-firmware kmsg follower test %d\n", os.Getpid())
	w.Close()
	if _, err := f.Read(); err != nil {
		t.Fatal(err)
	}
	if f.Records() <= before {
		t.Errorf("records %d after a write, %d before", f.Records(), before)
	}
}

func firstDifference(a, b []Event) string {
	var out []string
	for i := 0; i < max(len(a), len(b)) && len(out) < 3; i++ {
		var x, y any
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if !reflect.DeepEqual(x, y) {
			out = append(out, fmt.Sprintf("#%d: %+v, want %+v", i, x, y))
		}
	}
	return strings.Join(out, "\n")
}

// wholeRecords moves the cut n of data past the /dev/kmsg record it falls in, if any: cuts
// inside other lines stay where they are.
func wholeRecords(data []byte, n int) int {
	for n < len(data) {
		start := bytes.LastIndexByte(data[:n], '\n') + 1
		end := len(data)
		if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
			end = start + i + 1
		}
		line := data[start:end]
		_, _, _, header := parseRecordHeader(bytes.TrimRight(line, "\n"))
		switch {
		case n == start && line[0] != ' ':
			return n // a new line that is no dictionary line
		case header || line[0] == ' ':
			n = end // inside a record: on to the next line
		default:
			return n // inside a text line
		}
	}
	return n
}
