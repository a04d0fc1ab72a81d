#!/bin/sh
# Scenario 6: a whole module tree on a small machine. depmod must succeed; the guest reports its
# peak RSS.
. /test/lib.sh
. /test/params
setup
echo "guest: before depmod: $($B grep MemAvailable /proc/meminfo | $B tr -s ' ')"
run_depmod_measured
require_indexes $INDEXES
files=$($B find "$MODDIR" -name '*.ko*' | $B wc -l)
lines=$($B grep -c . "$MODDIR/modules.dep")
check "modules.dep has a line for each of the $files module files (it has $lines)" [ "$files" = "$lines" ]
check "modules.dep gives virtio_net its dependencies" eval "$B grep -qE '/virtio_net\.ko\.xz: .*failover' $MODDIR/modules.dep"
finish
