package manifests

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
	}{
		{"plain", "ID=_any\nARCHITECTURE=x86-64\n", map[string]string{"ID": "_any", "ARCHITECTURE": "x86-64"}},
		{"no final newline", "ID=debian", map[string]string{"ID": "debian"}},
		{"comments and blanks", "# c\n; c\n\n   \nA=1\n  # indented comment\n", map[string]string{"A": "1"}},
		{"comment escape does not continue (v254+)", "# c \\\nA=1\n", map[string]string{"A": "1"}},
		{"whitespace trimmed", "  A  =   b c   \n", map[string]string{"A": "b c"}},
		{"double quotes", `A="x y"` + "\n", map[string]string{"A": "x y"}},
		{"single quotes literal", `A='x \" $y'` + "\n", map[string]string{"A": `x \" $y`}},
		{"double quote escapes", `A="a\"b\\c\$d\e"` + "\n", map[string]string{"A": `a"b\c$d\e`}},
		{"double quote continuation", "A=\"a\\\nb\"\n", map[string]string{"A": "ab"}},
		{"unquoted escape", `A=a\ b\"c` + "\n", map[string]string{"A": `a b"c`}},
		{"unquoted continuation", "A=a\\\nb\n", map[string]string{"A": "ab"}},
		{"quote after quote concatenates", `A="x" 'y' z` + "\n", map[string]string{"A": "xyz"}},
		{"quote inside unquoted value is literal", `A=x"y"` + "\n", map[string]string{"A": `x"y"`}},
		{"empty value", "A=\nB=\"\"\n", map[string]string{"A": "", "B": ""}},
		{"line without =", "JUNK\nA=1\n", map[string]string{"A": "1"}},
		{"last wins", "A=1\nA=2\n", map[string]string{"A": "2"}},
		{"CRLF", "A=1\r\nB=2\r\n", map[string]string{"A": "1", "B": "2"}},
		{"NUL ends the file", "A=1\nB=2\x00C=3\n", map[string]string{"A": "1", "B": "2"}},
		{"unterminated quote", `A="abc`, map[string]string{"A": "abc"}},
		{"key with inner space", "A B=1\n", map[string]string{"A B": "1"}},
		{"key starting with =", "==x\n", map[string]string{"=": "x"}},
		{"utf8", "NAME=\"Kairos ✓\"\n", map[string]string{"NAME": "Kairos ✓"}},
	} {
		got, err := ParseRelease([]byte(tc.in))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: ParseRelease(%q) = %q, %v; want %q", tc.name, tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"A=\xff\n", "\xfe=1\n"} {
		if got, err := ParseRelease([]byte(bad)); err == nil {
			t.Errorf("ParseRelease(%q) = %q, want an invalid UTF-8 error", bad, got)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"ID=_any\n", `A="x\"y" 'z'`, "# c\\\nA=\\\n1", "A='", "=\n", "A=\"\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseRelease(data)
		if err != nil {
			if utf8.Valid(data) {
				t.Fatalf("valid UTF-8 input failed: %v", err)
			}
			return
		}
		for k, v := range got {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("invalid UTF-8 in result %q=%q", k, v)
			}
			// systemd takes any first non-blank character as the start of a key, '=' included
			if strings.ContainsAny(k, "\n\r\x00") || strings.Contains(k[1:], "=") || strings.ContainsRune(v, 0) {
				t.Fatalf("key %q or value %q holds a newline, NUL or an inner '='", k, v)
			}
			if k == "" {
				t.Fatalf("empty key from %q", data)
			}
		}
		// re-serialising with single quotes (values without ') parses back to the same map
		var b strings.Builder
		for k, v := range got {
			if strings.ContainsAny(k, " \t#;'\"\\=") || strings.ContainsRune(v, '\'') {
				return
			}
			b.WriteString(k + "='" + v + "'\n")
		}
		again, err := ParseRelease([]byte(b.String()))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q: %q, %v; want %q", b.String(), again, err, got)
		}
	})
}

func TestImageName(t *testing.T) {
	for _, tc := range []struct {
		path  string
		isDir bool
		want  string
	}{
		{"/var/lib/kairos/extensions/firmware.sysext.raw", false, "firmware"},
		{"firmware.raw", false, "firmware"},
		{"fw_1.2+3.raw", false, "fw_1.2+3"},
		{"firmware.sysext", true, "firmware"},
		{"firmware.raw", true, "firmware.raw"},
		{"a.sysext.sysext.raw", false, "a.sysext"},
		{"dir/", true, "dir"},
	} {
		got, err := ImageName(tc.path, tc.isDir)
		if err != nil || got != tc.want {
			t.Errorf("ImageName(%q, %v) = %q, %v; want %q", tc.path, tc.isDir, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		path  string
		isDir bool
	}{
		{"firmware.img", false}, {".raw", false}, {".sysext.raw", false}, {".#tmp.raw", false},
		{"bad\x01name.raw", false}, {"bad\xffname.raw", false}, {strings.Repeat("n", 256) + ".raw", false},
	} {
		if got, err := ImageName(tc.path, tc.isDir); err == nil {
			t.Errorf("ImageName(%q, %v) = %q, want an error", tc.path, tc.isDir, got)
		}
	}
	if got := baseImageName("fw_1.2+3"); got != "fw" {
		t.Errorf("baseImageName = %q, want fw", got)
	}
}
