// Package manifests tells what each systemd-sysext extension image offers: its name as
// systemd-sysext computes it, its format, its extension-release fields, and the firmware files
// (and, from an embedded manifest, the kernel modules) it provides.
//
// Images are read in userspace, never mounted and without external programs: a directory
// through os.Root, squashfs and erofs through this module's own readers (packages squashfs and
// erofs, which say why; squashfs with every compressor, lz4 included). Every format opens into
// an io/fs.FS that resolves symlinks inside the image (see Open), so a later GPT/DDI reader
// only has to hand its root partition's filesystem to the same code.
//
// docs/images.md describes the supported formats, the name rule, the embedded manifest and the
// extension-release rules.
package manifests
