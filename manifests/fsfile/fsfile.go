// Package fsfile holds what the image readers' io/fs files share: the io.Seeker arithmetic and
// the paging io/fs.ReadDirFile.ReadDir promises (n > 0: at most n entries, io.EOF at the end;
// n <= 0: all that are left).
package fsfile

import (
	"fmt"
	"io"
)

// Seek returns the offset Seek(offset, whence) moves a file of size bytes, now at cur, to.
// name is the file's, for errors.
func Seek(name string, cur, size, offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += cur
	case io.SeekEnd:
		offset += size
	default:
		return 0, fmt.Errorf("seek %s: invalid whence %d", name, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek %s: negative offset %d", name, offset)
	}
	return offset, nil
}

// Page takes the next entries of *rest for ReadDir(n), leaving the others in *rest.
func Page[T any](rest *[]T, n int) ([]T, error) {
	if n > 0 && len(*rest) == 0 {
		return nil, io.EOF
	}
	if n <= 0 || n > len(*rest) {
		n = len(*rest)
	}
	page := (*rest)[:n]
	*rest = (*rest)[n:]
	return page, nil
}
