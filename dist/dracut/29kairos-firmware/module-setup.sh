#!/bin/bash
# dracut module: runs kairos-firmware in the initrd of non-UKI Kairos boots, after immucore has
# mounted the real root (with its persistent bind mounts) at /sysroot and before switch_root.
# See docs/boot-timeline.md.

# called by dracut
check() {
    require_binaries kairos-firmware || return 1
    return 0
}

# called by dracut: immucore (28immucore) mounts /sysroot; we need it first.
depends() {
    echo immucore
    return 0
}

# called by dracut: the filesystems images use, overlay for the merge, loop for raw images and
# dm-verity for verity-protected DDIs.
installkernel() {
    instmods overlay loop erofs squashfs dm-verity
}

# called by dracut
install() {
    declare moddir=${moddir}
    declare systemdsystemunitdir=${systemdsystemunitdir}

    inst_multiple kairos-firmware
    inst_simple "${moddir}/kairos-firmware.service" "${systemdsystemunitdir}/kairos-firmware.service"
    mkdir -p "${initdir}/${systemdsystemunitdir}/initrd.target.wants"
    ln_r "../kairos-firmware.service" "${systemdsystemunitdir}/initrd.target.wants/kairos-firmware.service"
}
