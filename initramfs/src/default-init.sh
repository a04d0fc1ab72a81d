#!/bin/sh
# Default /init of depmod-initramfs: index the modules with the depmod under test, load drivers
# for the devices present (coldplug by modalias), show the result, then give a shell.
# Programs are called by absolute path: busybox's shell would otherwise run its own applets.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B --install -s /bin
# Kernel messages would interleave with ours on the console; `dmesg` still has them.
echo 1 >/proc/sys/kernel/printk

echo "depmod-initramfs: running /sbin/depmod for $($B uname -r)"
if /sbin/depmod; then
    echo "depmod-initramfs: depmod wrote:"
    $B ls -l /lib/modules/"$($B uname -r)"
else
    echo "depmod-initramfs: depmod failed (exit $?)"
fi

# Coldplug: PCI devices first; virtio devices appear only once virtio_pci has bound.
for f in /sys/bus/pci/devices/*/modalias; do
    [ -r "$f" ] && /sbin/modprobe -a -q "$($B cat "$f")"
done
$B sleep 1
for f in /sys/bus/virtio/devices/*/modalias; do
    [ -r "$f" ] && /sbin/modprobe -a -q "$($B cat "$f")"
done
echo "depmod-initramfs: loaded modules:"
$B cat /proc/modules

echo "depmod-initramfs: shell; 'exit' powers off"
$B setsid $B cttyhack /bin/sh
$B poweroff -f
