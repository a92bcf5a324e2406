package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"unicode/utf8"
)

// Release file locations (src/basic/os-util.c image_class_release_info, IMAGE_SYSEXT).
const (
	ReleaseDir     = "usr/lib/extension-release.d"
	ReleasePrefix  = "extension-release."
	strictXattr    = "user.extension-release.strict"
	hostOSRelease  = "usr/lib/os-release"
	releaseMaxSize = 1 << 20
)

// ParseRelease parses an os-release style file the way systemd's parse_env_file_internal
// (src/basic/env-file.c) does, and returns its assignments (a repeated key keeps its last
// value, an assignment without value gives ""):
//   - reading stops at the first NUL byte (the file is handled as a C string);
//   - blank lines, leading whitespace and lines starting with '#' or ';' are skipped; a line
//     without '=' is dropped; whitespace around the key is trimmed;
//   - whitespace after '=' is skipped; unquoted values lose trailing whitespace, and '\'
//     escapes the next character ('\' + newline continues the line);
//   - a value (or what follows a closing quote) may start with a quote: '...' is literal; in
//     "...", '\' escapes only " \ ` $ and newline (a continuation) and is kept before any
//     other character; whitespace after a closing quote is skipped and what follows is
//     appended (A="x" y is xy); a quote inside an unquoted value is an ordinary character;
//   - a comment line ending in '\' does not continue (systemd v254+);
//   - a key or value that is not valid UTF-8 fails the whole file, as in systemd.
func ParseRelease(data []byte) (map[string]string, error) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	const (
		preKey = iota
		key
		preValue
		value
		valueEscape
		singleQuote
		doubleQuote
		doubleQuoteEscape
		comment
		commentEscape
	)
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	isNewline := func(c byte) bool { return c == '\n' || c == '\r' }
	out := map[string]string{}
	var k, v []byte
	lastKeySpace, lastValueSpace := -1, -1
	line := 1
	push := func(trimValue bool) error {
		if lastKeySpace >= 0 {
			k = k[:lastKeySpace]
		}
		if trimValue && lastValueSpace >= 0 {
			v = v[:lastValueSpace]
		}
		if !utf8.Valid(k) {
			return fmt.Errorf("line %d: invalid UTF-8 in key %q", line, k)
		}
		if !utf8.Valid(v) {
			return fmt.Errorf("line %d: invalid UTF-8 in the value of %s: %q", line, k, v)
		}
		out[string(k)] = string(v)
		k, v = k[:0], nil
		return nil
	}
	state := preKey
	for _, c := range data {
		switch state {
		case preKey:
			if c == '#' || c == ';' {
				state = comment
			} else if !isSpace(c) {
				state = key
				lastKeySpace = -1
				k = append(k[:0], c)
			}
		case key:
			switch {
			case isNewline(c):
				state = preKey
				line++
				k = k[:0]
			case c == '=':
				state = preValue
				lastValueSpace = -1
				v = []byte{}
			default:
				if !isSpace(c) {
					lastKeySpace = -1
				} else if lastKeySpace < 0 {
					lastKeySpace = len(k)
				}
				k = append(k, c)
			}
		case preValue:
			switch {
			case isNewline(c):
				state = preKey
				if err := push(false); err != nil {
					return nil, err
				}
				line++
			case c == '\'':
				state = singleQuote
			case c == '"':
				state = doubleQuote
			case c == '\\':
				state = valueEscape
			case !isSpace(c):
				state = value
				v = append(v, c)
			}
		case value:
			switch {
			case isNewline(c):
				state = preKey
				if err := push(true); err != nil {
					return nil, err
				}
				line++
			case c == '\\':
				state = valueEscape
				lastValueSpace = -1
			default:
				if !isSpace(c) {
					lastValueSpace = -1
				} else if lastValueSpace < 0 {
					lastValueSpace = len(v)
				}
				v = append(v, c)
			}
		case valueEscape:
			state = value
			if !isNewline(c) {
				v = append(v, c)
			}
		case singleQuote:
			if c == '\'' {
				state = preValue
			} else {
				v = append(v, c)
			}
		case doubleQuote:
			switch c {
			case '"':
				state = preValue
			case '\\':
				state = doubleQuoteEscape
			default:
				v = append(v, c)
			}
		case doubleQuoteEscape:
			state = doubleQuote
			switch {
			case strings.IndexByte("\"\\`$", c) >= 0:
				v = append(v, c)
			case c != '\n':
				v = append(v, '\\', c)
			}
		case comment:
			if c == '\\' {
				state = commentEscape
			} else if isNewline(c) {
				state = preKey
				line++
			}
		case commentEscape:
			if isNewline(c) {
				state = preKey
				line++
			} else {
				state = comment
			}
		}
	}
	switch state {
	case preValue, value, valueEscape, singleQuote, doubleQuote, doubleQuoteEscape:
		if err := push(state == value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// release is the extension-release file found in an image.
type release struct {
	path   string // in the image, e.g. usr/lib/extension-release.d/extension-release.foo
	name   string // its suffix: the image name it was built for
	fields map[string]string
}

// findRelease follows open_extension_release_at (src/basic/os-util.c): first
// extension-release.<name> (symlinks resolved inside the image); if absent, the single
// regular file extension-release.<X> in the directory where X is the image name cut at its
// first "_" or "+", or whose user.extension-release.strict xattr is false. Two candidates are
// an error, as systemd's ENOTUNIQ.
func findRelease(fsys *ImageFS, name string) (*release, error) {
	exact := ReleaseDir + "/" + ReleasePrefix + name
	data, err := fsys.ReadFile(exact)
	if err == nil {
		return parseReleaseFile(exact, name, data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", exact, err)
	}
	ents, err := fsys.ReadDir(ReleaseDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no extension-release: %s is missing", exact)
		}
		return nil, fmt.Errorf("%s: %w", ReleaseDir, err)
	}
	base := baseImageName(name)
	var found, why string
	for _, e := range ents {
		suffix, ok := strings.CutPrefix(e.Name(), ReleasePrefix)
		if !ok || !e.Type().IsRegular() || checkImageName(suffix) != nil {
			continue
		}
		p := ReleaseDir + "/" + e.Name()
		reason := "its name matches " + base
		if suffix != base {
			strict, err := fsys.Getxattr(p, strictXattr)
			if err != nil {
				continue // no xattr, or the format keeps none: not a candidate
			}
			if b, ok := parseBoolean(string(strict)); !ok || b {
				continue
			}
			reason = strictXattr + "=" + string(strict)
		}
		if found != "" {
			return nil, fmt.Errorf("no %s; %s (%s) and %s (%s) both qualify as fallback: ambiguous", exact, found, why, p, reason)
		}
		found, why = p, reason
	}
	if found == "" {
		return nil, fmt.Errorf("no extension-release: %s is missing and no file in %s has %s=0 or is named after %q", exact, ReleaseDir, strictXattr, base)
	}
	data, err = fsys.ReadFile(found)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", found, err)
	}
	return parseReleaseFile(found, strings.TrimPrefix(found, ReleaseDir+"/"+ReleasePrefix), data)
}

func parseReleaseFile(p, name string, data []byte) (*release, error) {
	if len(data) > releaseMaxSize {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", p, len(data), releaseMaxSize)
	}
	fields, err := ParseRelease(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &release{path: p, name: name, fields: fields}, nil
}

// parseBoolean is systemd's parse_boolean (src/basic/parse-util.c).
func parseBoolean(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, true
	case "0", "no", "n", "false", "f", "off":
		return false, true
	}
	return false, false
}
