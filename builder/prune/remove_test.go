package prune

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestApplyStopsAtTheFirstFailureAndSaysWhatIsLeft(t *testing.T) {
	root := newRoot(t, map[string]any{
		"/usr/lib/firmware/keep.bin": "k",
		"/usr/lib/firmware/a/1.bin":  "1",
		"/usr/lib/firmware/b/2.bin":  "22",
		"/usr/lib/firmware/c/3.bin":  "333",
	})
	res, err := Plan(Options{Root: root, Keep: []string{"keep.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	// Between planning and removing, b/2.bin became a directory with something in it.
	if err := root.FS.Remove("/usr/lib/firmware/b/2.bin"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(root.Real("/usr/lib/firmware/b/2.bin/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	var reports []int
	err = Apply(root, res, func(done, total int) { reports = append(reports, done, total) })
	if err == nil {
		t.Fatal("Apply removed a non-empty directory")
	}
	want := "removing " + root.Real("/usr/lib/firmware/b/2.bin") + ": directory not empty; stopped after removing 1 files and 0 directories: 2 files and 3 directories not removed"
	assertEqual(t, "error", err.Error(), want)
	assertEqual(t, "removed", removedPaths(res), []string{"a/1.bin"})
	assertEqual(t, "not removed", res.NotRemoved, []string{"b/2.bin", "c/3.bin", "c", "b", "a"})
	assertEqual(t, "bytes removed", res.BytesRemoved, int64(1))
	assertEqual(t, "progress", reports, []int{1, 6})
	if res.DryRun {
		t.Error("a result Apply acted on is not a dry run")
	}
	if _, err := root.FS.Stat("/usr/lib/firmware/c/3.bin"); err != nil {
		t.Errorf("Apply went on after the failure: %v", err)
	}
}

func TestThrottleStaysQuietOnShortRuns(t *testing.T) {
	clock := time.Unix(0, 0)
	now := func() time.Time { return clock }
	var got []string
	report := func(done, total int) { got = append(got, strings.Repeat("#", done)+"/"+strings.Repeat("#", total)) }

	quick := Throttle(2*time.Second, now, report)
	for i := 1; i <= 3; i++ {
		clock = clock.Add(500 * time.Millisecond)
		quick(i, 3)
	}
	if len(got) != 0 {
		t.Errorf("a 1.5s removal reported %v", got)
	}

	clock = time.Unix(100, 0)
	slow := Throttle(2*time.Second, now, report)
	for i := 1; i <= 5; i++ {
		clock = clock.Add(time.Second)
		slow(i, 5)
	}
	// Reports at 2s and 4s, then the last one.
	assertEqual(t, "reports", got, []string{"##/#####", "####/#####", "#####/#####"})
}
