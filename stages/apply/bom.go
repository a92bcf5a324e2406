package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"

	"github.com/kairos-io/kairos-firmware/manifests"
	"github.com/kairos-io/kairos-firmware/stages/report"
)

// hashJob is one file of the bill of materials to hash: the entry it fills in, the image file
// (a real path) and the file's path in the image.
type hashJob struct {
	entry int
	image string
	path  string
}

// hashAll fills in the sha256 and size of the entries of bom the jobs name, on every core.
//
// The files are read from the image files with the same readers the plan uses, not through
// the mounts: the mounted image's bytes and the file's are the same (read-only mounts; a DDI's
// data blocks were all verified against the dm-verity root hash before the merge,
// plan.DecideVerified), and the first read of a freshly mounted image goes block by block
// through its loop device, about 0.2 ms per small file (BenchmarkApplyHost), where the image
// file is one read of the page cache.
func hashAll(bom []report.Firmware, jobs []hashJob) []error {
	work := make(chan hashJob)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.NumCPU(), len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			images := imageReaders{}
			defer images.close()
			for job := range work {
				sum, size, err := images.hash(job)
				bom[job.entry].SHA256, bom[job.entry].Size = sum, size
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, job := range jobs {
		work <- job
	}
	close(work)
	wg.Wait()
	return errs
}

// imageReaders are the images one worker has opened, by real path.
type imageReaders map[string]*openImage

type openImage struct {
	fsys   fs.FS
	closer io.Closer
	err    error
}

// hash returns the sha256 and size of the job's file.
func (r imageReaders) hash(job hashJob) (string, int64, error) {
	img := r[job.image]
	if img == nil {
		img = &openImage{}
		img.fsys, _, img.closer, img.err = manifests.Open(job.image)
		r[job.image] = img
	}
	if img.err != nil {
		return "", 0, fmt.Errorf("%s: %w", job.image, img.err)
	}
	f, err := img.fsys.Open(job.path)
	if err != nil {
		return "", 0, fmt.Errorf("%s in %s: %w", job.path, job.image, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("%s in %s: %w", job.path, job.image, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func (r imageReaders) close() {
	for _, img := range r {
		if img.closer != nil {
			img.closer.Close()
		}
	}
}
