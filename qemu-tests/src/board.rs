//! Boards: a Debian kernel of another architecture booted under qemu-system (TCG) with 128 MiB,
//! an initramfs holding that architecture's static depmod (built by `scripts/cross`), Debian's
//! busybox-static and kmod for it, and the architecture's whole module tree as `.ko.xz` on a
//! virtio disk, as a board keeps its modules in flash (the trees are 35 to 100 MB as `.ko.xz`:
//! more than an initramfs can hold in 128 MiB). The guest script is `guest/boards.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use depmod_initramfs::{Arch, Compression, Indexes, Modprobe, Modules, Spec, Tree, assemble};

use crate::prereq::{self, Host};
use crate::qemu::{self, Machine};
use crate::scenario::{self, LIB, Params};

/// One board: an architecture and where its pieces come from.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// The machine.
    pub arch: Arch,
    /// The Rust target of its static depmod (`scripts/cross TARGET`).
    pub target: &'static str,
    /// Debian's name of the architecture (`scripts/fetch arch-* ARCH`).
    pub debian: &'static str,
    /// The kernel flavour: `linux-image-FLAVOUR`.
    pub flavour: &'static str,
    /// Whether Debian ships its modules as `.ko.xz` already (else the tree is recompressed).
    pub ships_xz: bool,
    /// Guest memory in MiB: [`SMALL_MIB`], unless the kernel leaves too little of it.
    pub memory_mib: u32,
    /// The module loaded by name, with its dependencies, from the whole tree.
    pub deps_module: &'static str,
}

/// Debian 12's arm64 kernel, the aarch64 musl build.
pub const AARCH64: Board = Board {
    arch: Arch::Aarch64,
    target: "aarch64-unknown-linux-musl",
    debian: "arm64",
    flavour: "arm64",
    ships_xz: false,
    memory_mib: SMALL_MIB,
    deps_module: DEPS_MODULE,
};
/// Debian 12's armmp kernel (armhf), the armv7 static glibc build.
pub const ARMV7: Board = Board {
    arch: Arch::Arm,
    target: "armv7-unknown-linux-gnueabihf",
    debian: "armhf",
    flavour: "armmp",
    ships_xz: false,
    memory_mib: SMALL_MIB,
    deps_module: DEPS_MODULE,
};
/// Debian 13's riscv64 kernel (`.ko.xz`), the riscv64 static glibc build. With 128 MiB this
/// kernel keeps 78 MiB for itself (a 32 MiB sparse memory map, a 30 MiB image) and leaves 20-26
/// MiB available when the guest indexes the tree. riscv64 modules keep their local symbols:
/// amdgpu's symbol table is 42 MB of its 60, and a dozen modules decompress to 8-16 MiB. depmod
/// scales the sizes it decodes whole to the memory available (`bin/src/decompress/limits.rs`:
/// modules over 2 MiB are decoded in passes here) and scans local symbols rather than keeping
/// them; its peak RSS is then 19-21 MB. Loading btrfs (15.6 MB decompressed) is more than this
/// kernel can do in 128 MiB, after depmod has exited and whoever wrote the indexes (its
/// dependencies load, then `execmem: unable to allocate memory` and the OOM killer ends
/// modprobe, exit 137): raid456, with nine dependencies, is loaded instead.
pub const RISCV64: Board = Board {
    arch: Arch::Riscv64,
    target: "riscv64gc-unknown-linux-gnu",
    debian: "riscv64",
    flavour: "riscv64",
    ships_xz: true,
    memory_mib: SMALL_MIB,
    deps_module: "raid456",
};
/// Debian 12's s390x kernel (big-endian), the s390x static glibc build.
pub const S390X: Board = Board {
    arch: Arch::S390x,
    target: "s390x-unknown-linux-gnu",
    debian: "s390x",
    flavour: "s390x",
    ships_xz: false,
    memory_mib: SMALL_MIB,
    deps_module: DEPS_MODULE,
};

/// Guest memory: a small board's.
pub const SMALL_MIB: u32 = 128;
/// The modules the initramfs carries to reach the disk (with what they need).
const BOOT_MODULES: [&str; 2] = ["virtio_blk", "ext4"];
/// The module loaded by name, with its dependencies, from the whole tree (unless the board
/// names another).
const DEPS_MODULE: &str = "btrfs";

/// Everything a board's boot needs from the host.
struct Parts {
    qemu: PathBuf,
    depmod: PathBuf,
    busybox: PathBuf,
    kmod: PathBuf,
    /// The `.ko.xz` tree (root holding lib/modules).
    tree: PathBuf,
    kernel: PathBuf,
    mke2fs: PathBuf,
}

impl Board {
    /// Fetches and builds the parts, or reports why the test `name` cannot run.
    fn parts(&self, host: &Host, name: &str) -> Option<Parts> {
        let qemu = self.arch.qemu_system();
        let Some(qemu) = in_path(&qemu) else {
            prereq::unavailable(
                name,
                &format!("{qemu} is not installed (Debian: {})", qemu_package(self.arch)),
            );
            return None;
        };
        // The board's kmod is asked what it links, and its version, under qemu-user.
        if let Err(e) = self.arch.emulator() {
            prereq::unavailable(name, &e.to_string());
            return None;
        }
        let Some(mke2fs) = in_path("mke2fs") else {
            prereq::unavailable(name, "mke2fs is not installed (Debian: e2fsprogs)");
            return None;
        };
        let depmod = cross_build(host, name, self.target)?;
        let busybox = prereq::fetch(host, name, &["arch-busybox", self.debian])?;
        let kmod = prereq::fetch(host, name, &["arch-kmod", self.debian])?;
        let plain = prereq::fetch(host, name, &["arch-tree", self.debian, self.flavour])?;
        let tree = if self.ships_xz {
            plain.clone()
        } else {
            prereq::fetch(host, name, &["arch-recompressed", self.debian, self.flavour, "xz"])?
        };
        let kernel = Tree::new(&plain, None)
            .ok()
            .and_then(|t| t.kernel())
            .unwrap_or_else(|| panic!("{name}: no kernel in {}", plain.display()));
        Some(Parts { qemu, depmod, busybox, kmod, tree, kernel, mke2fs })
    }

    /// Builds the image and the disk, boots, and checks the guest's verdict and that its
    /// indexes of the whole tree are those the host's depmod writes for the same files.
    pub fn run(&self, name: &str, tmpdir: &str) {
        let Some(host) = prereq::host(name, tmpdir) else {
            return;
        };
        let Some(parts) = self.parts(host, name) else {
            return;
        };
        let dir = host.out.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("output directory");
        let start = Instant::now();
        let tree = Tree::new(&parts.tree, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The host's own depmod gives the image's dependencies (the board's would run emulated).
        let ix = Indexes::compute(&tree, host.host_depmod())
            .unwrap_or_else(|e| panic!("{name}: could not build the image: {e}"));
        let mut boot: Vec<String> = BOOT_MODULES.map(String::from).to_vec();
        if self.arch.has_pci() {
            boot.push("virtio_pci".into());
        }
        let spec = Spec {
            tree: tree.clone(),
            depmod: parts.depmod.clone(),
            busybox: parts.busybox.clone(),
            modprobe: Modprobe::Kmod(parts.kmod.clone()),
            modules: Modules::Named(boot),
            compress: Compression::Keep,
            init: Some(scenario::BOARDS.as_bytes().to_vec()),
            files: Vec::new(),
        };
        let mut built = assemble(&spec, Some(&ix))
            .unwrap_or_else(|e| panic!("{name}: could not build the image: {e}"));
        let (softdep_module, softdep_pre) = scenario::pick_softdep(&ix).unwrap_or_default();
        // "kmod version 30 (/bin/kmod from ROOT)": what `modprobe --version` must say.
        let expect = built.modprobe.split(" (").next().unwrap_or_default().to_string();
        let params = Params::default()
            .set("EXPECT_MODPROBE", &expect)
            .set("INDEXES", scenario::KMOD_INDEXES)
            .set("MODULE_EXT", ".ko.xz")
            .set("PCI", if self.arch.has_pci() { "1" } else { "0" })
            .set("SOFTDEP_MODULE", softdep_module)
            .set("SOFTDEP_PRE", softdep_pre)
            .set("DEPS_MODULE", self.deps_module)
            .set("VIRTIO_DEVICES", qemu::VIRTIO_DEVICES.to_string());
        built.image.add_bytes("test/lib.sh", LIB.as_bytes().to_vec(), 0o644);
        built.image.add_bytes("test/params", params.render().into_bytes(), 0o644);
        let initrd = dir.join("initramfs.cpio.gz");
        let sizes = built.image.write_cpio_gz(&initrd).unwrap_or_else(|e| panic!("{name}: {e}"));
        let disk = dir.join("modules.ext2");
        make_disk(&parts.mke2fs, &tree.dir(), &disk).unwrap_or_else(|e| panic!("{name}: {e}"));
        let image_time = start.elapsed();

        let timeout =
            std::env::var(qemu::TIMEOUT_VAR).ok().and_then(|s| s.parse().ok()).unwrap_or(900);
        let machine = Machine {
            qemu: parts.qemu.clone(),
            kernel: parts.kernel.clone(),
            initrd,
            memory_mib: self.memory_mib,
            cpus: 2,
            extra: Machine::virtio_devices(self.arch, &disk),
            timeout: Duration::from_secs(timeout),
        };
        let outcome = machine.boot(&dir);
        let peak = outcome.values("PEAK_RSS_KB").next().unwrap_or("not reported").to_string();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        scenario::report(&format!(
            "{name}: {} {} ({}), {} modules as .ko.xz on the disk, depmod {} ({} bytes), {}; \
             image {:.1} MiB unpacked / {:.1} MiB gzip'd and disk built in {:.1} s, boot {:.1} s \
             with {} MiB, depmod's peak RSS {peak} KiB: {}",
            self.arch.name(),
            tree.version,
            parts.kernel.file_name().unwrap_or_default().to_string_lossy(),
            tree.all_modules().map_or(0, |m| m.len()),
            self.target,
            std::fs::metadata(&parts.depmod).map(|m| m.len()).unwrap_or(0),
            built.modprobe,
            mib(sizes.unpacked),
            mib(sizes.compressed),
            image_time.as_secs_f64(),
            outcome.elapsed.as_secs_f64(),
            self.memory_mib,
            outcome.verdict.summary()
        ));
        outcome.require_pass(name);

        // The guest printed every modules.* file's sum; the tree's own files are inputs.
        let inputs: Vec<String> = std::fs::read_dir(tree.dir())
            .expect("module dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("modules."))
            .collect();
        let mut guest: Vec<(String, String)> = outcome
            .values("SUM ")
            .filter_map(|l| {
                let (sum, file) = l.split_once(char::is_whitespace)?;
                Some((file.trim().to_string(), sum.to_string()))
            })
            .filter(|(f, _)| !inputs.contains(f))
            .collect();
        guest.sort();
        let out = dir.join("host");
        let host_sums = scenario::host_sums_into(host, &parts.tree, &out, &tree.version);
        assert!(!guest.is_empty(), "{name}: the guest printed no checksum");
        assert_eq!(
            guest,
            host_sums,
            "{name}: the guest's indexes (left) differ from the host's over {} (right)",
            parts.tree.display()
        );
    }
}

/// The Debian package holding `qemu-system-NAME`.
fn qemu_package(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "qemu-system-x86",
        Arch::Aarch64 | Arch::Arm => "qemu-system-arm",
        Arch::Riscv64 | Arch::S390x => "qemu-system-misc",
    }
}

/// `scripts/cross TARGET` with the cargo running the tests: the static binary's path.
fn cross_build(host: &Host, name: &str, target: &str) -> Option<PathBuf> {
    let mut cmd = Command::new(host.workspace.join("scripts/cross"));
    cmd.arg(target);
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        cmd.env("CARGO_TARGET_DIR", host.workspace.join("target"));
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            String::from_utf8_lossy(&o.stdout).lines().last().map(PathBuf::from)
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            prereq::unavailable(
                name,
                &format!("scripts/cross {target} failed:\n{}", tail.join("\n")),
            );
            None
        }
        Err(e) => {
            prereq::unavailable(name, &format!("scripts/cross: {e}"));
            None
        }
    }
}

/// `program` in `PATH`, or in the system directories a normal user's `PATH` may lack.
fn in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// An ext2 file system image holding `moddir` (`lib/modules/VERSION`) as `VERSION/`, with room for
/// the indexes (`mke2fs -d`: no root, no mount).
fn make_disk(mke2fs: &Path, moddir: &Path, disk: &Path) -> Result<(), String> {
    let (mut bytes, mut inodes) = (0u64, 0u64);
    du(moddir, &mut bytes, &mut inodes).map_err(|e| format!("{}: {e}", moddir.display()))?;
    // Every file rounded up to 4 KiB blocks (du counts so), the indexes (a few MiB), slack.
    let kib = (bytes / 1024) * 5 / 4 + 64 * 1024;
    // -d copies a directory's contents: lib/modules, which must hold this version alone.
    let src = moddir.parent().ok_or("no lib/modules")?;
    let others = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?.count();
    if others != 1 {
        return Err(format!(
            "{} holds {others} entries, not just {}",
            src.display(),
            moddir.display()
        ));
    }
    let out = Command::new(mke2fs)
        .args(["-q", "-F", "-t", "ext2", "-b", "4096", "-m", "0", "-L", "modules"])
        .arg("-N")
        .arg((inodes + 1024).to_string())
        .arg("-d")
        .arg(src)
        .arg(disk)
        .arg(format!("{kib}k"))
        .output()
        .map_err(|e| format!("{}: {e}", mke2fs.display()))?;
    if !out.status.success() {
        return Err(format!(
            "mke2fs -d {}: {}: {}",
            src.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Adds the size of every file under `dir`, in 4 KiB blocks, and the number of entries.
fn du(dir: &Path, bytes: &mut u64, inodes: &mut u64) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        *inodes += 1;
        let meta = entry.metadata()?;
        *bytes += meta.len().next_multiple_of(4096);
        if meta.is_dir() {
            du(&entry.path(), bytes, inodes)?;
        }
    }
    Ok(())
}
