//! depmod's real callers, unchanged, in a Debian 12 root (qemu-tests/README.md, "Callers"): the
//! kernel package's maintainer scripts, mkinitramfs, dracut, a build system's call and DKMS, once
//! with kmod 34.2's depmod in the system's place and once with ours from the Debian package. Every
//! index they leave and everything they say must be the same, and so must what the kernel
//! package's purge leaves; the images made with either depmod must boot the kernel from a virtio
//! disk; the package must give kmod's depmod back on removal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use qemu_tests::callers::{self, Depmod, Inputs, Run};
use qemu_tests::debroot::{self, run_host};
use qemu_tests::prereq::{self, Host};
use qemu_tests::qemu::Verdict;
use qemu_tests::scenario::report;

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

/// Both runs, made once for all the tests here.
struct Runs {
    kmod: Run,
    ours: Run,
    out: PathBuf,
}

static RUNS: OnceLock<Result<Runs, String>> = OnceLock::new();

/// The two runs, or `None` after reporting why they cannot be made here.
fn runs(name: &str) -> Option<(&'static Host, &'static Runs)> {
    let host = prereq::host(name, TMP)?;
    if let Some(why) = debroot::missing_prerequisite() {
        prereq::unavailable(name, &why);
        return None;
    }
    let kmod34 = prereq::fetch(host, name, &["kmod34"])?;
    let kernel_deb = prereq::fetch(host, name, &["deb", "amd64"])?;
    let kernel = callers::Kernel::of(&kernel_deb).unwrap_or_else(|e| panic!("{name}: {e}"));
    let headers = prereq::fetch(host, name, &["headers", &kernel.version])?;
    let kmod_deb = prereq::fetch(host, name, &["package", "kmod"])?;
    let debroot = prereq::fetch(host, name, &["debroot"])?;
    let result = RUNS.get_or_init(|| {
        let out = host.out.join("callers");
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let our_deb = run_host(
            Command::new(host.workspace.join("scripts/deb"))
                .arg("--binary")
                .arg(&host.depmod)
                .arg("-o")
                .arg(&out),
        )?;
        let inputs = Inputs {
            debroot,
            kernel_deb,
            kernel,
            headers,
            kmod_deb,
            kmod34,
            our_deb: PathBuf::from(our_deb.trim()),
            static_depmod: host.depmod.clone(),
            workspace: host.workspace.clone(),
            out: out.clone(),
        };
        // Two roots side by side: most of a run is dpkg, compression and waiting for the disk.
        let (kmod, ours) = std::thread::scope(|s| {
            let kmod = s.spawn(|| callers::run(Depmod::Kmod34, &inputs));
            let ours = s.spawn(|| callers::run(Depmod::Ours, &inputs));
            let joined = |h: std::thread::ScopedJoinHandle<'_, Result<Run, String>>| {
                h.join().unwrap_or_else(|_| Err("the run panicked".into()))
            };
            (joined(kmod), joined(ours))
        });
        let kmod = kmod.map_err(|e| format!("the run with kmod 34.2's depmod: {e}"))?;
        let ours = ours.map_err(|e| format!("the run with ours: {e}"))?;
        Ok(Runs { kmod, ours, out })
    });
    match result {
        Ok(runs) => Some((host, runs)),
        Err(why) => panic!("{name}: {why}"),
    }
}

/// Every caller gives the same exit status and messages, and leaves the same indexes, in the root
/// and inside each image, and the same modules in each image, with kmod 34.2's depmod and ours.
#[test]
fn callers_same_with_kmod34_and_ours() {
    let name = "callers";
    let Some((_, runs)) = runs(name) else {
        return;
    };
    // With kmod's depmod every caller must succeed, or the comparison shows nothing.
    for call in &runs.kmod.calls {
        assert_eq!(
            call.ran.code,
            Some(0),
            "{name}: `{}` fails even with kmod 34.2's depmod: {}",
            call.command,
            call.ran.describe()
        );
    }
    let diffs = callers::differences(&runs.kmod, &runs.ours, &runs.out);
    assert!(
        diffs.is_empty(),
        "{name}: {} differences between kmod 34.2's depmod and ours:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    for place in [
        "root after dpkg -i",
        "root after depmod -a",
        callers::AFTER_INSTALL,
        callers::AFTER_REMOVE,
        "staged root",
        "image of dpkg -i",
        "image of mkinitramfs",
        "image of dracut",
    ] {
        for index in ["modules.dep", "modules.dep.bin", "modules.alias.bin", "modules.symbols.bin"]
        {
            let found = runs
                .ours
                .indexes
                .keys()
                .any(|k| k.starts_with(place) && k.ends_with(&format!(": {index}")));
            assert!(
                found,
                "{name}: no {index} in the {place} (compared: {:?})",
                runs.ours.indexes.keys()
            );
        }
    }
    // DKMS's module was in the indexes once installed, and modprobe found it by its alias with
    // the module it needs (both runs say the same: `differences`); it was gone once removed.
    let dep = |place: &str| {
        let key = format!("{place}: modules.dep");
        String::from_utf8_lossy(runs.ours.indexes.get(&key).map_or(&[][..], Vec::as_slice))
            .into_owned()
    };
    let line = format!("{}: kernel/lib/libcrc32c.ko\n", callers::MODULE);
    assert!(
        dep(callers::AFTER_INSTALL).contains(&line),
        "{name}: no `{}` in modules.dep after dkms install",
        line.trim_end()
    );
    assert!(
        !dep(callers::AFTER_REMOVE).contains(callers::MODULE),
        "{name}: {} still in modules.dep after dkms remove",
        callers::MODULE
    );
    let modprobe = runs.ours.calls.iter().find(|c| c.command.starts_with("modprobe"));
    let found = modprobe.is_some_and(|c| {
        c.ran.code == Some(0) && c.ran.stdout.contains(&format!("/{}", callers::MODULE))
    });
    assert!(found, "{name}: modprobe did not find {} by its alias: {modprobe:?}", callers::ALIAS);
    // Ours started its module cache in the installed tree and kept it there, and only there
    // (checked by `differences`); the images made afterwards did not take it.
    let cache_at = |p: &str| {
        runs.ours.indexes.get(&format!("{p}: {}", callers::CACHE)).map_or(&[][..], Vec::as_slice)
    };
    let caches: Vec<usize> = callers::CACHE_PLACES.iter().map(|p| cache_at(p).len()).collect();
    assert!(
        caches.iter().all(|&n| n > 0),
        "{name}: a module cache missing from the installed tree: {caches:?} bytes at {:?}",
        callers::CACHE_PLACES
    );
    // Each of DKMS's runs brought it up to date (it records the indexes it wrote).
    for pair in callers::CACHE_PLACES.windows(2) {
        assert!(cache_at(pair[0]) != cache_at(pair[1]), "{name}: the cache {pair:?} is the same");
    }
    // Purging the kernel package took the cache with the indexes (`modules.*.bin`). What it
    // leaves is the same with kmod 34.2's depmod (`differences`): Debian 12's postrm predates
    // `modules.weakdep`, which both write.
    assert!(
        !runs.ours.after_purge.iter().any(|n| n == callers::CACHE),
        "{name}: {} left after dpkg --purge of the kernel package: {:?}",
        callers::CACHE,
        runs.ours.after_purge
    );
    let cache_bytes = caches[0];
    let bytes: usize =
        runs.ours.indexes.values().map(Vec::len).sum::<usize>() - caches.iter().sum::<usize>();
    let modules: usize = runs.ours.image_modules.values().map(Vec::len).sum();
    report(&format!(
        "callers: {} callers ({}), {} index files ({bytes} bytes) and {modules} module files in {} \
         images identical with kmod 34.2's depmod and ours; DKMS's module indexed, found by \
         modprobe, and gone once removed; ours' module cache ({cache_bytes} bytes) in the \
         installed tree only, and gone with the kernel package's purge (left: {:?}): PASS",
        runs.ours.calls.len(),
        runs.ours.calls.iter().map(|c| c.command.as_str()).collect::<Vec<_>>().join("; "),
        runs.ours.indexes.len() - caches.len(),
        runs.ours.image_modules.len(),
        runs.ours.after_purge,
    ));
}

/// The package puts ours in place for every PATH (checked while the runs are made), survives a
/// reinstallation of kmod's package, and `dpkg -r` gives kmod's depmod and manual page back; and
/// `scripts/install` into the root's /usr/local is found first by root's PATH until
/// `--uninstall`.
#[test]
fn debian_package_and_install_script_in_the_root() {
    let name = "debian-package";
    let Some((_, runs)) = runs(name) else {
        return;
    };
    println!("{}", runs.ours.log.join("\n"));
    let removal = runs.ours.removal.as_ref().expect("the run with ours removes the package");
    let removal = removal.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{}", removal.join("\n"));
    let install =
        runs.ours.install_script.as_ref().expect("the run with ours tries scripts/install");
    let install = install.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{}", install.join("\n"));
    report(&format!(
        "{name}: installs, puts ours first for every caller's PATH, gives kmod's back: PASS"
    ));
}

/// On the host: `scripts/install --prefix DIR` (building depmod with cargo, as on a fresh clone)
/// puts `sbin/depmod` and `share/man/man8/depmod.8` there, and `--uninstall` removes them.
#[test]
fn install_script_prefix_and_uninstall() {
    let name = "scripts/install";
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let prefix = Path::new(TMP).join("install-prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(&prefix).expect("prefix");
    let script = workspace.join("scripts/install");
    let status =
        Command::new(&script).arg("--prefix").arg(&prefix).status().expect("scripts/install");
    assert!(status.success(), "{name} --prefix {}: {status}", prefix.display());
    let depmod = prefix.join("sbin/depmod");
    let man = prefix.join("share/man/man8/depmod.8");
    let version = Command::new(&depmod).arg("-V").output().expect("installed depmod -V");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with("kmod version 34.2\n"),
        "{name}: {} -V says {version}",
        depmod.display()
    );
    assert!(version.contains("\ndepmod-rs "), "{name}: {} -V says {version}", depmod.display());
    let ours = std::fs::read(workspace.join("bin/depmod.8")).expect("bin/depmod.8");
    assert_eq!(
        std::fs::read(&man).ok(),
        Some(ours),
        "{name}: {} is not bin/depmod.8",
        man.display()
    );
    let status = Command::new(&script)
        .arg("--uninstall")
        .arg("--prefix")
        .arg(&prefix)
        .status()
        .expect("scripts/install");
    assert!(status.success(), "{name} --uninstall --prefix {}: {status}", prefix.display());
    assert!(
        !depmod.exists() && !man.exists(),
        "{name} --uninstall left {} or {}",
        depmod.display(),
        man.display()
    );
    report(&format!(
        "{name}: --prefix puts sbin/depmod and share/man/man8/depmod.8, --uninstall removes them: PASS"
    ));
}

/// Boots `run`'s image made by `image` with the root on a virtio disk: the initramfs must load
/// the disk driver, its bus and ext4 with their dependencies, mount the root and run its marker.
fn boot(image: &str, depmod: Depmod) {
    let name = format!("boot-{image}-{}", depmod.name());
    let Some((host, runs)) = runs(&name) else {
        return;
    };
    let run = if depmod == Depmod::Ours { &runs.ours } else { &runs.kmod };
    let dep = run.indexes.get("root after dpkg -i: modules.dep").expect("the root's modules.dep");
    let builtin = run.indexes.get("root after dpkg -i: modules.builtin").expect("modules.builtin");
    let (dep, builtin) = (String::from_utf8_lossy(dep), String::from_utf8_lossy(builtin));
    for m in callers::ROOT_MODULES {
        let file = format!("/{m}.ko");
        let is_module =
            dep.lines().any(|l| l.split(':').next().is_some_and(|p| p.ends_with(&file)));
        let is_builtin = builtin.lines().any(|l| l.ends_with(&file));
        assert!(
            is_module && !is_builtin,
            "{name}: {m} is not a module of {}: the boot would not show the initramfs loading it",
            run.version
        );
    }
    let outcome = callers::boot(host, run, image, &runs.out.join(&name));
    report(&format!(
        "{name}: {} image made with {}'s depmod ({} bytes), root on virtio ext4, boot {:.1} s: {}",
        image,
        depmod.name(),
        run.images.get(image).and_then(|p| std::fs::metadata(p).ok()).map_or(0, |m| m.len()),
        outcome.elapsed.as_secs_f64(),
        match &outcome.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "assertion failed",
            Verdict::NoBoot(_) => "could not boot",
        }
    ));
    outcome.require_pass(&name);
}

#[test]
fn boot_mkinitramfs_image_made_by_ours() {
    boot("mkinitramfs", Depmod::Ours);
}

#[test]
fn boot_dracut_image_made_by_ours() {
    boot("dracut", Depmod::Ours);
}

#[test]
fn boot_mkinitramfs_image_made_by_kmod34() {
    boot("mkinitramfs", Depmod::Kmod34);
}

#[test]
fn boot_dracut_image_made_by_kmod34() {
    boot("dracut", Depmod::Kmod34);
}
