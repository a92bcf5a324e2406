#!/bin/sh
# make demo: kairos-firmware detect on this machine, then on a real recorded machine (a sysfs
# snapshot from ghw's module) with Debian's real kernel metadata.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin="$top/bin/kairos-firmware"
release=6.1.0-56-amd64
kernel="$top/.cache/kernel/$release"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. This machine: kairos-firmware detect"
"$bin" detect || true

say "2. A recorded machine (ghw snapshot, a Dell server with Broadcom NICs) with Debian's $release modules"
ghw=$(cd "$top" && go list -m -f '{{.Dir}}' github.com/jaypipes/ghw)
snap="$ghw/testdata/snapshots/linux-amd64-8581cf3a529e5d8b97ea876eade2f60d.tar.gz"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
tar -xzf "$snap" -C "$root"
mkdir -p "$root/lib"
ln -s "$kernel/lib/modules" "$root/lib/modules"
"$bin" detect --root "$root" --kernel-release "$release" --kmsg /dev/null 2>/dev/null | head -40
echo "... (82 devices in all)"

say "3. The same machine, only the devices that need firmware (--firmware-only), as JSON"
"$bin" detect --root "$root" --kernel-release "$release" --kmsg /dev/null --firmware-only --json
