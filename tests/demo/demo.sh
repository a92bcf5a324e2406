#!/bin/sh
# make demo: the spike's failure reproduced in a QEMU boot of Debian's kernel, and fixed by
# kairos-firmware apply in the initrd (tests/demo_test.go, scenario tests/qemu/scenarios/apply.sh).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
story=$(mktemp)
trap 'rm -f "$story"' EXIT
echo "booting Debian's 6.1 kernel in QEMU (TCG, about 10-20 s; the first run builds the test module and initramfs)..." >&2
cd "$top"
if ! KAIROS_FIRMWARE_DEMO="$story" go test -count=1 -run '^TestDemoStory$' ./tests >"$story.log" 2>&1; then
	cat "$story.log" >&2
	rm -f "$story.log"
	exit 1
fi
rm -f "$story.log"
cat "$story"
