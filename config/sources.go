package config

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	vfs "github.com/twpayne/go-vfs/v4"
	"gopkg.in/yaml.v3"
)

// ScanDirectories are searched for cloud-config files, lowest precedence first. The last four are
// kairos-agent's GetUserConfigDirs() in its order; /system/oem (the OS image's own files, read by
// yip stages but not by kairos-agent's config collector) goes first so that any user file
// overrides what the image ships. docs/configuration.md names the sources read.
var ScanDirectories = []string{
	"/system/oem",
	"/run/initramfs/live",
	"/etc/kairos",
	"/usr/local/cloud-config",
	"/oem",
}

// CmdlinePath is the kernel command line, read under the root.
const CmdlinePath = "/proc/cmdline"

// MaxFileSize is the largest cloud-config file read: 1 MiB, Kairos' limit.
const MaxFileSize = 1 << 20

// validHeaders are the first-line markers kairos-sdk's collector.HasValidHeader accepts.
var validHeaders = []string{"#cloud-config", "#kairos-config", "#node-config"}

// Source is one configuration source that was considered, in merge order.
type Source struct {
	// Path is the file as the system sees it, or /proc/cmdline.
	Path string `json:"path"`
	// Firmware is true when the source has a top-level firmware key (or firmware.* tokens).
	Firmware bool `json:"firmware"`
	// Skipped says why the source was not used; empty when it was read.
	Skipped string `json:"skipped,omitempty"`
}

// fileKind says how strictly a file is taken.
type fileKind int

const (
	// scannedFile is found in ScanDirectories: files that are not .yaml/.yml are passed over,
	// files without a header are skipped, as Kairos does.
	scannedFile fileKind = iota
	// givenFile is named by the caller (--config): taken as it is, header or not.
	givenFile
	// validatedFile is named to `validate`: it is checked as Kairos would read it from a
	// configuration directory, so a wrong extension or a missing header is an error.
	validatedFile
)

// hasValidHeader reports whether one of the first lines is a cloud-config header, as
// kairos-sdk's collector.HasValidHeader decides it: it looks at the first 10 pieces of the file
// split at newlines, with trailing white space removed.
func hasValidHeader(data []byte) bool {
	for _, line := range strings.SplitN(string(data), "\n", 10) {
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if strings.HasPrefix(line, "#") && contains(validHeaders, line) {
			return true
		}
	}
	return false
}

// scanDirectory reads the cloud-config files under dir, recursively, in lexical order. A missing
// directory is not an error: most of them exist only on some boots.
//
// The walk is written here instead of using vfs.Walk for two reasons: the top directory is
// followed when it is a symbolic link (initramfs layouts link /oem into the sysroot), and an
// unreadable subdirectory is reported and passed over where vfs.Walk would stop the whole walk.
// Below the top, symbolic links to directories are not followed, like filepath.Walk in
// kairos-sdk's collector.
func (l *loader) scanDirectory(dir string) {
	info, err := l.root.FS.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		l.errs = append(l.errs, Error{File: dir, Message: "cannot read directory: " + describe(err)})
		return
	case !info.IsDir():
		return
	}
	l.walk(dir)
}

func (l *loader) walk(dir string) {
	entries, err := l.root.FS.ReadDir(dir)
	if err != nil {
		l.errs = append(l.errs, Error{File: dir, Message: "cannot read directory: " + describe(err)})
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if e.IsDir() {
			l.walk(p)
			continue
		}
		l.readFile(l.root.FS, p, scannedFile)
	}
}

// readFile reads one cloud-config file and adds its firmware block.
func (l *loader) readFile(fsys vfs.FS, file string, kind fileKind) {
	isYAML := path.Ext(file) == ".yaml" || path.Ext(file) == ".yml"
	if kind == scannedFile && !isYAML {
		return
	}
	if kind == validatedFile && !isYAML {
		l.errs = append(l.errs, Error{File: file, Message: "Kairos reads only .yaml and .yml files from its configuration directories"})
	}
	info, err := fsys.Stat(file)
	if err != nil {
		l.errs = append(l.errs, Error{File: file, Message: "cannot read: " + describe(err)})
		l.sources = append(l.sources, Source{Path: file, Skipped: "cannot read"})
		return
	}
	if !info.Mode().IsRegular() {
		if kind != scannedFile {
			l.errs = append(l.errs, Error{File: file, Message: "not a regular file"})
		}
		l.sources = append(l.sources, Source{Path: file, Skipped: "not a regular file"})
		return
	}
	if info.Size() > MaxFileSize {
		l.errs = append(l.errs, tooLarge(file, info.Size()))
		l.sources = append(l.sources, Source{Path: file, Skipped: "larger than 1 MiB"})
		return
	}
	data, err := fsys.ReadFile(file)
	if err != nil {
		l.errs = append(l.errs, Error{File: file, Message: "cannot read: " + describe(err)})
		l.sources = append(l.sources, Source{Path: file, Skipped: "cannot read"})
		return
	}
	if len(data) > MaxFileSize { // grew since the Stat
		l.errs = append(l.errs, tooLarge(file, int64(len(data))))
		l.sources = append(l.sources, Source{Path: file, Skipped: "larger than 1 MiB"})
		return
	}
	if kind != givenFile && !hasValidHeader(data) {
		if kind == validatedFile {
			l.errs = append(l.errs, Error{File: file, Message: "no #cloud-config header in the first lines; Kairos skips this file"})
		} else {
			l.sources = append(l.sources, Source{Path: file, Skipped: "no #cloud-config header"})
			return
		}
	}
	block, found, errs := firmwareBlock(file, data)
	l.errs = append(l.errs, errs...)
	if len(errs) > 0 && !found { // the only error before a firmware key is found is a parse error
		l.sources = append(l.sources, Source{Path: file, Skipped: "invalid YAML"})
		return
	}
	l.sources = append(l.sources, Source{Path: file, Firmware: found})
	if found && len(errs) == 0 {
		l.addBlock(file, block)
	}
}

func tooLarge(file string, size int64) Error {
	return Error{File: file, Message: fmt.Sprintf("file is %d bytes, more than the %d bytes (1 MiB) Kairos reads from a cloud-config", size, MaxFileSize)}
}

// describe drops the real path from a file system error; the Error names the system path.
func describe(err error) string {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err.Error()
	}
	return err.Error()
}

// yamlLine matches the position yaml.v3 puts in its syntax errors ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// firmwareBlock parses a YAML document and returns the value of its top-level firmware key.
// Only the first document of a multi-document file counts, as with kairos-sdk (yaml.Unmarshal).
// A document whose top level is not a mapping has no firmware key.
func firmwareBlock(file string, data []byte) (*yaml.Node, bool, []Error) {
	var doc yaml.Node
	if err := parseYAML(data, &doc); err != nil {
		e := Error{File: file, Message: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Message = "invalid YAML: " + m[2]
		}
		return nil, false, []Error{e}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, false, nil
	}
	top := resolveAlias(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		return nil, false, nil
	}
	var block, first *yaml.Node
	var errs []Error
	for i := 0; i+1 < len(top.Content); i += 2 {
		k := resolveAlias(top.Content[i])
		if k.Kind != yaml.ScalarNode || k.Value != "firmware" {
			continue
		}
		if first != nil {
			errs = append(errs, Error{File: file, Line: k.Line, Column: k.Column, Key: "firmware", Value: k.Value,
				Message: fmt.Sprintf("key appears twice; first at line %d, column %d", first.Line, first.Column)})
			continue
		}
		first, block = k, top.Content[i+1]
	}
	return block, first != nil, errs
}

// parseYAML parses one document into a node tree. yaml.v3 has panicked on crafted input before
// (CVE-2022-28948, fixed in the pinned v3.0.1); the configuration is read during boot, where a
// panic must not take the tool down, so one is turned into a parse error.
func parseYAML(data []byte, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: parser failed: %v", r)
		}
	}()
	return yaml.Unmarshal(data, doc)
}
