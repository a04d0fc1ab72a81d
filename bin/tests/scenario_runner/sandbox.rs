//! Running a depmod with a time limit, and the mount-namespace set-ups of `readonly` and
//! `host-config` runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, scratch};

/// How long one run may take before it counts as hung.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The shell script of a `host-config` run: a private root (tmpfs) with the C library, the two
/// depmods, the work directory, and the scenario's config directories in the system's places.
pub const HOST_CONFIG_SCRIPT: &str = r#"set -e
newroot=$1 root=$2 libdir=$3; shift 3
mount -t tmpfs tmpfs "$newroot"
for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
    mkdir -p "$newroot/$d"; mount --bind "$libdir" "$newroot/$d"
done
ln -s /lib/x86_64-linux-gnu "$newroot/lib64"
while [ "$1" != "--" ]; do mkdir -p "$newroot$1"; mount --bind "$1" "$newroot$1"; shift; done
shift
for d in etc run usr/local/lib usr/lib lib; do
    if [ -d "$root/host/$d/depmod.d" ]; then
        mkdir -p "$newroot/$d/depmod.d"; mount --bind "$root/host/$d/depmod.d" "$newroot/$d/depmod.d"
    fi
done
exec chroot "$newroot" "$@"
"#;

/// A `readonly` run: read-only bind mounts of the given paths, then the command.
pub const READONLY_SCRIPT: &str = r#"set -e
while [ "$1" != "--" ]; do mount --bind "$1" "$1"; mount -o remount,bind,ro "$1" "$1"; shift; done
shift
exec "$@"
"#;

/// Runs `cmd` with a time limit; exit status (or how it ended), stdout, stderr.
pub fn run_with_timeout(mut cmd: Command, out_dir: &Path) -> (String, Vec<u8>, Vec<u8>) {
    let (out, err) = (out_dir.join("stdout"), out_dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break match status.code() {
                Some(c) => format!("{c}\n"),
                None => format!("killed: {status}\n"),
            };
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break format!("hung: killed after {TIMEOUT:?}\n");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    (status, fs::read(out).unwrap(), fs::read(err).unwrap())
}

/// Where the pieces of a `host-config` run come from (and the proof that mount namespaces, for
/// `host-config` and `readonly`, work here).
pub struct HostConfig {
    /// The directory holding the dynamic loader and the C library.
    pub libdir: PathBuf,
}

pub fn host_config() -> Option<HostConfig> {
    let probe = scratch("namespace-probe");
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs tmpfs \"$0\" && command -v chroot >/dev/null"])
        .arg(&probe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::missing("mount namespaces (unshare -m, mount, chroot; root is needed)");
        return None;
    }
    let Some(libdir) = fs::canonicalize("/lib64/ld-linux-x86-64.so.2")
        .ok()
        .and_then(|ld| ld.parent().map(Path::to_path_buf))
    else {
        common::missing("the x86-64 dynamic loader at /lib64/ld-linux-x86-64.so.2");
        return None;
    };
    Some(HostConfig { libdir })
}
