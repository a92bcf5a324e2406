package split

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// The external tools run through os.StartProcess: os/exec would add 40 KiB to a binary that
// must stay under 9 MiB.

// lookPath finds an executable tool in $PATH.
func lookPath(tool string) (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, tool)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in $PATH", tool)
}

// run runs a tool and returns its standard output; everything it printed goes into the error
// when it fails. SOURCE_DATE_EPOCH is dropped (mksquashfs refuses it together with -all-time).
func run(tool string, args ...string) (string, error) {
	fail := func(err error, output string) (string, error) {
		return "", fmt.Errorf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, strings.TrimSpace(output))
	}
	p, err := lookPath(tool)
	if err != nil {
		return fail(err, "")
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "SYSTEMD_LOG_LEVEL=warning")
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err, "")
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return fail(err, "")
	}
	var stdout, stderr []byte
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(outR); outR.Close() }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(errR); errR.Close() }()
	stdin, err := os.Open(os.DevNull)
	if err == nil {
		var proc *os.Process
		proc, err = os.StartProcess(p, append([]string{tool}, args...), &os.ProcAttr{Env: env, Files: []*os.File{stdin, outW, errW}})
		stdin.Close()
		if err == nil {
			var state *os.ProcessState
			if state, err = proc.Wait(); err == nil && !state.Success() {
				err = fmt.Errorf("%s", state)
			}
		}
	}
	outW.Close()
	errW.Close()
	wg.Wait()
	if err != nil {
		return fail(err, string(stdout)+string(stderr))
	}
	return string(stdout), nil
}
