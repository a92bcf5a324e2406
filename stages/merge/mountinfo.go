package merge

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// mountEntry is one line of /proc/<pid>/mountinfo (Documentation/filesystems/proc.rst, "3.5
// /proc/<pid>/mountinfo"): the fields Merge and Unmerge use to tell their own mounts from
// others'.
type mountEntry struct {
	ID, Parent int
	Dev        string // major:minor of the filesystem
	Root       string // the directory of the filesystem mounted here (a bind mount's source)
	MountPoint string
	Options    string // per-mount options: ro, nodev, nosuid, ...
	FSType     string
	Source     string
	Super      string // per-superblock options (an overlay's lowerdir=...)
}

// readMountInfo parses a mountinfo file. Paths are unescaped: the kernel writes space, tab,
// newline and backslash in octal (\040, ...) in the path fields (show_mountinfo,
// fs/proc_namespace.c, mangle()).
func readMountInfo(file string) ([]mountEntry, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mount table: %w", err)
	}
	var out []mountEntry
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		e, err := parseMountInfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("mount table %s line %d: %w", file, n+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func parseMountInfoLine(line string) (mountEntry, error) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ { // optional fields ("shared:1") end at "-"
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if len(f) < 7 || sep < 0 || len(f) < sep+3 {
		return mountEntry{}, fmt.Errorf("malformed line %q", line)
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return mountEntry{}, fmt.Errorf("malformed ids in %q", line)
	}
	e := mountEntry{
		ID: id, Parent: parent, Dev: f[2],
		Root: unmangle(f[3]), MountPoint: unmangle(f[4]), Options: f[5],
		FSType: f[sep+1], Source: unmangle(f[sep+2]),
	}
	if len(f) > sep+3 {
		e.Super = unmangle(f[sep+3])
	}
	return e, nil
}

// unmangle undoes the kernel's octal escapes (\ooo).
func unmangle(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// topMount returns the mount that a lookup of the real path mp reaches: of the mounts on mp,
// the one no other mount on mp is stacked on. ok is false when nothing is mounted on mp.
func topMount(table []mountEntry, mp string) (mountEntry, bool) {
	var on []mountEntry
	for _, e := range table {
		if e.MountPoint == mp {
			on = append(on, e)
		}
	}
	for _, e := range on {
		covered := false
		for _, o := range on {
			if o.Parent == e.ID {
				covered = true
				break
			}
		}
		if !covered {
			return e, true
		}
	}
	return mountEntry{}, false
}

// hasOption reports whether the comma-separated list opts holds opt.
func hasOption(opts, opt string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}
