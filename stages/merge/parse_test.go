package merge

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadMountInfo(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mountinfo")
	data := "" +
		"26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"63 26 0:39 / /tmp/with\\040space rw,relatime shared:1 - tmpfs tmpfs rw\n" +
		"96 63 0:41 / /tmp/with\\040space/usr ro,relatime shared:2 master:1 - overlay sysext ro,lowerdir=/a:/b\n" +
		"97 96 0:42 / /tmp/with\\040space/usr ro,nodev,relatime - overlay kairos-firmware ro,lowerdir=/c\\134:d\n"
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	table, err := readMountInfo(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != 4 || table[1].MountPoint != "/tmp/with space" || table[2].Source != "sysext" || table[2].Super != "ro,lowerdir=/a:/b" {
		t.Errorf("table %+v", table)
	}
	top, ok := topMount(table, "/tmp/with space/usr")
	if !ok || top.ID != 97 || top.Super != `ro,lowerdir=/c\:d` || !hasOption(top.Options, "nodev") {
		t.Errorf("top %+v", top)
	}
	if _, ok := topMount(table, "/nowhere"); ok {
		t.Errorf("a mount on /nowhere")
	}
	if _, err := parseMountInfoLine("1 2 3"); err == nil {
		t.Errorf("a short line parsed")
	}
}

func TestLowerdirOption(t *testing.T) {
	got, err := lowerdirOption([]string{"/run/meta", "/run/images/a,b:c/usr", `/x\y`})
	if err != nil || got != `lowerdir=/run/meta:/run/images/a\,b\:c/usr:/x\\y` {
		t.Errorf("got %q, %v", got, err)
	}
	long := []string{strings.Repeat("x", os.Getpagesize())}
	if _, err := lowerdirOption(long); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("a page of options: %v", err)
	}
	if _, err := lowerdirOption(make([]string, maxLayers+1)); err == nil {
		t.Errorf("%d layers accepted", maxLayers+1)
	}
}

func TestOptions(t *testing.T) {
	o, err := Options{}.normalized()
	if err != nil || o.Sysroot != "/" || o.RunDir != DefaultRunDir || !reflect.DeepEqual(o.Hierarchies, DefaultHierarchies) {
		t.Errorf("defaults %+v, %v", o, err)
	}
	for _, bad := range []Options{
		{Hierarchies: []string{"/usr", "/usr/lib"}},
		{Hierarchies: []string{"/usr/lib", "/usr"}},
		{Hierarchies: []string{"usr"}},
		{Hierarchies: []string{"/"}},
		{RunDir: "run"},
		{RunDir: "/"},
	} {
		if _, err := bad.normalized(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	o, err = Options{Hierarchies: []string{"/usr/", "/opt", "/usr", "/usrx"}}.normalized()
	if err != nil || !reflect.DeepEqual(o.Hierarchies, []string{"/usr", "/opt", "/usrx"}) {
		t.Errorf("hierarchies %q, %v", o.Hierarchies, err)
	}
}
