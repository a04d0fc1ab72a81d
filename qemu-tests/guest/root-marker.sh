#!/bin/sh
# /depmod-rs-marker in the Debian root of the caller tests, booted as its init
# (init=/depmod-rs-marker) by the initramfs once that has mounted the root from the virtio disk.
# Nothing of the root has run before it: every module in /proc/modules was loaded by the initramfs
# (its modprobe, and udev through libkmod), from the indexes in the image. It runs under the root's
# own shell (dash), with the root's busybox for the checks of /test/lib.sh (installed here as
# /depmod-rs-test/lib.sh).
. /depmod-rs-test/lib.sh

KVER=$($B uname -r)
MODDIR=/lib/modules/$KVER
echo "guest: the root's init is running, kernel $KVER"

root=$($B awk '$2 == "/" { print $1, $3 }' /proc/mounts)
check "the root file system is /dev/vda, ext4 (/proc/mounts: $root)" [ "$root" = "/dev/vda ext4" ]
# The disk driver, the bus it sits on, and the root's file system: modules in this kernel (the host
# checked), which the initramfs had to load with their dependencies to get here.
for m in virtio_blk virtio_pci ext4; do
    if ! deps=$(deps_of $m); then
        fail "modules.dep has no line for $m"
        continue
    fi
    check "$m was loaded by the initramfs" loaded $m
    for d in $deps; do
        check "$d (dependency of $m) was loaded by the initramfs" loaded "$d"
    done
done
echo "guest: loaded: $($B cut -d ' ' -f 1 /proc/modules | $B tr '\n' ' ')"
finish
