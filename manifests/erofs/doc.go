// Package erofs reads EROFS filesystem images in userspace, as an io/fs.FS.
//
// It is this project's own reader because no maintained pure-Go reader handles compressed
// images: github.com/erofs/go-erofs (v0.3.1, checked 2026-11) refuses any image with the
// LZ4_0PADDING/compression feature bits ("Read erofs files with compression" is an open item of
// its README), and go-diskfs has no erofs support. Kairos' sysext images are erofs, and
// mkfs.erofs -z lz4/lz4hc (and lzma, deflate, zstd in newer erofs-utils) are common choices.
//
// The on-disk format follows the kernel's fs/erofs/erofs_fs.h (mirrored as
// include/erofs_fs.h in erofs-utils): https://docs.kernel.org/filesystems/erofs.html and
// https://github.com/erofs/erofs-utils/blob/master/include/erofs_fs.h. Supported: compact and
// extended inodes; flat plain, flat inline (tail packing) and chunk-based data (block map and
// chunk indexes, primary device only); compressed data with full and compact (2B/4B) lcluster
// indexes, big pclusters, ztailpacking, fragments (packed inode), dedupe/partial references and
// the plain (shifted and interlaced) pcluster formats; the lz4, lzma (MicroLZMA, decoded by
// microlzma.go, a port of the kernel's xz_dec_microlzma), deflate and zstd algorithms; inline
// and shared xattrs with the short name prefixes.
//
// Not supported, reported as errors wrapping errors.ErrUnsupported: extra devices, the 48BIT
// and METABOX layouts, the extent-based index format (Z_EROFS_ADVISE_EXTENTS) and long xattr
// name prefixes (such entries are skipped by Getxattr).
//
// Paths are resolved lexically: the FS does not follow symbolic links, neither in the middle of
// a path (a link there is "not a directory") nor at its end (Open of a link returns the link,
// whose Read fails). Lstat and ReadLink implement io/fs.ReadLinkFS so that a caller can chase
// links with the semantics it needs (an extension image resolves them inside the image).
package erofs
