//! depmod's real callers, unchanged, in a Debian 12 root: the kernel package's maintainer scripts
//! (`dpkg -i linux-image-*`), `mkinitramfs`, `dracut`, and a build system's
//! `depmod -a -b ROOTFS -F System.map VERSION` on a staged root.
//!
//! The same steps run twice, each in a fresh copy of the root: once with kmod 34.2's depmod in
//! the place of the system's (`/sbin/depmod` diverted, a wrapper running kmod 34.2 through its own
//! loader put there), once with ours, installed from the Debian package `scripts/deb` builds. A
//! [`Run`] keeps what each caller said and every index it left, in the root and inside each image,
//! for [`differences`]; its disk image and initramfs images are then booted (`tests/callers.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::debroot::{Ran, Root, run_host};
use crate::prereq::Host;
use crate::qemu::{self, Machine};

/// The marker program booted as the root's init.
pub const ROOT_MARKER: &str = include_str!("../guest/root-marker.sh");
/// Where the marker is in the root (`init=`).
pub const MARKER_PATH: &str = "/depmod-rs-marker";
/// The modules the boots need from the initramfs; they must be modules, not built in.
pub const ROOT_MODULES: [&str; 3] = ["virtio_blk", "virtio_pci", "ext4"];
/// The PATH mkinitramfs sets for itself.
pub const MKINITRAMFS_PATH: &str = "/usr/bin:/sbin:/bin";
/// The PATH dracut sets for itself (`DRACUT_PATH`, /sbin and /bin resolved through merged /usr).
pub const DRACUT_PATH: &str = "/usr/sbin:/usr/bin";
/// Where kmod 34.2's extracted root is copied in the kmod run.
const KMOD34_DIR: &str = "/opt/kmod-34.2";
/// The path of depmod in Debian 12's kmod package.
const SYSTEM_DEPMOD: &str = "/sbin/depmod";

/// Whose depmod the callers find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depmod {
    /// kmod 34.2's, in place of Debian 12's kmod 30.
    Kmod34,
    /// Ours, from the Debian package.
    Ours,
}

impl Depmod {
    /// A short name for directories and messages.
    pub fn name(self) -> &'static str {
        match self {
            Depmod::Kmod34 => "kmod34",
            Depmod::Ours => "ours",
        }
    }
}

/// What both runs start from.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The root's tarball (`scripts/fetch debroot`).
    pub debroot: PathBuf,
    /// The kernel package (`scripts/fetch deb amd64`).
    pub kernel_deb: PathBuf,
    /// kmod's own package (`scripts/fetch package kmod`), reinstalled over the diversion.
    pub kmod_deb: PathBuf,
    /// kmod 34.2, extracted (`scripts/fetch kmod34`).
    pub kmod34: PathBuf,
    /// Our Debian package (`scripts/deb`).
    pub our_deb: PathBuf,
    /// Our static depmod, for `scripts/install` in the root.
    pub static_depmod: PathBuf,
    /// The workspace (scripts/).
    pub workspace: PathBuf,
    /// Where the runs keep their roots, disks and images.
    pub out: PathBuf,
}

/// One caller's run.
#[derive(Clone, Debug)]
pub struct Call {
    /// The command, as typed in the root.
    pub command: String,
    /// Its exit status and messages, normalised by [`normalise`].
    pub ran: Ran,
}

/// Everything one run leaves for the comparison and the boots.
#[derive(Debug)]
pub struct Run {
    /// Whose depmod it was.
    pub depmod: Depmod,
    /// The kernel release.
    pub version: String,
    /// The callers, in order.
    pub calls: Vec<Call>,
    /// Every index file the callers left: `where: path` (the root's module directory, the staged
    /// root's, each image's) to its bytes.
    pub indexes: BTreeMap<String, Vec<u8>>,
    /// The module files in each image, relative to its module directory.
    pub image_modules: BTreeMap<String, Vec<String>>,
    /// What was checked about the depmod in place, and how long each step took.
    pub log: Vec<String>,
    /// Ours only: removing the package gave kmod's depmod back (what was checked, or why not).
    pub removal: Option<Result<Vec<String>, String>>,
    /// Ours only: `scripts/install --prefix ROOT/usr/local` and `--uninstall` in the root.
    pub install_script: Option<Result<Vec<String>, String>>,
    /// The kernel image.
    pub kernel: PathBuf,
    /// The images to boot: `mkinitramfs` and `dracut`.
    pub images: BTreeMap<&'static str, PathBuf>,
    /// The root as an ext4 image.
    pub disk: PathBuf,
}

/// The kernel release of a `linux-image-VERSION` package.
pub fn kernel_version(deb: &Path) -> Result<String, String> {
    let package = run_host(Command::new("dpkg-deb").arg("--field").arg(deb).arg("Package"))?;
    let package = package.trim();
    package
        .strip_prefix("linux-image-")
        .map(|v| v.trim_end_matches("-unsigned").to_string())
        .ok_or_else(|| format!("{}: package {package} is no linux-image-*", deb.display()))
}

/// Makes the root, puts `depmod` in place, runs every caller, keeps what they left, and makes
/// the disk image.
pub fn run(depmod: Depmod, inputs: &Inputs) -> Result<Run, String> {
    let dir = inputs.out.join(depmod.name());
    let version = kernel_version(&inputs.kernel_deb)?;
    let mut log = Vec::new();
    let mut step = Stopwatch::new(depmod);
    let root = Root::unpack(&inputs.debroot, &dir.join("root"))?;
    root.copy_in(&inputs.kernel_deb, "/tmp/linux-image.deb")?;
    root.copy_in(&inputs.kmod_deb, "/tmp/kmod.deb")?;
    let system_depmod = root.sh(&format!("readlink {SYSTEM_DEPMOD}; {SYSTEM_DEPMOD} -V"))?;
    put_in_place(&root, depmod, inputs, &mut log)?;
    // kmod's own package, reinstalled over the diversion: its depmod must go to the diverted
    // name and leave ours (or the wrapper) in place.
    root.ok(&["dpkg", "-i", "/tmp/kmod.deb"])?;
    check_in_place(&root, depmod, &mut log)?;
    // dracut's own default here is gzip -9, which takes 70 s of the run on this image; this is
    // the compressor and level of initramfs-tools' default (COMPRESS=zstd, level 9), 10 s. It
    // changes nothing that involves depmod.
    root.write("/etc/dracut.conf.d/depmod-rs-test.conf", b"compress=\"zstd -q -9\"\n", 0o644)?;
    step.lap("root and depmod in place", &mut log);

    let mut calls = Vec::new();
    let mut indexes = BTreeMap::new();
    let moddir = format!("/lib/modules/{version}");
    call(&root, &mut calls, &["dpkg", "-i", "/tmp/linux-image.deb"])?;
    snapshot(&root.path(&moddir), "root after dpkg -i", &mut indexes)?;
    step.lap("dpkg -i", &mut log);
    call(&root, &mut calls, &["mkinitramfs", "-o", "/boot/initrd.img-mkinitramfs", &version])?;
    step.lap("mkinitramfs", &mut log);
    call(&root, &mut calls, &["dracut", "/boot/initrd.img-dracut", &version])?;
    step.lap("dracut", &mut log);
    run_host(
        Command::new("dpkg-deb").arg("-x").arg(&inputs.kernel_deb).arg(root.path("/tmp/stage")),
    )?;
    let map = format!("/tmp/stage/boot/System.map-{version}");
    call(&root, &mut calls, &["depmod", "-a", "-b", "/tmp/stage", "-F", &map, &version])?;
    snapshot(&root.path(&format!("/tmp/stage{moddir}")), "staged root", &mut indexes)?;
    step.lap("depmod -a -b -F", &mut log);

    let mut image_modules = BTreeMap::new();
    for (name, image) in [
        ("dpkg -i", format!("/boot/initrd.img-{version}")),
        ("mkinitramfs", "/boot/initrd.img-mkinitramfs".to_string()),
        ("dracut", "/boot/initrd.img-dracut".to_string()),
    ] {
        let label = format!("image of {name}");
        let unpacked = root.path("/tmp/unpacked");
        root.ok(&["unmkinitramfs", &image, "/tmp/unpacked"])?;
        let dirs = module_dirs(&unpacked, &version);
        if dirs.is_empty() {
            return Err(format!("{image}: no lib/modules/{version} in the unpacked image"));
        }
        for d in dirs {
            let rel = d.strip_prefix(&unpacked).unwrap_or(&d).display().to_string();
            snapshot(&d, &format!("{label}: {rel}"), &mut indexes)?;
            image_modules.insert(format!("{label}: {rel}"), module_files(&d));
        }
        std::fs::remove_dir_all(&unpacked).map_err(|e| format!("{}: {e}", unpacked.display()))?;
    }
    step.lap("unpacking the images", &mut log);

    let (kernel, images, disk) = disk_image(&root, &dir, &version)?;
    step.lap("disk image", &mut log);
    let (removal, install_script) = match depmod {
        Depmod::Kmod34 => (None, None),
        Depmod::Ours => {
            (Some(remove_package(&root, &system_depmod)), Some(install_script(&root, inputs)))
        }
    };
    step.lap("package removal and scripts/install", &mut log);
    // The roots take about a gigabyte each; what the tests need is kept above.
    let _ = std::fs::remove_dir_all(&root.dir);
    Ok(Run {
        depmod,
        version,
        calls,
        indexes,
        image_modules,
        log,
        removal,
        install_script,
        kernel,
        images,
        disk,
    })
}

/// Puts kmod 34.2 (a wrapper at kmod's diverted path) or ours (the Debian package) in place.
fn put_in_place(
    root: &Root,
    depmod: Depmod,
    inputs: &Inputs,
    log: &mut Vec<String>,
) -> Result<(), String> {
    match depmod {
        Depmod::Kmod34 => {
            run_host(Command::new("cp").arg("-a").arg(&inputs.kmod34).arg(root.path(KMOD34_DIR)))?;
            root.ok(&[
                "dpkg-divert",
                "--local",
                "--rename",
                "--divert",
                &format!("{SYSTEM_DEPMOD}.kmod30"),
                "--add",
                SYSTEM_DEPMOD,
            ])?;
            let lib = format!("{KMOD34_DIR}/usr/lib/x86_64-linux-gnu");
            let wrapper = format!(
                "#!/bin/sh\n# kmod 34.2's depmod, run through its own loader and libraries.\n\
                 exec {lib}/ld-linux-x86-64.so.2 --library-path {lib} --argv0 depmod \
                 {KMOD34_DIR}/usr/bin/kmod \"$@\"\n"
            );
            // /sbin is a link to usr/sbin inside the root: write through the real directory.
            root.write(&format!("/usr{SYSTEM_DEPMOD}"), wrapper.as_bytes(), 0o755)?;
            log.push(format!(
                "kmod 34.2 in {KMOD34_DIR}, {SYSTEM_DEPMOD} diverted, a wrapper in its place"
            ));
        }
        Depmod::Ours => {
            root.copy_in(&inputs.our_deb, "/tmp/depmod-rs.deb")?;
            let out = root.ok(&["dpkg", "-i", "/tmp/depmod-rs.deb"])?;
            log.push(format!("dpkg -i {}:\n{}", inputs.our_deb.display(), out.trim_end()));
        }
    }
    Ok(())
}

/// `depmod -V` says kmod 34.2 in either run, and names depmod-rs only in ours: checked with
/// root's PATH and with those mkinitramfs and dracut set for themselves.
fn check_in_place(root: &Root, depmod: Depmod, log: &mut Vec<String>) -> Result<(), String> {
    for path in [crate::debroot::ROOT_PATH, MKINITRAMFS_PATH, DRACUT_PATH] {
        let ran = root.run_with_path(path, &["depmod", "-V"])?;
        let first = ran.stdout.lines().next().unwrap_or_default();
        let ours = ran.stdout.lines().any(|l| l.starts_with("depmod-rs "));
        if ran.code != Some(0) || first != "kmod version 34.2" || ours != (depmod == Depmod::Ours) {
            return Err(format!(
                "with PATH={path}, `depmod -V` is not {}'s: {}",
                depmod.name(),
                ran.describe()
            ));
        }
        log.push(format!("PATH={path}: depmod -V: {}", ran.stdout.trim().replace('\n', " | ")));
    }
    Ok(())
}

/// Runs one caller and records it.
fn call(root: &Root, calls: &mut Vec<Call>, argv: &[&str]) -> Result<(), String> {
    let mut ran = root.run(argv)?;
    ran.stdout = normalise(&ran.stdout);
    ran.stderr = normalise(&ran.stderr);
    calls.push(Call { command: argv.join(" "), ran });
    Ok(())
}

/// What in a caller's messages is inherently variable between two runs, replaced by a fixed
/// text; nothing else is touched:
/// - dpkg's count of installed files, which in our run includes the depmod package's own files
///   (the kmod 34.2 wrapper is no package);
/// - the random part of the temporary directories mkinitramfs and dracut make with `mktemp`
///   (`/var/tmp/dracut.XXXXXX`, `/var/tmp/mkinitramfs_XXXXXX`);
/// - the time dracut's hardlink step took (`dracut: Duration: 0.005239 seconds`).
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = if line.starts_with("(Reading database ... ")
            && line.ends_with(" files and directories currently installed.)")
        {
            "(Reading database ... N files and directories currently installed.)".to_string()
        } else if line.starts_with("dracut: Duration:") && line.ends_with(" seconds") {
            "dracut: Duration: N seconds".to_string()
        } else {
            ["/var/tmp/dracut.", "/var/tmp/mkinitramfs_"]
                .iter()
                .fold(line.to_string(), |l, p| mask_after(&l, p))
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `line` with the six characters after each `prefix` (mktemp's X's) replaced by `XXXXXX`.
fn mask_after(line: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let (head, tail) = rest.split_at(at + prefix.len());
        out.push_str(head);
        let n = tail.chars().take(6).take_while(char::is_ascii_alphanumeric).count();
        out.push_str(&"X".repeat(n));
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Keeps every `modules.*` file of `dir` under `label`.
fn snapshot(dir: &Path, label: &str, into: &mut BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut n = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") && entry.file_type().is_ok_and(|t| t.is_file()) {
            let bytes = std::fs::read(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            into.insert(format!("{label}: {name}"), bytes);
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!("{}: no modules.* file ({label})", dir.display()));
    }
    Ok(())
}

/// The `lib/modules/VERSION` directories under an unpacked image (symbolic links not followed:
/// `lib` is often one to `usr/lib`).
fn module_dirs(top: &Path, version: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name() == version && d.file_name().is_some_and(|n| n == "modules") {
                found.push(p);
            } else {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The module files under `dir`, relative to it, sorted.
fn module_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(".ko") {
                files.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// Installs the marker, makes the ext4 image of the root, and copies the kernel and the images
/// to boot out of it.
#[allow(clippy::type_complexity)]
fn disk_image(
    root: &Root,
    dir: &Path,
    version: &str,
) -> Result<(PathBuf, BTreeMap<&'static str, PathBuf>, PathBuf), String> {
    for p in ["/tmp/stage", "/tmp/linux-image.deb", "/tmp/kmod.deb", "/tmp/depmod-rs.deb"] {
        let path = root.path(p);
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
    std::fs::create_dir_all(root.path("/depmod-rs-test")).map_err(|e| e.to_string())?;
    root.write("/depmod-rs-test/lib.sh", crate::scenario::LIB.as_bytes(), 0o644)?;
    root.write(MARKER_PATH, ROOT_MARKER.as_bytes(), 0o755)?;
    let used = run_host(Command::new("du").arg("-s").arg("-m").arg("-x").arg(&root.dir))?;
    let used_mib: u64 = used.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(2048);
    let disk = dir.join("root.ext4");
    let _ = std::fs::remove_file(&disk);
    run_host(
        Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-d"])
            .arg(&root.dir)
            .arg(&disk)
            .arg(format!("{}M", used_mib + used_mib / 4 + 128)),
    )?;
    let kernel = dir.join(format!("vmlinuz-{version}"));
    copy(&root.path(&format!("/boot/vmlinuz-{version}")), &kernel)?;
    let mut images = BTreeMap::new();
    for name in ["mkinitramfs", "dracut"] {
        let to = dir.join(format!("initrd.img-{name}"));
        copy(&root.path(&format!("/boot/initrd.img-{name}")), &to)?;
        images.insert(name, to);
    }
    Ok((kernel, images, disk))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
}

/// `dpkg -r depmod-rs`: kmod's depmod is back where it was, as it was (`system` is what
/// `readlink /sbin/depmod; /sbin/depmod -V` said before the package), with no diversion left.
fn remove_package(root: &Root, system: &str) -> Result<Vec<String>, String> {
    let man = "/usr/share/man/man8/depmod.8.gz";
    let ours_man = root.sh(&format!("gzip -dc {man}"))?;
    if !ours_man.starts_with(".\\\" depmod-rs manual page") {
        return Err(format!("with the package installed, {man} is not depmod-rs's"));
    }
    let out = root.ok(&["dpkg", "-r", "depmod-rs"])?;
    let mut done = vec![format!("dpkg -r depmod-rs:\n{}", out.trim_end())];
    let now = root.sh(&format!("readlink {SYSTEM_DEPMOD}; {SYSTEM_DEPMOD} -V"))?;
    if now != system {
        return Err(format!("after dpkg -r, {SYSTEM_DEPMOD} is\n{now}\nnot, as before,\n{system}"));
    }
    done.push(format!("{SYSTEM_DEPMOD} is kmod's again: {}", now.trim().replace('\n', " | ")));
    let diversions = root.ok(&["dpkg-divert", "--list"])?;
    if diversions.contains("depmod-rs") {
        return Err(format!("after dpkg -r, diversions are left:\n{diversions}"));
    }
    let man_now = root.sh(&format!("gzip -dc {man}"))?;
    if man_now.contains("depmod-rs") || !man_now.contains("depmod") {
        return Err(format!("after dpkg -r, {man} is not kmod's"));
    }
    done.push(format!("no diversion left, {man} is kmod's again"));
    Ok(done)
}

/// `scripts/install --prefix ROOT/usr/local`: root's PATH finds it first; `--uninstall`: kmod's
/// again.
fn install_script(root: &Root, inputs: &Inputs) -> Result<Vec<String>, String> {
    let script = inputs.workspace.join("scripts/install");
    let prefix = root.path("/usr/local");
    let which = "command -v depmod; depmod -V | tail -n 1";
    run_host(
        Command::new(&script)
            .arg("--prefix")
            .arg(&prefix)
            .arg("--binary")
            .arg(&inputs.static_depmod),
    )?;
    let found = root.sh(which)?;
    if !found.starts_with("/usr/local/sbin/depmod\ndepmod-rs ") {
        return Err(format!(
            "after scripts/install --prefix {}, root's PATH finds:\n{found}",
            prefix.display()
        ));
    }
    run_host(Command::new(&script).arg("--uninstall").arg("--prefix").arg(&prefix))?;
    let back = root.sh(which)?;
    if back.starts_with("/usr/local/") || back.contains("depmod-rs") {
        return Err(format!("after scripts/install --uninstall, root's PATH finds:\n{back}"));
    }
    Ok(vec![
        format!(
            "scripts/install --prefix {}: {}",
            prefix.display(),
            found.trim().replace('\n', " | ")
        ),
        format!("scripts/install --uninstall: {}", back.trim().replace('\n', " | ")),
    ])
}

/// Every way run `b` differs from run `a`: a caller's exit status or messages, an index missing
/// from one or with other bytes, an image with other module files. Differing indexes are written
/// to `out/differences/` for inspection.
pub fn differences(a: &Run, b: &Run, out: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let (an, bn) = (a.depmod.name(), b.depmod.name());
    if a.calls.len() != b.calls.len() {
        diffs.push(format!("{an} ran {} callers, {bn} {}", a.calls.len(), b.calls.len()));
    }
    for (x, y) in a.calls.iter().zip(&b.calls) {
        if x.ran != y.ran {
            diffs.push(format!(
                "`{}`:\n=== {an}: {}\n=== {bn}: {}",
                x.command,
                x.ran.describe(),
                y.ran.describe()
            ));
        }
    }
    let dir = out.join("differences");
    for key in a.indexes.keys().chain(b.indexes.keys()) {
        match (a.indexes.get(key), b.indexes.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let file = key.replace([' ', '/', ':'], "_");
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join(format!("{file}.{an}")), x);
                let _ = std::fs::write(dir.join(format!("{file}.{bn}")), y);
                diffs.push(format!("{key}: different bytes (both in {})", dir.display()));
            }
            (Some(_), None) => diffs.push(format!("{key}: only in {an}'s run")),
            (None, _) => diffs.push(format!("{key}: only in {bn}'s run")),
        }
    }
    diffs.dedup();
    if a.image_modules != b.image_modules {
        for (key, x) in &a.image_modules {
            let y = b.image_modules.get(key);
            if y != Some(x) {
                let n = y.map_or(0, Vec::len);
                diffs.push(format!("{key}: {} module files with {an}, {n} with {bn}", x.len()));
            }
        }
    }
    diffs
}

/// Boots `run`'s image `image` (`mkinitramfs` or `dracut`) with its disk as the root.
pub fn boot(host: &Host, run: &Run, image: &str, dir: &Path) -> qemu::Outcome {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::create_dir_all(dir);
    let timeout = std::env::var(qemu::TIMEOUT_VAR).ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let machine = Machine {
        qemu: host.qemu.clone(),
        kernel: run.kernel.clone(),
        initrd: run.images.get(image).cloned().unwrap_or_default(),
        memory_mib: 1024,
        cpus: 1,
        // snapshot=on: the guest's writes go to a temporary overlay, so every boot starts from
        // the same disk.
        extra: vec![
            "-drive".into(),
            format!("file={},if=none,id=root,format=raw,snapshot=on", run.disk.display()),
            "-device".into(),
            "virtio-blk-pci,drive=root".into(),
        ],
        timeout: Duration::from_secs(timeout),
    };
    machine.boot_append(dir, &format!(" root=/dev/vda ro init={MARKER_PATH}"))
}

/// Times the steps of a run and reports each on the terminal.
struct Stopwatch {
    depmod: Depmod,
    last: Instant,
}

impl Stopwatch {
    fn new(depmod: Depmod) -> Self {
        Stopwatch { depmod, last: Instant::now() }
    }

    fn lap(&mut self, what: &str, log: &mut Vec<String>) {
        let line = format!(
            "callers ({}): {what}: {:.1} s",
            self.depmod.name(),
            self.last.elapsed().as_secs_f64()
        );
        crate::scenario::report(&line);
        log.push(line);
        self.last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_varies_is_normalised() {
        let dpkg = "Selecting previously unselected package x.\n(Reading database ... 8994 files \
                    and directories currently installed.)\nUnpacking x (1) ...\n";
        assert_eq!(
            normalise(dpkg),
            "Selecting previously unselected package x.\n(Reading database ... N files and \
             directories currently installed.)\nUnpacking x (1) ...\n"
        );
        let dracut = "dracut: FAILED: /usr/lib/dracut/dracut-install -D /var/tmp/dracut.hLpgyJ/\
                      initramfs -a umount\ndracut: Duration:                 0.005239 seconds\n\
                      dracut: Files:                    889\n";
        assert_eq!(
            normalise(dracut),
            "dracut: FAILED: /usr/lib/dracut/dracut-install -D /var/tmp/dracut.XXXXXX/initramfs \
             -a umount\ndracut: Duration: N seconds\ndracut: Files:                    889\n"
        );
        let kept =
            "W: (Reading database ... 5 other things)\nE: /var/tmp/mkinitramfs_ab/x: 7 seconds\n";
        assert_eq!(
            normalise(kept),
            "W: (Reading database ... 5 other things)\nE: /var/tmp/mkinitramfs_XX/x: 7 seconds\n"
        );
    }
}
