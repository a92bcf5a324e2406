// Package squashfs reads squashfs 4.0 filesystem images in userspace, as an io/fs.FS.
//
// It is this project's own reader because no maintained Go library reads lz4 squashfs:
// github.com/CalebQ42/squashfs (v1.4.1, the newest the Go module proxy serves) and
// go-diskfs' filesystem/squashfs decode lz4-compressed blocks as LZ4 frames, while squashfs
// stores raw LZ4 blocks (squashfs-tools' lz4_wrapper.c, the kernel's fs/squashfs/lz4_wrapper.c),
// so every lz4 image fails with "lz4: bad magic number".
//
// The on-disk format follows the kernel's fs/squashfs:
// https://github.com/torvalds/linux/blob/v6.1/fs/squashfs/squashfs_fs.h (structures),
// super.c (superblock checks), inode.c, dir.c, namei.c, file.c and cache.c (metadata and data
// blocks), and squashfs-tools' mksquashfs for what writers produce. Supported: every
// compressor squashfs defines — gzip (zlib streams), lzma, lzo, xz (with BCJ filters), lz4
// (raw blocks) and zstd — plus stored (uncompressed) metadata and data blocks, compressor
// options, basic and extended inodes of every type, directory listings of any length (the
// extended directories' lookup index is not needed), data blocks, sparse blocks and fragment
// blocks. Extended attributes, the uid/gid table and the NFS export table are not read
// (FileInfo.Sys gives no owners).
//
// Corrupt images give errors wrapping ErrCorrupt, never panics, endless loops or allocations
// beyond what the image holds and a few fixed limits (a decoded block is at most 1 MiB, a
// directory listing 8 MiB, a file's block list 4 MiB); a directory that contains one of its
// ancestors is an error.
//
// Paths are resolved lexically: the FS does not follow symbolic links, neither in the middle of
// a path (a link there is "not a directory") nor at its end (Open of a link returns the link,
// whose Read fails). Lstat and ReadLink implement io/fs.ReadLinkFS so that a caller can chase
// links with the semantics it needs (an extension image resolves them inside the image).
package squashfs
