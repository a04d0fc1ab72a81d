//! What the boot tests need from the host, found once per run: QEMU, a static busybox, a static
//! depmod built from this workspace, and the fetched Debian packages.
//!
//! A missing prerequisite fails the test when `CI=true` and otherwise skips it loudly: the message
//! goes straight to the terminal, which cargo's output capture does not hide.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use depmod_initramfs::elf::{self, Linking};

/// The host's tools for booting.
#[derive(Debug)]
pub struct Host {
    /// The workspace root (holding `scripts/fetch`).
    pub workspace: PathBuf,
    /// Where images and logs are kept for inspection: `target/tmp/qemu-tests`.
    pub out: PathBuf,
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// A static busybox.
    pub busybox: PathBuf,
    /// Our depmod, static.
    pub depmod: PathBuf,
    /// With [`REFERENCE_VAR`]: kmod 34.2's root and a script running its depmod on the host.
    pub reference: Option<(PathBuf, PathBuf)>,
}

/// Environment variable that, set to 1, puts kmod's own depmod in the guests (and on the host)
/// in place of ours: the scenarios must then pass, which shows a failure with ours is ours.
pub const REFERENCE_VAR: &str = "DEPMOD_RS_QEMU_REFERENCE";

impl Host {
    /// The depmod to run on the host: ours, or kmod 34.2's in reference mode.
    pub fn host_depmod(&self) -> &Path {
        self.reference.as_ref().map_or(&self.depmod, |(_, script)| script)
    }
}

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();

/// The host's tools, or `None` after reporting why the test `name` cannot run. `tmpdir` is the
/// integration test's `CARGO_TARGET_TMPDIR`.
pub fn host(name: &str, tmpdir: &str) -> Option<&'static Host> {
    match HOST.get_or_init(|| find(Path::new(tmpdir))) {
        Ok(h) => Some(h),
        Err(why) => {
            unavailable(name, why);
            None
        }
    }
}

/// Runs `scripts/fetch ARGS` and returns the path it prints, or `None` after reporting why the
/// test `name` cannot run.
pub fn fetch(host: &Host, name: &str, args: &[&str]) -> Option<PathBuf> {
    let script = host.workspace.join("scripts/fetch");
    let out = Command::new(&script).args(args).output();
    match out {
        Ok(o) if o.status.success() => {
            let path = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Some(PathBuf::from(path))
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            let why = format!(
                "scripts/fetch {} failed ({}):\n{}",
                args.join(" "),
                o.status,
                tail.join("\n")
            );
            unavailable(name, &why);
            None
        }
        Err(e) => {
            unavailable(name, &format!("{}: {e}", script.display()));
            None
        }
    }
}

/// Fails the test under `CI=true`; otherwise tells the terminal it is skipped and why.
pub fn unavailable(name: &str, why: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{name}: cannot run: {why}");
    }
    // Written to the stream itself: cargo's capture only hides print!/eprint!.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {name}: {why}\n*** (qemu-tests/install-deps.sh installs what the boot \
         tests need; with CI=true this is a failure)\n"
    );
}

fn find(tmpdir: &Path) -> Result<Host, String> {
    let workspace =
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace")?.to_path_buf();
    let out = tmpdir.join("qemu-tests");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let qemu = in_path("qemu-system-x86_64")
        .ok_or("qemu-system-x86_64 is not installed (Debian: qemu-system-x86)")?;
    let busybox = PathBuf::from("/bin/busybox");
    match std::fs::read(&busybox).map(|d| elf::linking(&d)) {
        Ok(Ok(Linking::Static)) => {}
        _ => return Err("/bin/busybox is missing or not static (Debian: busybox-static)".into()),
    }
    let depmod = match std::env::var_os("DEPMOD_RS_DEPMOD") {
        Some(p) => PathBuf::from(p),
        None => build_depmod(&workspace)?,
    };
    let reference = if std::env::var(REFERENCE_VAR).is_ok_and(|v| v == "1") {
        Some(reference_depmod(&workspace, &out)?)
    } else {
        None
    };
    Ok(Host { workspace, out, qemu, busybox, depmod, reference })
}

/// Fetches kmod 34.2 and writes a script that runs its depmod through its own loader.
fn reference_depmod(workspace: &Path, out: &Path) -> Result<(PathBuf, PathBuf), String> {
    let o = Command::new(workspace.join("scripts/fetch"))
        .arg("kmod34")
        .output()
        .map_err(|e| format!("scripts/fetch kmod34: {e}"))?;
    if !o.status.success() {
        return Err(format!("scripts/fetch kmod34 failed: {}", String::from_utf8_lossy(&o.stderr)));
    }
    let root = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    let lib = root.join("usr/lib/x86_64-linux-gnu");
    let script = out.join("kmod34-depmod");
    let text = format!(
        "#!/bin/sh
exec '{}' --library-path '{}' --argv0 depmod '{}' \"$@\"\n",
        lib.join("ld-linux-x86-64.so.2").display(),
        lib.display(),
        root.join("usr/bin/kmod").display()
    );
    std::fs::write(&script, text).map_err(|e| format!("{}: {e}", script.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", script.display()))?;
    Ok((root, script))
}

fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Builds the static depmod (`x86_64-unknown-linux-musl`) with the cargo running the tests.
fn build_depmod(workspace: &Path) -> Result<PathBuf, String> {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let out = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "-p", "depmod"])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .output()
        .map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "cannot build a static depmod (rustup target add {TARGET}; apt-get install \
             musl-tools):\n{}",
            tail.join("\n")
        ));
    }
    Ok(target_dir.join(TARGET).join("release/depmod"))
}
