package config

import (
	vfs "github.com/twpayne/go-vfs/v4"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos-firmware/hostfs"
)

// loader collects the firmware blocks of all sources, in merge order.
type loader struct {
	root    *hostfs.Root
	origins map[*yaml.Node]origin
	sources []Source
	// blocks are the firmware blocks of the sources without errors, lowest precedence first.
	blocks []*yaml.Node
	errs   []Error
}

func newLoader(root *hostfs.Root) *loader {
	return &loader{root: root, origins: map[*yaml.Node]origin{}}
}

// addBlock validates the firmware block of one source; an error-free block joins the merge.
func (l *loader) addBlock(file string, block *yaml.Node) {
	d := newDecoder(sourceMode, file, l.origins)
	d.decode(block)
	if len(d.errs) > 0 {
		l.errs = append(l.errs, d.errs...)
		return
	}
	l.blocks = append(l.blocks, block)
}

// scanKairos reads what Kairos reads: the configuration directories, then the command line.
func (l *loader) scanKairos() {
	for _, dir := range ScanDirectories {
		l.scanDirectory(dir)
	}
	l.readCmdline()
}

// merge deep-merges the error-free blocks and decodes the result. Errors found only in the
// merged tree (contradictions between sources) are added to l.errs.
func (l *loader) merge() *Config {
	var merged *yaml.Node
	for _, block := range l.blocks {
		merged = mergeNodes(merged, block, l.origins)
	}
	if merged == nil {
		return Defaults()
	}
	d := newDecoder(mergedMode, "", l.origins)
	c := d.decode(merged)
	l.errs = append(l.errs, d.errs...)
	return c
}

// Load reads the firmware configuration as Kairos would, under root: the cloud-config files of
// ScanDirectories in that order, then the firmware.* settings of /proc/cmdline, then the extra
// files the caller names (--config, highest precedence; read from the real file system as
// given, no header needed). Later sources override earlier ones by kairos-sdk's deep merge.
//
// On any error the returned Config is Defaults(): the boot goes on with the built-in behaviour
// and the errors go to the report. The sources are listed in the order they were considered.
func Load(root *hostfs.Root, extra []string) (*Config, []Source, []Error) {
	l := newLoader(root)
	l.scanKairos()
	for _, file := range extra {
		l.readFile(vfs.OSFS, file, givenFile)
	}
	c := l.merge()
	if len(l.errs) > 0 {
		return Defaults(), l.sources, l.errs
	}
	return c, l.sources, nil
}

// Validate checks configuration files and returns every error. Named files are read from the real
// file system as given and checked as Kairos would read them from a configuration directory
// (.yaml/.yml, #cloud-config header), then merged in the order given. Without files it checks
// what Load reads under root: the configuration directories and /proc/cmdline.
func Validate(root *hostfs.Root, files []string) []Error {
	l := newLoader(root)
	if len(files) == 0 {
		l.scanKairos()
	}
	for _, file := range files {
		l.readFile(vfs.OSFS, file, validatedFile)
	}
	l.merge()
	return l.errs
}
