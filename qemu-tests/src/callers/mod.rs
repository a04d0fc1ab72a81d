//! depmod's real callers, unchanged, in a Debian 12 root: the kernel package's maintainer scripts
//! (`dpkg -i linux-image-*`), `mkinitramfs`, `dracut`, a build system's
//! `depmod -a -b ROOTFS -F System.map VERSION` on a staged root, DKMS installing and removing a
//! module, and the kernel package's purge (which must take ours' module cache with the indexes).
//!
//! The same steps run twice, each in a fresh copy of the root (the kernel package's install,
//! then a second `depmod -a VERSION` on the installed tree, then the images, then DKMS on the
//! installed tree, then the purge): once with kmod 34.2's depmod in the place of the system's
//! (`/sbin/depmod` diverted, a wrapper running kmod 34.2 through its own loader put there), once
//! with ours, installed from the Debian package `scripts/deb` builds. A [`Run`] keeps what each
//! caller said and every index it left, in the root and inside each image, for [`differences`];
//! its disk image and initramfs images are then booted (`tests/callers.rs`).
//!
//! Here: the steps of a run, the disk image, the boot. `in_place`: putting each depmod in the
//! system's place and taking ours away again. `compare`: what a run keeps, and how two differ.
//! `dkms`: the DKMS steps.

mod compare;
mod dkms;
mod in_place;

pub use compare::{CACHE, CACHE_PLACES, differences, normalise};
pub use dkms::{AFTER_INSTALL, AFTER_REMOVE, ALIAS, MODULE};
pub use in_place::{DRACUT_PATH, MKINITRAMFS_PATH, SYSTEM_DEPMOD};

use compare::{left_in, module_dirs, module_files, snapshot};
use in_place::{check_in_place, install_script, put_in_place, remove_package};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::debroot::{Ran, Root, run_host};
use crate::prereq::Host;
use crate::qemu::{self, Machine};

/// The marker program booted as the root's init.
pub const ROOT_MARKER: &str = include_str!("../../guest/root-marker.sh");
/// Where the marker is in the root (`init=`).
pub const MARKER_PATH: &str = "/depmod-rs-marker";
/// The modules the boots need from the initramfs; they must be modules, not built in.
pub const ROOT_MODULES: [&str; 3] = ["virtio_blk", "virtio_pci", "ext4"];

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
    /// The kernel package (`scripts/fetch deb amd64`), and what [`Kernel::of`] reads of it.
    pub kernel_deb: PathBuf,
    pub kernel: Kernel,
    /// Its headers and the packages they need by name, as `.deb` files in this directory
    /// (`scripts/fetch headers VERSION`), for DKMS.
    pub headers: PathBuf,
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
    /// What is left in the module directory once the kernel package is purged: the names,
    /// sorted, or `(no directory)`.
    pub after_purge: Vec<String>,
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

/// A `linux-image-VERSION` package's name and kernel release.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The package name (`linux-image-6.1.0-57-amd64`), which `dpkg --purge` takes.
    pub package: String,
    /// The kernel release (`6.1.0-57-amd64`): the module directory's name.
    pub version: String,
}

impl Kernel {
    /// Reads both from the `.deb` file `deb` (its `Package` field).
    pub fn of(deb: &Path) -> Result<Kernel, String> {
        let package = run_host(Command::new("dpkg-deb").arg("--field").arg(deb).arg("Package"))?;
        let package = package.trim().to_string();
        let version = package
            .strip_prefix("linux-image-")
            .map(|v| v.trim_end_matches("-unsigned").to_string())
            .ok_or_else(|| format!("{}: package {package} is no linux-image-*", deb.display()))?;
        Ok(Kernel { package, version })
    }
}

/// Makes the root, puts `depmod` in place, runs every caller, keeps what they left, and makes
/// the disk image.
pub fn run(depmod: Depmod, inputs: &Inputs) -> Result<Run, String> {
    let dir = inputs.out.join(depmod.name());
    let version = inputs.kernel.version.clone();
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
    // A second run on the installed tree, as an administrator or a package's trigger makes: ours
    // then starts its module cache there (the images made next must not take it; DKMS's runs at
    // the end use it).
    call(&root, &mut calls, &["depmod", "-a", &version])?;
    snapshot(&root.path(&moddir), "root after depmod -a", &mut indexes)?;
    step.lap("depmod -a", &mut log);
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
    // After the disk image: the boots are of the system as the kernel package left it.
    dkms::install_and_remove(&root, &inputs.headers, &version, &mut calls, &mut indexes)?;
    step.lap("DKMS install and remove", &mut log);
    // Purging the kernel package removes its indexes (its postrm: the named ones and
    // `modules.*.bin`), then the module directory if nothing else is left in it.
    call(&root, &mut calls, &["dpkg", "--purge", &inputs.kernel.package])?;
    let after_purge = left_in(&root.path(&moddir));
    step.lap("dpkg --purge", &mut log);
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
        after_purge,
        log,
        removal,
        install_script,
        kernel,
        images,
        disk,
    })
}

/// Runs one caller and records it.
fn call(root: &Root, calls: &mut Vec<Call>, argv: &[&str]) -> Result<(), String> {
    let mut ran = root.run(argv)?;
    ran.stdout = normalise(&ran.stdout);
    ran.stderr = normalise(&ran.stderr);
    calls.push(Call { command: argv.join(" "), ran });
    Ok(())
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
