package install

// A tar reader of its own: archive/tar (with os/user, which it imports) adds 64 KiB to the
// binary, and a layer is only searched for one regular file by name. It reads the POSIX
// (ustar, with pax extended headers) and GNU formats as docker, buildah and
// go-containerregistry write them: long names (pax path, GNU 'L'), pax sizes, base-256 sizes.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const tarBlock = 512

// tarEntry is what the search needs of a member's header.
type tarEntry struct {
	name string
	size int64
	typ  byte // '0' (or 0) is a regular file
}

func (e tarEntry) regular() bool { return e.typ == '0' || e.typ == 0 }

type tarReader struct {
	r      io.Reader
	remain int64 // data of the current member not read yet
	pad    int64 // padding after it
}

// next skips what is left of the current member and reads the next header; io.EOF at the end.
func (t *tarReader) next() (tarEntry, error) {
	if _, err := io.CopyN(io.Discard, t.r, t.remain+t.pad); err != nil {
		return tarEntry{}, unexpected(err)
	}
	t.remain, t.pad = 0, 0
	var longName string
	pax := map[string]string{}
	for {
		var h [tarBlock]byte
		if _, err := io.ReadFull(t.r, h[:]); err != nil {
			if err == io.EOF {
				return tarEntry{}, io.EOF // no end-of-archive blocks: tolerated, as archive/tar does
			}
			return tarEntry{}, unexpected(err)
		}
		if h == [tarBlock]byte{} {
			return tarEntry{}, io.EOF
		}
		if err := checkTarSum(&h); err != nil {
			return tarEntry{}, err
		}
		e := tarEntry{name: cString(h[0:100]), typ: h[156]}
		size, err := tarNumber(h[124:136])
		if err != nil {
			return tarEntry{}, err
		}
		if string(h[257:263]) == "ustar\x00" { // POSIX: a name prefix (GNU keeps times there)
			if prefix := cString(h[345:500]); prefix != "" {
				e.name = prefix + "/" + e.name
			}
		}
		switch e.typ {
		case 'x', 'g', 'L', 'K': // pax (per file, global), GNU long name, long link name
			if size > 1<<20 {
				return tarEntry{}, fmt.Errorf("tar: %c header of %d bytes", e.typ, size)
			}
			data := make([]byte, size)
			if _, err := io.ReadFull(t.r, data); err != nil {
				return tarEntry{}, unexpected(err)
			}
			if _, err := io.CopyN(io.Discard, t.r, padding(size)); err != nil {
				return tarEntry{}, unexpected(err)
			}
			switch e.typ {
			case 'x':
				if err := parsePax(data, pax); err != nil {
					return tarEntry{}, err
				}
			case 'L':
				longName = cString(data)
			}
			continue
		}
		if longName != "" {
			e.name = longName
		}
		if p, ok := pax["path"]; ok {
			e.name = p
		}
		if s, ok := pax["size"]; ok {
			if size, err = strconv.ParseInt(s, 10, 64); err != nil || size < 0 {
				return tarEntry{}, fmt.Errorf("tar: pax size %q", s)
			}
		}
		if strings.IndexByte("123456", e.typ) >= 0 { // links, devices, directories, fifos: no data
			size = 0
		}
		e.size, t.remain, t.pad = size, size, padding(size)
		return e, nil
	}
}

// Read reads the current member's data.
func (t *tarReader) Read(p []byte) (int, error) {
	if t.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > t.remain {
		p = p[:t.remain]
	}
	n, err := t.r.Read(p)
	t.remain -= int64(n)
	if err == io.EOF && t.remain > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func padding(size int64) int64 { return (tarBlock - size%tarBlock) % tarBlock }

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkTarSum verifies the header checksum: the sum of its bytes, the checksum field counted as
// spaces (some writers use signed bytes).
func checkTarSum(h *[tarBlock]byte) error {
	want, err := tarNumber(h[148:156])
	if err != nil {
		return err
	}
	var unsigned, signed int64
	for i, b := range h {
		if i >= 148 && i < 156 {
			b = ' '
		}
		unsigned += int64(b)
		signed += int64(int8(b))
	}
	if want != unsigned && want != signed {
		return errors.New("tar: header checksum mismatch (not a tar archive, or corrupt)")
	}
	return nil
}

// tarNumber reads an octal field, or a base-256 one (high bit set) as GNU writes large sizes.
func tarNumber(f []byte) (int64, error) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		var n int64
		for i, b := range f {
			if i == 0 {
				b &= 0x7f
			}
			if n > (1<<55)-1 {
				return 0, errors.New("tar: number out of range")
			}
			n = n<<8 | int64(b)
		}
		return n, nil
	}
	s := strings.Trim(string(f), " \x00")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 8, 64)
	if err != nil {
		return 0, fmt.Errorf("tar: number field %q", s)
	}
	return n, nil
}

// parsePax reads pax records, "LEN key=value\n" each.
func parsePax(data []byte, into map[string]string) error {
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		if sp < 0 {
			return errors.New("tar: bad pax record")
		}
		n, err := strconv.Atoi(string(data[:sp]))
		if err != nil || n <= sp+1 || n > len(data) || data[n-1] != '\n' {
			return errors.New("tar: bad pax record")
		}
		key, value, ok := strings.Cut(string(data[sp+1:n-1]), "=")
		if !ok {
			return errors.New("tar: bad pax record")
		}
		into[key] = value
		data = data[n:]
	}
	return nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
