# Shared by every scenario's /init (sourced by busybox sh): mounting, checks that collect their
# failures, and the one marker line the host decides by.
#
# Programs are called by absolute path: busybox's shell runs its own applets before searching
# PATH, so a bare `modprobe` would be busybox's even when /sbin/modprobe is kmod.
B=/bin/busybox
FAILED=""

setup() {
    $B mount -t proc proc /proc
    $B mount -t sysfs sysfs /sys
    $B mount -t devtmpfs devtmpfs /dev
    # Kernel messages would split our lines on the console; `finish` shows dmesg on failure.
    echo 1 >/proc/sys/kernel/printk
    KVER=$($B uname -r)
    MODDIR=/lib/modules/$KVER
    echo "guest: kernel $KVER, $($B grep MemTotal /proc/meminfo | $B tr -s ' ')"
}

ok() { echo "ok: $*"; }
fail() {
    echo "not ok: $*"
    FAILED="${FAILED:+$FAILED; }$*"
}
# check DESCRIPTION COMMAND...: runs the command and records the outcome under the description.
check() {
    desc=$1
    shift
    if "$@"; then ok "$desc"; else fail "$desc"; fi
}

# Prints the marker line, alone on its line, and powers off.
finish() {
    if [ -n "$FAILED" ]; then
        echo "--- dmesg, last 40 lines ---"
        $B dmesg | $B tail -n 40
        echo
        echo "RESULT: FAIL $FAILED"
    else
        echo
        echo "RESULT: PASS"
    fi
    $B sync
    $B poweroff -f
    # poweroff -f does not return; if it did, init exiting would panic the kernel instead.
    $B sleep 60
}

# For a failure that leaves nothing else worth checking.
abort() {
    fail "$*"
    finish
}

# Module names as /proc/modules spells them, from paths or names on standard input.
names() { $B sed 's|.*/||; s|\.ko.*||; s|-|_|g'; }
loaded() { $B grep -q "^$1 " /proc/modules; }
not_loaded() { ! loaded "$1"; }
builtin() { names <"$MODDIR/modules.builtin" | $B grep -qx "$1"; }
loaded_or_builtin() { loaded "$1" || builtin "$1"; }

# Waits up to about 5 s for COMMAND... to succeed (driver probing may finish after modprobe).
eventually() {
    n=0
    until "$@"; do
        n=$((n + 1))
        [ $n -ge 25 ] && return 1
        $B usleep 200000
    done
}

# bound BUS DRIVER: the driver has at least one device.
has_device() { $B ls "/sys/bus/$1/drivers/$2/" 2>/dev/null | $B grep -qE '^(0000:|virtio)'; }
bound() { eventually has_device "$1" "$2"; }
# net_driver DRIVER: some network interface is driven by it.
has_net_driver() {
    for l in /sys/class/net/*/device/driver; do
        [ -e "$l" ] && [ "$($B basename "$($B readlink "$l")")" = "$1" ] && return 0
    done
    return 1
}
net_driver() { eventually has_net_driver "$1"; }

# Checks /sbin/modprobe is the consumer the host put there ($EXPECT_MODPROBE: the first line of
# `modprobe --version`, or "busybox").
check_modprobe() {
    if [ "$EXPECT_MODPROBE" = busybox ]; then
        got=$($B readlink /sbin/modprobe)
        [ "$got" = /bin/busybox ] || abort "/sbin/modprobe is $got, not busybox"
    else
        got=$(/sbin/modprobe --version 2>&1 | $B head -n 1)
        [ "$got" = "$EXPECT_MODPROBE" ] || abort "/sbin/modprobe --version says '$got', not '$EXPECT_MODPROBE'"
    fi
    ok "/sbin/modprobe is $EXPECT_MODPROBE"
}

# Runs the depmod under test; it must exit 0 and print nothing, as kmod's does on these trees.
run_depmod() {
    /sbin/depmod "$@" >/tmp/depmod.out 2>/tmp/depmod.err
    judge_depmod $?
}

# As run_depmod, and prints depmod's peak RSS (PEAK_RSS_KB), measured by busybox `time -v`
# (getrusage of the waited-for child: exact, where polling /proc/PID/status for VmHWM could miss
# the last peak).
run_depmod_measured() {
    $B time -v -o /tmp/time.out /sbin/depmod "$@" >/tmp/depmod.out 2>/tmp/depmod.err
    rc=$?
    peak=$($B sed -n 's/.*Maximum resident set size (kbytes): *//p' /tmp/time.out)
    echo "PEAK_RSS_KB ${peak:-unknown}"
    judge_depmod $rc
}

# judge_depmod STATUS: depmod's exit status and stderr (/tmp/depmod.err).
judge_depmod() {
    rc=$1
    if [ -s /tmp/depmod.err ]; then
        echo "guest: depmod's stderr ($($B wc -l </tmp/depmod.err) lines), first 5:"
        $B head -n 5 /tmp/depmod.err
    fi
    [ $rc -eq 0 ] || abort "/sbin/depmod exited $rc: $($B head -n 1 /tmp/depmod.err)"
    if [ -s /tmp/depmod.err ]; then
        fail "/sbin/depmod printed $($B wc -l </tmp/depmod.err) lines on stderr, first: $($B head -n 1 /tmp/depmod.err)"
    else
        ok "/sbin/depmod ran cleanly"
    fi
}

# require_indexes FILE...: depmod wrote each of these into the module directory.
require_indexes() {
    missing=""
    for f in "$@"; do
        [ -f "$MODDIR/$f" ] || missing="$missing $f"
    done
    [ -z "$missing" ] || abort "depmod wrote no$missing (needed by $EXPECT_MODPROBE)"
    ok "depmod wrote $*"
}

# Coldplug: every PCI device's modalias, then (once virtio_pci has bound and the virtio devices
# exist) every virtio device's. `-a -q`: a modalias with no driver is normal, and judged below by
# /proc/modules and /sys, not by modprobe's exit status.
coldplug() {
    for f in /sys/bus/pci/devices/*/modalias; do
        /sbin/modprobe -a -q "$($B cat "$f")"
    done
    virtio_count() { [ "$($B ls /sys/bus/virtio/devices 2>/dev/null | $B wc -l)" -ge "$VIRTIO_DEVICES" ]; }
    eventually virtio_count || fail "only $($B ls /sys/bus/virtio/devices | $B wc -l) of $VIRTIO_DEVICES virtio devices appeared"
    for f in /sys/bus/virtio/devices/*/modalias; do
        /sbin/modprobe -a -q "$($B cat "$f")"
    done
}

# The drivers of the devices the host attached: e1000, virtio-net-pci, virtio-blk-pci,
# virtio-rng-pci.
check_coldplug() {
    for m in e1000 virtio_pci virtio_net virtio_blk virtio_rng; do
        check "$m is loaded (or built in)" loaded_or_builtin $m
    done
    check "e1000 drives a PCI device" bound pci e1000
    check "virtio-pci drives PCI devices" bound pci virtio-pci
    check "virtio_net drives a virtio device" bound virtio virtio_net
    check "virtio_blk drives a virtio device" bound virtio virtio_blk
    check "virtio_rng drives a virtio device" bound virtio virtio_rng
    check "a network interface is driven by e1000" net_driver e1000
    check "a network interface is driven by virtio_net" net_driver virtio_net
    check "/sys/block/vda exists" eventually $B test -e /sys/block/vda
    # Loaded by alias, so their dependencies came from modules.alias + modules.dep together.
    for m in e1000 virtio_pci virtio_net virtio_blk virtio_rng; do
        builtin $m && continue
        for d in $(deps_of $m); do
            check "$d (dependency of $m) is loaded" loaded_or_builtin "$d"
        done
    done
}

# The module names on MODULE's modules.dep line; fails when it has no line.
deps_of() {
    line=$($B awk -v m="$1" '{ n = $1; sub(/:$/, "", n); sub(/.*\//, "", n); sub(/\.ko.*/, "", n);
        gsub(/-/, "_", n); if (n == m) { print; exit } }' "$MODDIR/modules.dep")
    [ -n "$line" ] || return 1
    echo "${line#*:}" | $B tr ' ' '\n' | $B grep . | names
}

# check_softdep MODULE PRE: loading MODULE loads PRE first, which only modules.softdep asks for.
check_softdep() {
    line=$($B grep "^softdep $1 " "$MODDIR/modules.softdep" | $B head -n 1)
    [ -n "$line" ] || { fail "modules.softdep has no line for $1"; return; }
    if loaded "$2"; then
        fail "precondition: $2 is loaded before modprobe $1"
        return
    fi
    /sbin/modprobe "$1" || fail "modprobe $1 exited $?"
    check "$1 is loaded" loaded "$1"
    check "$2 was loaded for '$line'" loaded "$2"
}

# check_deps MODULE REMOVE: modprobe MODULE loads every module of its modules.dep line; with
# REMOVE=1, modprobe -r unloads it and those of them that it alone had brought in. kmod removes
# them in the reverse of their modules.dep order, each only if nothing uses it at its turn, and
# does not come back: one used by a dependency listed before it (arm64's xor_neon, under xor)
# stays, and is not checked.
check_deps() {
    m=$1
    deps=$(deps_of "$m") || { fail "modules.dep has no line for $m"; return; }
    [ -n "$deps" ] || fail "modules.dep gives $m no dependency"
    before=$($B cut -d ' ' -f 1 /proc/modules)
    /sbin/modprobe "$m" || fail "modprobe $m exited $?"
    check "$m is loaded" loaded "$m"
    for d in $deps; do
        check "$d (dependency of $m) is loaded" loaded "$d"
    done
    [ "$2" = 1 ] || return 0
    /sbin/modprobe -r "$m" 2>/tmp/rmmod.err
    rc=$?
    $B cat /tmp/rmmod.err
    [ $rc = 0 ] || check_rmmod_refusals "$m" "$deps" || fail "modprobe -r $m exited $rc"
    check "$m is unloaded by modprobe -r" not_loaded "$m"
    earlier=""
    for d in $deps; do
        user=""
        for e in $earlier; do
            deps_of "$e" | $B grep -qx "$d" && user=$e
        done
        earlier="$earlier $d"
        echo "$before" | $B grep -qx "$d" && continue
        if [ -n "$user" ]; then
            echo "guest: $d is left to modprobe -r's order: $user, listed before it, uses it"
            continue
        fi
        check "$d (unused dependency of $m) is unloaded by modprobe -r" not_loaded "$d"
    done
}

# check_rmmod_refusals MODULE DEPS: modprobe -r MODULE failed only because a module one of its
# softdeps brought in was in use when its turn came (armv7: blake2b-256 names blake2b_generic
# and blake2b_neon, which uses it; kmod removes them in alias order and reports the refusal).
# MODULE and its dependencies (DEPS) are checked apart, by their unloading.
check_rmmod_refusals() {
    [ -s /tmp/rmmod.err ] || return 1
    while read -r line; do
        x=${line#*: Module }
        x=${x% is in use.}
        case "$line" in *": Module $x is in use.") ;; *) return 1 ;; esac
        for d in "$1" $2; do [ "$x" = "$d" ] && return 1; done
        echo "guest: modprobe -r $1: $x, brought in by a softdep, was in use at its turn"
    done </tmp/rmmod.err
}

# check_module_files EXT: every module file in the image, and every path in modules.dep, ends in
# EXT (.ko, .ko.xz, .ko.zst): the scenario tests the compression it claims to.
check_module_files() {
    others=$($B find "$MODDIR" -name '*.ko*' ! -name "*$1" | $B wc -l)
    check "every module file ends in $1 ($others others)" [ "$others" = 0 ]
    bad=$($B tr ' ' '\n' <"$MODDIR/modules.dep" | $B sed 's/:$//' | $B grep . | $B grep -cv "$1\$")
    check "every path in modules.dep ends in $1 ($bad others)" [ "$bad" = 0 ]
}
