package install

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"os"
)

// sink is the temporary file an image is fetched into, in the store directory so that the
// commit is a rename. It hashes and counts what is written.
type sink struct {
	f    *os.File
	h    hash.Hash
	n    int64
	kept bool // renamed into the store: discard must not remove it
}

func newSink(f *os.File) *sink {
	return &sink{f: f, h: sha256.New()}
}

func (s *sink) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// finish flushes the file to disk and closes it.
func (s *sink) finish() error {
	if err := s.f.Sync(); err != nil {
		return err
	}
	return s.f.Close()
}

// sum is the sha256 of what was written, in hex.
func (s *sink) sum() string {
	return hex.EncodeToString(s.h.Sum(nil))
}

// discard removes the temporary file unless it was committed.
func (s *sink) discard() {
	if s.kept {
		return
	}
	s.f.Close()
	os.Remove(s.f.Name())
}
