package qemu

import (
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	console := "Probing EDD (edd=off to disable)... ok\r\n" +
		"KFW-RESULT edu=0000:00:02.0\r\n" +
		"KFW-RESULT failed.kmsg=a: b=c\r\n" +
		"KFW-RESULT failed.kmsg=d\r\n" +
		"KFW-RESULT empty=\r\n" +
		"KFW-BEGIN detect\r\n{\r\n  \"devices\": []\r\n}\r\n\r\nKFW-END detect\r\n" +
		"KFW-RESULT detect-rc=0\r\n" +
		"KFW-BEGIN kmsg\r\n[    0.000000] Linux version\r\nKFW-RESULT not=a result\r\nKFW-END kmsg\r\n" +
		"KFW-DONE rc=3\r\n" +
		"[    5.528996] reboot: Power down\r\n"
	r := parse(console)
	wantValues := map[string][]string{
		"edu":         {"0000:00:02.0"},
		"failed.kmsg": {"a: b=c", "d"},
		"empty":       {""},
		"detect-rc":   {"0"},
	}
	if !reflect.DeepEqual(r.Values, wantValues) {
		t.Errorf("Values = %q, want %q", r.Values, wantValues)
	}
	if got, want := r.Blocks["detect"], "{\n  \"devices\": []\n}\n"; got != want {
		t.Errorf("Blocks[detect] = %q, want %q", got, want)
	}
	if got, want := r.Kmsg, "[    0.000000] Linux version\nKFW-RESULT not=a result"; got != want {
		t.Errorf("Kmsg = %q, want %q", got, want)
	}
	if r.ExitCode != 3 || r.Value("failed.kmsg") != "d" || r.Value("missing") != "" {
		t.Errorf("ExitCode %d, Value(failed.kmsg) %q, Value(missing) %q", r.ExitCode, r.Value("failed.kmsg"), r.Value("missing"))
	}
	if r := parse("KFW-RESULT x=1\n[ 1.0] Kernel panic - not syncing\n"); r.ExitCode != -1 {
		t.Errorf("ExitCode without KFW-DONE = %d, want -1", r.ExitCode)
	}
}
