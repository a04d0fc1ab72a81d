//! One scenario: an image built with `depmod-initramfs`, a guest script with its parameters, one
//! boot.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use depmod_initramfs::{Compression, Indexes, Modprobe, Modules, Spec, Tree, assemble};

use crate::prereq::Host;
use crate::qemu::{self, Machine, Outcome};

/// The guest library every script sources as `/test/lib.sh`.
pub const LIB: &str = include_str!("../guest/lib.sh");
/// Scenarios 1-4: coldplug, dependencies, softdep, removal.
pub const COLDPLUG: &str = include_str!("../guest/coldplug.sh");
/// Scenario 5: checksums of the indexes.
pub const DETERMINISM: &str = include_str!("../guest/determinism.sh");
/// Scenario 6: a whole tree on a small machine.
pub const SMALL_BOARD: &str = include_str!("../guest/small-board.sh");
/// The boards: another architecture, its whole tree on a disk, 128 MiB.
pub const BOARDS: &str = include_str!("../guest/boards.sh");

/// Every index kmod 34.2's depmod writes: what its modprobe may read.
pub const KMOD_INDEXES: &str = "modules.dep modules.dep.bin modules.alias modules.alias.bin \
    modules.softdep modules.symbols modules.symbols.bin modules.builtin.bin \
    modules.builtin.alias.bin modules.devname";
/// The text indexes busybox's modprobe reads.
pub const BUSYBOX_INDEXES: &str = "modules.dep modules.alias modules.symbols";

/// The modules behind the devices of [`Machine::devices`].
pub const COLDPLUG_MODULES: [&str; 5] =
    ["e1000", "virtio_pci", "virtio_net", "virtio_blk", "virtio_rng"];

/// Shell variable assignments, written to `/test/params`.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Adds `name=value`.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.push((name.to_string(), value.into()));
        self
    }

    /// The `/test/params` file.
    pub fn render(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''"))).collect()
    }
}

/// Everything one boot is made of.
pub struct Scenario<'a> {
    /// Names the output directory and the messages.
    pub name: &'a str,
    /// The tools.
    pub host: &'a Host,
    /// The root holding lib/modules (and usually boot).
    pub root: PathBuf,
    /// The kernel image, when `root` has none (a recompressed copy of a tree holds only lib/).
    pub kernel: Option<PathBuf>,
    /// The modprobe under test.
    pub modprobe: Modprobe,
    /// The modules in the image.
    pub modules: Modules,
    /// Their compression.
    pub compress: Compression,
    /// Indexes already computed for the tree, if any.
    pub indexes: Option<&'a Indexes>,
    /// The `/init` script.
    pub script: &'static str,
    /// Its parameters.
    pub params: Params,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// Whether to attach [`Machine::devices`].
    pub devices: bool,
    /// Whether to also write the image's files to a directory (see [`Run::stage`]).
    pub stage: bool,
}

/// What a run produced besides the boot's outcome.
pub struct Run {
    /// The boot.
    pub outcome: Outcome,
    /// The image's files, written out for host-side comparisons when asked for.
    pub stage: Option<PathBuf>,
    /// The kernel release.
    pub version: String,
}

impl Scenario<'_> {
    /// Builds the image (panicking with the reason if it cannot), boots it and reports times on
    /// the terminal.
    pub fn run(self) -> Run {
        let dir = self.host.out.join(self.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("output directory");
        let start = Instant::now();
        let tree = Tree::new(&self.root, None).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let kernel = self
            .kernel
            .clone()
            .or_else(|| tree.kernel())
            .unwrap_or_else(|| panic!("{}: no kernel in {}", self.name, self.root.display()));
        let spec = Spec {
            tree: tree.clone(),
            depmod: self.host.depmod.clone(),
            busybox: self.host.busybox.clone(),
            modprobe: self.modprobe.clone(),
            modules: self.modules.clone(),
            compress: self.compress,
            init: Some(self.script.as_bytes().to_vec()),
            files: Vec::new(),
        };
        let mut built = assemble(&spec, self.indexes)
            .unwrap_or_else(|e| panic!("{}: could not build the image: {e}", self.name));
        let mut what = built.modprobe.clone();
        if let Some((kmod34, _)) = &self.host.reference {
            // kmod dispatches on its name: /sbin/depmod -> kmod is kmod's depmod. Busybox
            // scenarios get kmod 34.2 beside busybox, whose applets keep /sbin/modprobe.
            let kmod = match &built.kmod {
                Some(k) => k.clone(),
                None => {
                    let k = depmod_initramfs::kmod::install(&mut built.image, kmod34)
                        .unwrap_or_else(|e| panic!("{}: {e}", self.name));
                    depmod_initramfs::assemble::link_busybox_tools(&mut built.image);
                    k.binary
                }
            };
            built.image.add_symlink("sbin/depmod", &kmod);
            what = format!("{what}; REFERENCE: kmod's depmod {kmod} in place of ours");
        }
        let params = self.params.clone().set("VIRTIO_DEVICES", qemu::VIRTIO_DEVICES.to_string());
        built.image.add_bytes("test/lib.sh", LIB.as_bytes().to_vec(), 0o644);
        built.image.add_bytes("test/params", params.render().into_bytes(), 0o644);
        let initrd = dir.join("initramfs.cpio.gz");
        let sizes =
            built.image.write_cpio_gz(&initrd).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let stage = self.stage.then(|| dir.join("stage"));
        if let Some(stage) = &stage {
            built.image.write_dir(stage).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        }
        let image_time = start.elapsed();

        let mut extra = Vec::new();
        if self.devices {
            let disk = dir.join("disk.img");
            std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk image");
            extra = Machine::devices(&disk);
        }
        let timeout =
            std::env::var(qemu::TIMEOUT_VAR).ok().and_then(|s| s.parse().ok()).unwrap_or(300);
        let machine = Machine {
            qemu: self.host.qemu.clone(),
            kernel,
            initrd,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            extra,
            timeout: Duration::from_secs(timeout),
        };
        let mut outcome = machine.boot(&dir);
        if let qemu::Verdict::NoBoot(why) = &mut outcome.verdict {
            why.push_str(&format!(
                " (initramfs {} bytes unpacked, {} bytes gzip'd; guest memory {} MiB)",
                sizes.unpacked, sizes.compressed, self.memory_mib
            ));
        }
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        report(&format!(
            "{}: {} modules of {} ({}), image {:.1} MiB unpacked / {:.1} MiB gzip'd built in {:.1} s, \
             boot {:.1} s with {} MiB: {}",
            self.name,
            built.modules.len(),
            tree.version,
            what,
            mib(sizes.unpacked),
            mib(sizes.compressed),
            image_time.as_secs_f64(),
            outcome.elapsed.as_secs_f64(),
            self.memory_mib,
            outcome.verdict.summary()
        ));
        Run { outcome, stage, version: tree.version }
    }
}

/// A line on the terminal, past cargo's capture: timings are worth seeing on success too.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "qemu-tests: {line}");
}

/// `softdep M pre: X` pairs whose modules load without their hardware, in order of preference.
/// Many drivers fail their module init without a device (6.12's first candidate, gpio_f7188x,
/// probes a Super I/O chip in module_init), which would fail the check for no fault of the
/// indexes; crypto templates, netfilter targets and PCI drivers with no device load anywhere.
pub const SOFTDEP_PAIRS: [(&str, &str); 7] = [
    ("lrw", "ecb"),
    ("xts", "ecb"),
    ("ohci_pci", "ehci_pci"),
    ("uhci_hcd", "ehci_pci"),
    ("xt_LOG", "nf_log_syslog"),
    ("xt_TRACE", "nf_log_syslog"),
    ("r8169", "realtek"),
];

/// A softdep to test: the first of [`SOFTDEP_PAIRS`] that is the first `softdep` line of its
/// module in the tree (kmod honours no other), whose X is a loadable module and not also a hard
/// dependency of M (so that only the softdep can load it).
pub fn pick_softdep(ix: &Indexes) -> Option<(String, String)> {
    SOFTDEP_PAIRS.iter().find_map(|&(m, x)| {
        let first = ix.softdeps().iter().find(|sd| sd.module == m)?;
        let (_, deps) = ix.module(m)?;
        let usable = first.pre.iter().any(|p| p.replace('-', "_") == x)
            && ix.module(x).is_some()
            && !deps.iter().any(|d| d == x);
        usable.then(|| (m.to_string(), x.to_string()))
    })
}

/// Runs our depmod (kmod's in reference mode) on the host over `stage` and returns `(file, sha256)` of every index it wrote.
pub fn host_sums(host: &Host, stage: &Path, version: &str) -> Vec<(String, String)> {
    host_sums_into(host, stage, stage, version)
}

/// As [`host_sums`], over the tree of `base` with the indexes written under `out` (`-o`), so
/// that a cached tree is read and left as it is.
pub fn host_sums_into(
    host: &Host,
    base: &Path,
    out: &Path,
    version: &str,
) -> Vec<(String, String)> {
    let conf = out.join("tmp/empty-depmod.d");
    std::fs::create_dir_all(&conf).expect("config dir");
    let mut cmd = std::process::Command::new(host.host_depmod());
    cmd.arg("-b").arg(base);
    if out != base {
        cmd.arg("-o").arg(out);
    }
    let status = cmd.arg("-C").arg(&conf).arg(version).status().expect("run depmod on the host");
    assert!(status.success(), "host depmod over {}: {status}", base.display());
    let dir = out.join("lib/modules").join(version);
    let mut sums = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("module dir") {
        let name = entry.expect("entry").file_name().into_string().expect("utf-8");
        if !name.starts_with("modules.")
            || ["modules.order", "modules.builtin", "modules.builtin.modinfo"]
                .contains(&name.as_str())
        {
            continue;
        }
        let out = std::process::Command::new("sha256sum")
            .arg(dir.join(&name))
            .output()
            .expect("sha256sum");
        let text = String::from_utf8_lossy(&out.stdout);
        let sum = text.split_whitespace().next().unwrap_or_default().to_string();
        sums.push((name, sum));
    }
    sums.sort();
    sums
}
