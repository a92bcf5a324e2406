package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos-firmware/builder/install"
	"github.com/kairos-io/kairos-firmware/config"
	"github.com/kairos-io/kairos-firmware/hostfs"
)

// installEntry is one line of install's output: an installed image, or the error of a URI.
type installEntry struct {
	install.Result
	Error string `json:"error,omitempty"`
}

func runInstall(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("install", stderr)
	rootDir := fs.String("root", "/", "directory the store (/var/lib/kairos/extensions) and, with --from-config, the cloud-config resolve under")
	profile := fs.String("profile", install.DefaultProfile, "enable the image for `PROFILE`: active, passive, recovery or common")
	sha := fs.String("sha256", "", "expected sha256 of the image file (`HEX`)")
	catalogFile := fs.String("catalog", "", "catalog.json `FILE` whose entry for the image's file name gives the expected sha256")
	fromConfig := fs.Bool("from-config", false, "install every URI of firmware.install in the cloud-config under --root")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kairos-firmware install URI [--profile PROFILE] [--root DIR] [--sha256 HEX | --catalog FILE] [--json]\n       kairos-firmware install --from-config [--profile PROFILE] [--root DIR] [--catalog FILE] [--json]\n\nURI: file:PATH or a path, http(s)://..., oci:REGISTRY/REPO[:TAG|@DIGEST]. Installs the image into\n/var/lib/kairos/extensions and enables it for PROFILE, as kairos-agent sysext install and enable do.")
		fs.PrintDefaults()
	}
	uris, code, ok := parseWithOperands(fs, args)
	if !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kairos-firmware install: "+format+"\n", a...)
		return exitUsage
	}
	switch {
	case *fromConfig && len(uris) > 0:
		return usageErr("--from-config takes no URI (got %q)", uris[0])
	case !*fromConfig && len(uris) != 1:
		return usageErr("want one URI, or --from-config (got %d arguments)", len(uris))
	case *sha != "" && *catalogFile != "":
		return usageErr("give --sha256 or --catalog, not both")
	case *sha != "" && *fromConfig:
		return usageErr("--sha256 checks a single image; use --catalog with --from-config")
	}
	opts := install.Options{Profile: *profile, Log: stderr, TTY: isTerminal(stderr)}
	if *sha != "" {
		sum, err := install.NormalizeSHA256(*sha)
		if err != nil {
			return usageErr("--sha256: %v", err)
		}
		opts.SHA256 = sum
	}
	if *catalogFile != "" {
		c, err := install.LoadCatalog(*catalogFile)
		if err != nil {
			return usageErr("--catalog: %v", err)
		}
		opts.Catalog = c
	}
	root, err := hostfs.New(*rootDir)
	if err != nil {
		return usageErr("%v", err)
	}
	opts.Root = root.Dir
	if *fromConfig {
		cfg, _, errs := config.Load(root, nil)
		if len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintf(stderr, "kairos-firmware install: %s\n", e.Error())
			}
			fmt.Fprintln(stderr, "kairos-firmware install: the configuration has errors; nothing was installed")
			if *asJSON {
				writeJSON(stdout, stderr, []installEntry{})
			}
			return exitFindings
		}
		if uris = cfg.Install; len(uris) == 0 {
			fmt.Fprintf(stderr, "kairos-firmware install: firmware.install lists no image under %s\n", root.Dir)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	entries, code := installAll(ctx, uris, opts, stderr)
	if *asJSON {
		if c := writeJSON(stdout, stderr, entries); c != exitOK {
			return c
		}
		return code
	}
	for _, e := range entries {
		if e.Error != "" {
			continue
		}
		verb := "installed"
		if e.Unchanged {
			verb = "unchanged"
		}
		fmt.Fprintf(stdout, "%s %s: %d bytes, sha256 %s, link %s\n", verb, e.File, e.Bytes, e.SHA256, e.Link)
	}
	return code
}

// installAll installs each URI in turn; a failure is reported and the others go on.
func installAll(ctx context.Context, uris []string, opts install.Options, stderr io.Writer) ([]installEntry, int) {
	entries := []installEntry{}
	code := exitOK
	from := map[string]string{} // file -> the URI that installed it in this run
	for _, uri := range uris {
		res, err := install.Install(ctx, uri, opts)
		if err != nil {
			fmt.Fprintf(stderr, "kairos-firmware install: %v\n", err)
			entries = append(entries, installEntry{Result: install.Result{URI: uri}, Error: err.Error()})
			code = exitFindings
			continue
		}
		if prev, ok := from[res.File]; ok && prev != uri {
			fmt.Fprintf(stderr, "warning: %s replaced the %s that %s installed: both have that file name\n", uri, res.File, prev)
		}
		from[res.File] = uri
		entries = append(entries, installEntry{Result: *res})
	}
	return entries, code
}

// parseWithOperands parses flags placed before, between and after operands (install URI
// --profile common) and returns the operands.
func parseWithOperands(fs interface {
	Parse([]string) error
	Args() []string
}, args []string) ([]string, int, bool) {
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageExit(err), false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return operands, exitOK, true
		}
		operands, args = append(operands, rest[0]), rest[1:]
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
