//! A Debian 12 root file system for the caller tests: unpacked from the tarball `scripts/fetch
//! debroot` keeps, with commands run inside it through `chroot`.
//!
//! Each command runs in a private mount namespace (`unshare --mount`) that mounts /proc, /sys and
//! /dev into the root first: the mounts vanish with the command, whatever happens to it, and
//! nothing shows on the host.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// root's PATH on Debian (`/etc/profile`, and what `sudo` and `su -` give): the one a caller
/// typed by hand or run by dpkg sees.
pub const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Mounts what the tools expect, then runs the command in the root with root's environment and
/// nothing of the host's.
const ENTER: &str = r#"root=$1; shift
mount -t proc proc "$root/proc" && mount -t sysfs sysfs "$root/sys" &&
    mount --rbind /dev "$root/dev" || { echo "debroot: cannot mount into $root" >&2; exit 125; }
exec chroot "$root" /usr/bin/env -i PATH="$ROOT_PATH" HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@""#;

/// An unpacked root.
#[derive(Debug)]
pub struct Root {
    /// Its directory on the host.
    pub dir: PathBuf,
}

/// A finished command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    /// Its exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, decoded lossily.
    pub stdout: String,
    /// Standard error, decoded lossily.
    pub stderr: String,
}

impl Ran {
    /// The exit code and both streams, for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("exit code {:?}", self.code);
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !text.trim().is_empty() {
                let _ = write!(s, "\n--- {name} ---\n{}", text.trim_end());
            }
        }
        s
    }
}

impl Root {
    /// Unpacks `tar` into `dir`, which is emptied first.
    pub fn unpack(tar: &Path, dir: &Path) -> Result<Root, String> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        run_host(
            Command::new("tar").arg("-C").arg(dir).arg("--numeric-owner").arg("-xf").arg(tar),
        )?;
        Ok(Root { dir: dir.to_path_buf() })
    }

    /// Where the root's absolute path `p` is on the host. Only for paths whose directories are no
    /// absolute symbolic links (those would lead out of the root).
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    /// Runs `argv` in the root, with [`ROOT_PATH`] or, for a caller that sets its own, `path`.
    pub fn run_with_path(&self, path: &str, argv: &[&str]) -> Result<Ran, String> {
        let out = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c", ENTER, "debroot"])
            .arg(&self.dir)
            .args(argv)
            .env("ROOT_PATH", path)
            .output()
            .map_err(|e| format!("unshare: {e}"))?;
        let ran = Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if ran.code == Some(125) && ran.stderr.starts_with("debroot: ") {
            return Err(ran.stderr.trim().to_string());
        }
        Ok(ran)
    }

    /// Runs `argv` in the root with root's PATH.
    pub fn run(&self, argv: &[&str]) -> Result<Ran, String> {
        self.run_with_path(ROOT_PATH, argv)
    }

    /// Runs `argv`, which must succeed; returns its standard output.
    pub fn ok(&self, argv: &[&str]) -> Result<String, String> {
        let ran = self.run(argv)?;
        if ran.code != Some(0) {
            return Err(format!(
                "`{}` in {}: {}",
                argv.join(" "),
                self.dir.display(),
                ran.describe()
            ));
        }
        Ok(ran.stdout)
    }

    /// Runs a shell script in the root, which must succeed; returns its standard output.
    pub fn sh(&self, script: &str) -> Result<String, String> {
        self.ok(&["sh", "-ec", script])
    }

    /// Writes `bytes` to the root's `p` with `mode`.
    pub fn write(&self, p: &str, bytes: &[u8], mode: u32) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(p);
        std::fs::write(&path, bytes)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)))
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Copies the host's file `from` to the root's `to`.
    pub fn copy_in(&self, from: &Path, to: &str) -> Result<(), String> {
        let path = self.path(to);
        std::fs::copy(from, &path)
            .map(|_| ())
            .map_err(|e| format!("{} -> {}: {e}", from.display(), path.display()))
    }
}

/// Runs a host command that must succeed.
pub fn run_host(cmd: &mut Command) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why the caller tests cannot run on this host, if they cannot: they need root (chroot, mount,
/// dpkg in the root) and these programs.
pub fn missing_prerequisite() -> Option<String> {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("Uid:")?.split_whitespace().next().map(String::from))
    });
    if uid.as_deref() != Some("0") {
        return Some("the caller tests run as root (chroot, mount, dpkg in a Debian root)".into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).chain(["/usr/sbin".into()]).collect();
    let missing: Vec<&str> = ["unshare", "chroot", "tar", "mke2fs", "dpkg-deb"]
        .into_iter()
        .filter(|p| !dirs.iter().any(|d| d.join(p).is_file()))
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "missing {} (Debian: util-linux, coreutils, tar, e2fsprogs, dpkg)",
            missing.join(", ")
        )
    })
}
