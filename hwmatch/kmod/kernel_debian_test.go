package kmod

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	vfs "github.com/twpayne/go-vfs/v4"

	"github.com/kairos-io/kairos-firmware/tests/testkernel"
)

// debianKernel opens the real Debian kernel's metadata (tests/fixtures/debian-kernel.sh).
func debianKernel(t *testing.T) (*Kernel, string) {
	t.Helper()
	dir := testkernel.Dir(t)
	k, err := Open(vfs.NewPathFS(vfs.OSFS, dir), testkernel.Release)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	if len(k.Warnings) > 0 {
		t.Fatalf("warnings on a complete kernel tree: %v", k.Warnings)
	}
	// The comparisons with kmod go through depmod's binary index, memory-mapped.
	if k.aliasIndex == nil || !k.aliasIndex.mapped {
		t.Fatal("modules.alias.bin is not mapped")
	}
	return k, dir
}

// concreteModalias turns an alias pattern into one string it matches: '*' matches nothing, '?'
// and bracket expressions take a character they accept.
func concreteModalias(pattern string) string {
	return concreteModaliasWith(pattern, func(int) string { return "" })
}

// concreteModaliasWith is concreteModalias with the i-th '*' of the pattern replaced by star(i).
func concreteModaliasWith(pattern string, star func(i int) string) string {
	var b strings.Builder
	stars := 0
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			b.WriteString(star(stars))
			stars++
		case '?':
			b.WriteByte('0')
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			class := pattern[i+1 : i+1+end]
			if class[0] == '!' || class[0] == '^' {
				b.WriteByte('~') // no alias bracket excludes '~'
			} else {
				b.WriteByte(class[0])
			}
			i += end + 1
		case '\\':
			i++
			b.WriteByte(pattern[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// modprobeResolve asks kmod which modules serve a modalias (`modprobe -R`), with no modprobe.d
// configuration so the host's settings do not leak in.
func modprobeResolve(t *testing.T, dir, modalias string) []string {
	t.Helper()
	out, err := exec.Command("modprobe", "-d", dir, "-S", testkernel.Release, "-C", "/dev/null", "-R", modalias).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && len(out) == 0 {
			return nil // kmod: no module matches
		}
		t.Fatalf("modprobe -R %q: %v", modalias, err)
	}
	var mods []string
	for _, line := range strings.Fields(string(out)) {
		mods = append(mods, normalizeName(line))
	}
	sort.Strings(mods)
	return sortUnique(mods)
}

func modinfoFirmware(t *testing.T, dir, module string) []string {
	t.Helper()
	out, err := exec.Command("modinfo", "-b", dir, "-k", testkernel.Release, "-F", "firmware", module).Output()
	if err != nil {
		t.Fatalf("modinfo -F firmware %s: %v", module, err)
	}
	return strings.Fields(string(out))
}

// TestModulesAgreeWithModprobe compares alias resolution with kmod on modaliases built from
// every 40th alias of the real kernel (about 650, all buses) plus ones no alias matches.
func TestModulesAgreeWithModprobe(t *testing.T) {
	k, dir := debianKernel(t)
	testkernel.Tool(t, "modprobe")
	f, err := os.Open(filepath.Join(dir, "lib/modules", testkernel.Release, "modules.alias"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	modaliases := []string{"pci:v0000FFFFd0000FFFFsv00000000sd00000000bc00sc00i00", "usb:v0000p0000d0000dc00dsc00dp00ic00isc00ip00in00"}
	sc := bufio.NewScanner(f)
	for n := 0; sc.Scan(); n++ {
		if fields := strings.Fields(sc.Text()); n%40 == 0 && len(fields) == 3 {
			modaliases = append(modaliases, concreteModalias(fields[1]))
		}
	}
	// Built-in modules' aliases come from modules.builtin.modinfo.
	modaliases = append(modaliases, "crypto-hmac", "fs-tracefs")
	matched := 0
	resolved := k.Resolve(modaliases)
	for _, m := range modaliases {
		got, want := resolved[m], modprobeResolve(t, dir, m)
		if len(got) == 0 && len(want) == 0 {
			continue
		}
		matched++
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Modules(%q) = %v, modprobe -R says %v", m, got, want)
		}
	}
	t.Logf("%d modaliases compared, %d resolved to modules", len(modaliases), matched)
	if matched < 500 {
		t.Errorf("only %d modaliases resolved: the comparison proves little", matched)
	}
}

// TestFirmwareAgreesWithModinfo compares declared firmware with kmod for every wireless,
// Bluetooth and GPU module of the real kernel: the drivers that need firmware most.
func TestFirmwareAgreesWithModinfo(t *testing.T) {
	k, dir := debianKernel(t)
	testkernel.Tool(t, "modinfo")
	modDir := filepath.Join(dir, "lib/modules", testkernel.Release)
	var modules []string
	err := filepath.WalkDir(filepath.Join(modDir, "kernel/drivers"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".ko") && (strings.Contains(p, "/wireless/") || strings.Contains(p, "/bluetooth/") || strings.Contains(p, "/gpu/")) {
			modules = append(modules, moduleNameFromPath(p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(modules) < 100 {
		t.Fatalf("found only %d wireless/bluetooth/gpu modules: is the fixture complete?", len(modules))
	}
	// Half the modules through Prefetch (read side by side), half one by one: the answers
	// must not depend on it.
	k.Prefetch(append(modules[:len(modules)/2:len(modules)/2], "no_such_module"))
	withFirmware := 0
	for _, m := range modules {
		got, err := k.Firmware(m)
		if err != nil {
			t.Errorf("Firmware(%s): %v", m, err)
			continue
		}
		want := modinfoFirmware(t, dir, m)
		if len(got) > 0 {
			withFirmware++
		}
		if (len(got) > 0 || len(want) > 0) && !reflect.DeepEqual(got, want) {
			t.Errorf("Firmware(%s) = %v, modinfo says %v", m, got, want)
		}
	}
	if k.depIndex == nil || !k.depIndex.mapped {
		t.Error("the modules were not found through a mapped modules.dep.bin")
	}
	t.Logf("%d modules compared, %d declare firmware", len(modules), withFirmware)
	if withFirmware < 50 {
		t.Errorf("only %d modules declare firmware: the comparison proves little", withFirmware)
	}
}
