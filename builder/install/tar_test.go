package install

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
)

// archive writes members with Go's archive/tar in the given format.
func archive(t *testing.T, format tar.Format, members ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range members {
		h.Format = format
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name)) * 3
		}
		must(t, tw.WriteHeader(h))
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, strings.Repeat(h.Name, 3))
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// TestTarReaderReadsWhatArchiveTarWrites: every member's name, type and data, in the ustar,
// pax (long names) and GNU (long names) formats, with links and directories between files.
func TestTarReaderReadsWhatArchiveTarWrites(t *testing.T) {
	long := strings.Repeat("x", 150) + ".sysext.raw"
	deep := strings.Repeat("d", 90) + "/" + strings.Repeat("e", 60) + ".raw" // ustar splits it into prefix and name
	for _, format := range []tar.Format{tar.FormatUSTAR, tar.FormatPAX, tar.FormatGNU} {
		members := []*tar.Header{
			{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/lib/a.bin", Mode: 0o644},
			{Name: "link.raw", Typeflag: tar.TypeSymlink, Linkname: "usr/lib/a.bin"},
			{Name: "hard.raw", Typeflag: tar.TypeLink, Linkname: "usr/lib/a.bin"},
			{Name: deep, Mode: 0o644},
			{Name: "fw.sysext.raw", Mode: 0o644},
		}
		if format != tar.FormatUSTAR {
			members = append(members, &tar.Header{Name: long, Mode: 0o644})
		}
		data := archive(t, format, members...)
		tr := &tarReader{r: bytes.NewReader(data)}
		for _, m := range members {
			e, err := tr.next()
			if err != nil {
				t.Fatalf("%v: %s: %v", format, m.Name, err)
			}
			if e.name != m.Name || e.typ != m.Typeflag {
				t.Errorf("%v: member %q type %c, want %q type %c", format, e.name, e.typ, m.Name, m.Typeflag)
			}
			if m.Typeflag == tar.TypeReg && m.Name != "usr/lib/a.bin" { // a.bin is skipped unread
				got, err := io.ReadAll(tr)
				if err != nil || string(got) != strings.Repeat(m.Name, 3) {
					t.Errorf("%v: %s data %q, %v", format, m.Name, got, err)
				}
			}
		}
		if _, err := tr.next(); err != io.EOF {
			t.Errorf("%v: after the last member: %v", format, err)
		}
	}
}

// TestTarReaderRejectsDamage: a corrupt header and a cut archive are errors, not an early end.
func TestTarReaderRejectsDamage(t *testing.T) {
	data := archive(t, tar.FormatPAX, &tar.Header{Name: "a.raw"}, &tar.Header{Name: "b.raw"})
	corrupt := bytes.Clone(data)
	corrupt[0] = 'z'
	for name, b := range map[string][]byte{"corrupt": corrupt, "cut in data": data[:512+5], "cut in header": data[:1024+100]} {
		tr := &tarReader{r: bytes.NewReader(b)}
		var err error
		for err == nil {
			_, err = tr.next()
			if err == nil {
				_, err = io.ReadAll(tr)
			}
		}
		if err == io.EOF {
			t.Errorf("%s: read to the end without an error", name)
		}
	}
	if _, err := rawFromTar(bytes.NewReader(data), io.Discard); err == nil || !strings.Contains(err.Error(), "more than one .raw (a.raw, b.raw)") {
		t.Errorf("two images: %v", err)
	}
}

// TestTarNumber reads octal and GNU base-256 fields.
func TestTarNumber(t *testing.T) {
	for field, want := range map[string]int64{
		"00000001750\x00": 1000,
		"     1750 ":      1000,
		"\x80\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00": 1 << 33,
		"": 0,
	} {
		if got, err := tarNumber([]byte(field)); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", field, got, err, want)
		}
	}
	if _, err := tarNumber([]byte("12a")); err == nil {
		t.Error("12a accepted")
	}
}
