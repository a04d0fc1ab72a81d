//! The boot scenarios, one boot each: our depmod indexes a real Debian tree inside the guest, and
//! a real modprobe (kmod 34.2, kmod 30 or busybox) must then load drivers, dependencies and
//! softdeps from what it wrote. See qemu-tests/README.md.

use depmod_initramfs::{Compression, Indexes, Modprobe, Modules, Tree};
use qemu_tests::prereq::{self, Host};
use qemu_tests::scenario::{self, Params, Scenario};

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

/// The modprobe a scenario tests.
#[derive(Clone, Copy)]
enum Consumer {
    Kmod34,
    Kmod30,
    Busybox,
}

impl Consumer {
    /// The modprobe, what its `--version` must say, and the indexes it needs.
    fn get(self, host: &Host, name: &str) -> Option<(Modprobe, &'static str, &'static str)> {
        Some(match self {
            Consumer::Kmod34 => {
                let root = prereq::fetch(host, name, &["kmod34"])?;
                (Modprobe::Kmod(root), "kmod version 34.2", scenario::KMOD_INDEXES)
            }
            Consumer::Kmod30 => {
                let root = prereq::fetch(host, name, &["kmod30"])?;
                (Modprobe::Kmod(root), "kmod version 30", scenario::KMOD_INDEXES)
            }
            Consumer::Busybox => (Modprobe::Busybox, "busybox", scenario::BUSYBOX_INDEXES),
        })
    }
}

/// Coldplug of the attached devices, `modprobe btrfs` with its dependencies, optionally a softdep
/// and `modprobe -r`.
fn coldplug(
    name: &str,
    meta: &str,
    consumer: Consumer,
    compress: Compression,
    module_ext: &str,
    kmod_only: bool,
) {
    let Some(host) = prereq::host(name, TMP) else {
        return;
    };
    let Some(root) = prereq::fetch(host, name, &["tree", meta]) else {
        return;
    };
    let Some((modprobe, expect, indexes)) = consumer.get(host, name) else {
        return;
    };
    let tree = Tree::new(&root, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ix = Indexes::compute(&tree, host.host_depmod())
        .unwrap_or_else(|e| panic!("{name}: could not build the image: {e}"));
    let mut modules: Vec<String> = scenario::COLDPLUG_MODULES.map(String::from).to_vec();
    modules.push("btrfs".into());
    let mut params = Params::default()
        .set("EXPECT_MODPROBE", expect)
        .set("INDEXES", indexes)
        .set("MODULE_EXT", module_ext)
        .set("DEPS_MODULE", "btrfs")
        .set("REMOVE", if kmod_only { "1" } else { "0" });
    // Busybox's modprobe ignores softdeps by design, and its -r is not kmod's; those checks are
    // for kmod.
    let (mut softdep_module, mut softdep_pre) = (String::new(), String::new());
    if kmod_only {
        let (m, x) = scenario::pick_softdep(&ix).unwrap_or_else(|| {
            panic!(
                "{name}: none of {:?} is a usable softdep in {meta}'s modules.softdep",
                scenario::SOFTDEP_PAIRS
            )
        });
        modules.push(m.clone());
        (softdep_module, softdep_pre) = (m, x);
    }
    params = params.set("SOFTDEP_MODULE", softdep_module).set("SOFTDEP_PRE", softdep_pre);
    let run = Scenario {
        name,
        host,
        root,
        kernel: None,
        modprobe,
        modules: Modules::Named(modules),
        compress,
        indexes: Some(&ix),
        script: scenario::COLDPLUG,
        params,
        memory_mib: 512,
        cpus: 1,
        devices: true,
        stage: false,
    }
    .run();
    run.outcome.require_pass(name);
}

#[test]
fn s1_kmod34_coldplug() {
    coldplug("s1-kmod34", "amd64", Consumer::Kmod34, Compression::Keep, ".ko", true);
}

#[test]
fn s2_kmod30_coldplug() {
    coldplug("s2-kmod30", "amd64", Consumer::Kmod30, Compression::Keep, ".ko", true);
}

#[test]
fn s3_busybox_modprobe_text_indexes() {
    coldplug("s3-busybox", "amd64", Consumer::Busybox, Compression::Keep, ".ko", false);
}

#[test]
fn s4a_xz_modules_kernel_6_12() {
    coldplug("s4a-ko-xz", "6.12-amd64", Consumer::Kmod34, Compression::Keep, ".ko.xz", true);
}

#[test]
fn s4b_zst_recompressed_modules_kernel_6_12() {
    coldplug("s4b-ko-zst", "6.12-amd64", Consumer::Kmod34, Compression::Zstd, ".ko.zst", true);
}

/// The guest's indexes must be byte for byte those of a host run over the same files: the whole
/// cloud tree, with two guest CPUs so depmod's threads run in parallel.
#[test]
fn s5_determinism_guest_equals_host() {
    let name = "s5-determinism";
    let Some(host) = prereq::host(name, TMP) else {
        return;
    };
    let Some(root) = prereq::fetch(host, name, &["tree", "cloud-amd64"]) else {
        return;
    };
    let run = Scenario {
        name,
        host,
        root,
        kernel: None,
        modprobe: Modprobe::Busybox,
        modules: Modules::All,
        compress: Compression::Keep,
        indexes: None,
        script: scenario::DETERMINISM,
        params: Params::default(),
        memory_mib: 512,
        cpus: 2,
        devices: false,
        stage: true,
    }
    .run();
    run.outcome.require_pass(name);
    let mut guest: Vec<(String, String)> = run
        .outcome
        .values("SUM ")
        .filter_map(|l| {
            let (sum, file) = l.split_once(char::is_whitespace)?;
            Some((file.trim().to_string(), sum.to_string()))
        })
        .collect();
    guest.sort();
    let stage = run.stage.expect("staged files");
    let host_sums = scenario::host_sums(host, &stage, &run.version);
    assert!(!guest.is_empty(), "{name}: the guest printed no checksum");
    assert_eq!(
        guest,
        host_sums,
        "{name}: the guest's indexes (left) differ from a host run over {} (right)",
        stage.display()
    );
}

/// 128 MiB of memory, the whole cloud tree as .ko.xz: depmod must succeed, and its peak RSS is
/// reported.
#[test]
fn s6_small_board_128_mib() {
    let name = "s6-small-board";
    let Some(host) = prereq::host(name, TMP) else {
        return;
    };
    let Some(plain) = prereq::fetch(host, name, &["tree", "cloud-amd64"]) else {
        return;
    };
    let Some(root) = prereq::fetch(host, name, &["recompressed", "cloud-amd64", "xz"]) else {
        return;
    };
    let kernel = Tree::new(&plain, None).ok().and_then(|t| t.kernel());
    let run = Scenario {
        name,
        host,
        root,
        kernel,
        modprobe: Modprobe::Busybox,
        modules: Modules::All,
        compress: Compression::Keep,
        indexes: None,
        script: scenario::SMALL_BOARD,
        params: Params::default()
            .set("EXPECT_MODPROBE", "kmod's modprobe")
            .set("INDEXES", scenario::KMOD_INDEXES),
        memory_mib: 128,
        cpus: 1,
        devices: false,
        stage: false,
    }
    .run();
    let peak = run.outcome.values("PEAK_RSS_KB").next().unwrap_or("not reported");
    scenario::report(&format!("{name}: depmod's peak RSS in the guest: {peak} KiB"));
    let _ = std::fs::write(host.out.join(name).join("peak-rss-kib.txt"), format!("{peak}\n"));
    run.outcome.require_pass(name);
}
