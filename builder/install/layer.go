package install

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// layerRaw fetches a layer blob and writes the .raw it holds into dst; "" means the layer
// holds none. The whole blob is read, so that its size and sha256 digest are checked before
// anything is committed.
func (r *registry) layerRaw(ctx context.Context, d descriptor, dst *sink, m *meter) (string, error) {
	algo, want, _ := strings.Cut(d.Digest, ":")
	if algo != "sha256" || len(want) != 64 {
		return "", fmt.Errorf("digest %q: only sha256 digests are supported", d.Digest)
	}
	resp, err := r.get(ctx, "/v2/"+r.repo+"/blobs/"+d.Digest, "")
	if err != nil {
		m.done(err)
		return "", err
	}
	defer resp.Body.Close()
	blob := &blobReader{r: m.reader(ctx, io.LimitReader(resp.Body, d.Size+1)), h: sha256.New()}
	name, err := extractRaw(blob, d, dst)
	if err == nil {
		_, err = io.Copy(io.Discard, blob)
	}
	if err == nil && blob.n != d.Size {
		err = fmt.Errorf("blob has %d bytes, its descriptor says %d", blob.n, d.Size)
	}
	if err == nil && hex.EncodeToString(blob.h.Sum(nil)) != want {
		err = fmt.Errorf("blob content does not match its digest")
	}
	m.done(err)
	return name, err
}

// blobReader hashes and counts a blob as it is read.
type blobReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (b *blobReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	return n, err
}

// extractRaw tells a layer's content by its first bytes, whatever its media type says (oras
// labels any file ...layer.v1.tar): a gzip or zstd stream or a tar archive is searched for a
// .raw at its top level; anything else is the image itself, named by the layer's title
// annotation.
func extractRaw(r io.Reader, d descriptor, dst io.Writer) (string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(512)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return "", err
		}
		return rawFromTar(zr, dst)
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return "", err
		}
		defer zr.Close()
		return rawFromTar(zr, dst)
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return rawFromTar(br, dst)
	}
	name := d.Annotations[titleAnnotation]
	if name == "" {
		return "", fmt.Errorf("the layer is neither a tar archive nor named by an %s annotation", titleAnnotation)
	}
	if name != path.Base(name) {
		return "", fmt.Errorf("%s annotation %q is not a plain file name", titleAnnotation, name)
	}
	_, err := io.Copy(dst, br)
	return name, err
}

// rawFromTar copies the one regular *.raw file at the top of a tar archive, where
// kairos-agent's extraction of the image into the store would leave it for `sysext list`.
func rawFromTar(r io.Reader, dst io.Writer) (string, error) {
	tr := &tarReader{r: r}
	found := ""
	for {
		hdr, err := tr.next()
		if err == io.EOF {
			return found, nil
		}
		if err != nil {
			return "", err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.name), "/")
		if !hdr.regular() || strings.Contains(name, "/") || !strings.HasSuffix(name, ".raw") || strings.HasPrefix(name, ".wh.") {
			continue
		}
		if found != "" {
			return "", fmt.Errorf("the layer holds more than one .raw (%s, %s); install takes one image per URI", found, name)
		}
		if _, err := io.Copy(dst, tr); err != nil {
			return "", err
		}
		found = name
	}
}
