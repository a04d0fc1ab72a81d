#!/bin/sh
# Scenarios 1-4: depmod runs in the guest, then the modprobe under test coldplugs the attached
# devices by modalias, loads a module with dependencies, honours a softdep, and unloads.
. /test/lib.sh
. /test/params
setup
check_modprobe
run_depmod
require_indexes $INDEXES
check_module_files "$MODULE_EXT"
coldplug
check_coldplug
[ -n "$SOFTDEP_MODULE" ] && check_softdep "$SOFTDEP_MODULE" "$SOFTDEP_PRE"
[ -n "$DEPS_MODULE" ] && check_deps "$DEPS_MODULE" "$REMOVE"
finish
