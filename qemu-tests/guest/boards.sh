#!/bin/sh
# Boards: a 128 MiB machine of another architecture. The initramfs carries only what reaching the
# disk takes (virtio_blk, ext4, virtio_pci where the devices sit on PCI, and their dependencies):
# depmod indexes those, and modprobe loads them by the devices' modaliases and by name. The disk,
# holding the architecture's whole module tree (a board's flash), is then mounted on
# /lib/modules; depmod indexes all of it, and modprobe loads the other devices' drivers, a module
# with dependencies and a softdep from those indexes.
. /test/lib.sh
. /test/params
setup
check_modprobe

# 1. The initramfs's own modules, enough to reach the disk.
run_depmod
require_indexes $INDEXES
coldplug
check "virtio_blk drives a virtio device" bound virtio virtio_blk
check "/sys/block/vda exists" eventually $B test -e /sys/block/vda
/sbin/modprobe ext4 || fail "modprobe ext4 exited $?"
check "ext4 is loaded" loaded ext4
$B mount -t ext4 /dev/vda /lib/modules || abort "cannot mount /dev/vda on /lib/modules"
[ -d "$MODDIR" ] || abort "the disk has no $KVER"

# 2. The whole tree.
files=$($B find "$MODDIR" -name '*.ko*' | $B wc -l)
echo "guest: $files module files on the disk; $($B grep MemAvailable /proc/meminfo | $B tr -s ' ')"
run_depmod_measured
require_indexes $INDEXES
check_module_files "$MODULE_EXT"
lines=$($B grep -c . "$MODDIR/modules.dep")
check "modules.dep has a line for each of the $files module files (it has $lines)" [ "$files" = "$lines" ]
(cd "$MODDIR" && for f in modules.*; do echo "SUM $($B sha256sum "$f")"; done)

# 3. modprobe from the whole tree's indexes.
coldplug
[ "$PCI" = 1 ] && check "virtio-pci drives PCI devices" bound pci virtio-pci
for m in virtio_net virtio_blk virtio_rng; do
    check "$m is loaded (or built in)" loaded_or_builtin $m
    check "$m drives a virtio device" bound virtio $m
    builtin $m && continue
    for d in $(deps_of $m); do
        check "$d (dependency of $m) is loaded" loaded_or_builtin "$d"
    done
done
check "a network interface is driven by virtio_net" net_driver virtio_net
[ -n "$SOFTDEP_MODULE" ] && check_softdep "$SOFTDEP_MODULE" "$SOFTDEP_PRE"
check_deps "$DEPS_MODULE" 1
finish
