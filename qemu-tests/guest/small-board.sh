#!/bin/sh
# Scenario 6: a whole module tree on a small machine. depmod must succeed; the guest reports its
# peak RSS, measured by busybox `time -v` (getrusage of the waited-for child: exact, where
# polling /proc/PID/status for VmHWM could miss the last peak).
. /test/lib.sh
. /test/params
setup
echo "guest: before depmod: $($B grep MemAvailable /proc/meminfo | $B tr -s ' ')"
$B time -v -o /tmp/time.out /sbin/depmod >/tmp/depmod.out 2>/tmp/depmod.err
rc=$?
peak=$($B sed -n 's/.*Maximum resident set size (kbytes): *//p' /tmp/time.out)
echo "PEAK_RSS_KB ${peak:-unknown}"
[ -s /tmp/depmod.err ] && { echo "guest: depmod's stderr, first 5 lines:"; $B head -n 5 /tmp/depmod.err; }
[ $rc -eq 0 ] || abort "/sbin/depmod exited $rc: $($B head -n 1 /tmp/depmod.err)"
if [ -s /tmp/depmod.err ]; then
    fail "/sbin/depmod printed $($B wc -l </tmp/depmod.err) lines on stderr, first: $($B head -n 1 /tmp/depmod.err)"
fi
require_indexes $INDEXES
files=$($B find "$MODDIR" -name '*.ko*' | $B wc -l)
lines=$($B grep -c . "$MODDIR/modules.dep")
check "modules.dep has a line for each of the $files module files (it has $lines)" [ "$files" = "$lines" ]
check "modules.dep gives virtio_net its dependencies" eval "$B grep -qE '/virtio_net\.ko\.xz: .*failover' $MODDIR/modules.dep"
finish
