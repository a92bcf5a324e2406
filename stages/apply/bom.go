package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/kairos-io/kairos-firmware/hostfs"
	"github.com/kairos-io/kairos-firmware/stages/report"
)

// hashAll fills in the sha256 and size of bom[i] for each i in which, on every core.
func hashAll(root *hostfs.Root, bom []report.Firmware, which []int) []error {
	work := make(chan int)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.NumCPU(), len(which)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				sum, size, err := hashFile(root, bom[i].Path)
				bom[i].SHA256, bom[i].Size = sum, size
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, i := range which {
		work <- i
	}
	close(work)
	wg.Wait()
	return errs
}

// hashFile returns the sha256 and size of the file at p under root.
func hashFile(root *hostfs.Root, p string) (string, int64, error) {
	f, err := root.FS.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", root.Real(p), err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("%s: %w", root.Real(p), err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
