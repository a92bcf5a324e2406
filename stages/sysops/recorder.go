package sysops

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Recorder is Ops for tests: it records every call as one line ("mount SRC TARGET FSTYPE
// FLAGS DATA", "write PATH VALUE", ...) and runs the test's hooks, which may change a fake tree
// (a write to drivers_probe creating a driver link, say) or return an error. Its clock moves only
// when Sleep is called.
type Recorder struct {
	mu    sync.Mutex
	Calls []string
	// OnWrite, when set, is called for each WriteAttr; its error is returned.
	OnWrite func(path, value string) error
	// OnMount, when set, is called for each Mount; its error is returned.
	OnMount func(source, target, fstype string, flags uintptr, data string) error
	// OnVerity, when set, is called for each VerityCreate; its error is returned.
	OnVerity func(name string, t VerityTarget) error
	loops    int
	dms      int
	clock    time.Time
}

var _ Ops = (*Recorder)(nil)

func (r *Recorder) record(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Calls = append(r.Calls, fmt.Sprintf(format, args...))
}

// Mount records the call.
func (r *Recorder) Mount(source, target, fstype string, flags uintptr, data string) error {
	r.record("mount %s %s %s %#x %s", source, target, fstype, flags, data)
	if r.OnMount != nil {
		return r.OnMount(source, target, fstype, flags, data)
	}
	return nil
}

// Unmount records the call.
func (r *Recorder) Unmount(target string, flags int) error {
	r.record("unmount %s %#x", target, flags)
	return nil
}

// LoopAttach records the call and hands out /dev/loop0, /dev/loop1, ...
func (r *Recorder) LoopAttach(file string, offset, size int64) (string, io.Closer, error) {
	r.mu.Lock()
	dev := fmt.Sprintf("/dev/loop%d", r.loops)
	r.loops++
	r.mu.Unlock()
	r.record("loop %s %d %d -> %s", file, offset, size, dev)
	return dev, io.NopCloser(nil), nil
}

// VerityCreate records the call with the target's table and hands out /dev/dm-0, /dev/dm-1, ...
// A target whose table cannot be written is refused, as the real one refuses it.
func (r *Recorder) VerityCreate(name string, t VerityTarget) (string, error) {
	table, err := t.Table()
	if err != nil {
		r.record("verity %s: %v", name, err)
		return "", err
	}
	if r.OnVerity != nil {
		if err := r.OnVerity(name, t); err != nil {
			r.record("verity %s %d %s: %v", name, t.Sectors(), table, err)
			return "", err
		}
	}
	r.mu.Lock()
	dev := fmt.Sprintf("/dev/dm-%d", r.dms)
	r.dms++
	r.mu.Unlock()
	r.record("verity %s %d %s -> %s", name, t.Sectors(), table, dev)
	return dev, nil
}

// VerityRemove records the call.
func (r *Recorder) VerityRemove(name string) error {
	r.record("verity-remove %s", name)
	return nil
}

// WriteAttr records the call and runs OnWrite.
func (r *Recorder) WriteAttr(path, value string) error {
	r.record("write %s %s", path, value)
	if r.OnWrite != nil {
		return r.OnWrite(path, value)
	}
	return nil
}

// Now is the recorder's clock.
func (r *Recorder) Now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

// Sleep advances the recorder's clock without waiting.
func (r *Recorder) Sleep(d time.Duration) {
	r.mu.Lock()
	r.clock = r.clock.Add(d)
	r.mu.Unlock()
}

// Matching returns the recorded calls that start with prefix.
func (r *Recorder) Matching(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.Calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
