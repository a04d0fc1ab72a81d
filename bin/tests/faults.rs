//! Faults: depmod killed at random moments, a full filesystem, a read-only output directory,
//! runs racing on one tree, and repeated runs on an unchanged tree. Every index must always be
//! the complete old file or the complete new one, and a failure must say so and exit non-zero.
//! The module cache (`modules.cache.bin`, asked for by an empty file: the tree is given with
//! `-b`) is always a valid cache or absent; one that cannot be written never fails a run whose
//! indexes were.
//!
//! The tree is a hard-linked copy of Debian 12's cloud-amd64 modules (1,100 files). "Old"
//! indexes are those of the tree without one module; "new" ones, of the whole tree.

mod common;

use depmod_core::bytes::Shared;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Depmod, OUTPUTS, copy_tree, is_root, scratch, tree};
use depmod_core::cache::{Cache, Identity};

/// The module cache's name, and the identity this build records (bin/src/cache.rs).
const CACHE: &str = "modules.cache.bin";
const PROGRAM: &str =
    concat!("depmod-rs ", env!("CARGO_PKG_VERSION"), " build ", env!("DEPMOD_BUILD_ID"));

/// The cache in `dir` (written for the module directory `tree`), checked: `Ok(None)` when
/// there is none, or only the empty file that asks for one; how many modules it holds.
fn cache_in(dir: &Path, tree: &Path) -> Result<Option<usize>, String> {
    let Ok(bytes) = fs::read(dir.join(CACHE)) else { return Ok(None) };
    if bytes.is_empty() {
        return Ok(None);
    }
    let bytes: Shared = bytes.into();
    let identity = Identity { program: PROGRAM.as_bytes(), tree: tree.as_os_str().as_bytes() };
    Cache::parse(&bytes, identity).map(|c| Some(c.len())).map_err(|e| e.to_string())
}

/// The module left out of the "old" state: it exports symbols others use, so most indexes change.
const LEFT_OUT: &str = "kernel/drivers/virtio/virtio_ring.ko";

/// A scratch tree with its old and new indexes.
struct Fixture {
    work: PathBuf,
    base: PathBuf,
    version: String,
    old: Vec<(String, Vec<u8>)>,
    new: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    fn new(name: &str) -> Option<Fixture> {
        let (root, version) = tree("cloud-amd64")?;
        let work = scratch(name);
        let base = work.join("tree");
        let moddir = format!("lib/modules/{version}");
        // Copies, not links: the fixture's cache must hold every module through the test.
        copy_tree(&root.join(&moddir), &base.join(&moddir));
        let f = Fixture { work, base, version, old: Vec::new(), new: Vec::new() };
        for name in OUTPUTS {
            let _ = fs::remove_file(f.moddir().join(name));
        }
        // A cache here too (the files just copied are not settled: it holds them once the runs
        // below are a second later).
        fs::write(f.moddir().join(CACHE), b"").unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        let left_out = f.moddir().join(LEFT_OUT);
        let aside = f.work.join("left-out.ko");
        fs::rename(&left_out, &aside).unwrap();
        let out = f.depmod(&[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let old = f.outputs();
        fs::rename(&aside, &left_out).unwrap();
        let out = f.depmod(&[]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let new = f.outputs();
        let changed = old.iter().zip(&new).filter(|(o, n)| o.1 != n.1).count();
        assert!(changed >= 4, "only {changed} indexes differ between the old and new tree");
        Some(Fixture { old, new, ..f })
    }

    /// How many indexes differ between the old and the new state.
    fn changed(&self) -> usize {
        self.old.iter().zip(&self.new).filter(|(o, n)| o.1 != n.1).count()
    }

    fn moddir(&self) -> PathBuf {
        self.base.join("lib/modules").join(&self.version)
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let config = self.work.join("depmod.d");
        fs::create_dir_all(&config).unwrap();
        let mut args = vec![
            "-b".to_string(),
            self.base.display().to_string(),
            "-C".to_string(),
            config.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(self.version.clone());
        args
    }

    fn depmod(&self, extra: &[&str]) -> Output {
        Depmod::Ours.run(self.args(extra))
    }

    /// The 11 indexes in `dir` (default: the module directory).
    fn outputs_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
        OUTPUTS
            .iter()
            .map(|n| (n.to_string(), fs::read(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"))))
            .collect()
    }

    fn outputs(&self) -> Vec<(String, Vec<u8>)> {
        Self::outputs_in(&self.moddir())
    }

    /// Puts the old indexes in `dir`.
    fn install_old(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap();
        for (name, data) in &self.old {
            fs::write(dir.join(name), data).unwrap();
        }
    }

    /// Checks that every index in `dir` is complete, old or new; returns how many of those that
    /// differ between the two states are new.
    fn old_or_new(&self, dir: &Path, context: &str) -> usize {
        let mut new = 0;
        for ((name, old), (_, fresh)) in self.old.iter().zip(&self.new) {
            let now = fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{context}: {name}: {e}"));
            if &now == fresh {
                new += usize::from(old != fresh);
            } else if &now != old {
                panic!(
                    "{context}: {name} is neither the old nor the new index ({} bytes)",
                    now.len()
                );
            }
        }
        new
    }
}

/// Checks that the cache in `dir` is valid or absent.
fn cache_valid_or_none(dir: &Path, tree: &Path, context: &str) -> Option<usize> {
    cache_in(dir, tree).unwrap_or_else(|e| panic!("{context}: the cache is not valid: {e}"))
}

/// Temporary files depmod left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".depmod-tmp"))
        .collect()
}

/// A small xorshift generator: the tests print their seed, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        let seed =
            std::env::var("FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("faults: FAULTS_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn kill_at_random_moments_leaves_old_or_new_indexes() {
    let Some(f) = Fixture::new("faults-kill") else { return };
    let moddir = f.moddir();
    // How long a run takes here, to spread the kills over all of it.
    f.install_old(&moddir);
    let start = Instant::now();
    assert!(f.depmod(&[]).status.success());
    let span = start.elapsed().as_micros() as u64;
    let mut rng = Rng::from_env();
    let (mut all_old, mut all_new, mut mixed, mut finished, mut caches) = (0, 0, 0, 0, 0);
    for i in 0..100 {
        f.install_old(&moddir);
        let delay = rng.next() % span.max(1);
        let mut child = Depmod::Ours
            .command(f.args(&[]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(delay));
        let _ = child.kill();
        let status = child.wait().unwrap();
        finished += usize::from(status.success());
        let context = format!("kill {i} after {delay} µs");
        match f.old_or_new(&moddir, &context) {
            0 => all_old += 1,
            n if n == f.changed() => all_new += 1,
            _ => mixed += 1,
        }
        caches += usize::from(cache_valid_or_none(&moddir, &moddir, &context).is_some());
    }
    eprintln!(
        "faults: 100 kills over {span} µs: {all_old} left the old set, {all_new} the new set, \
         {mixed} a mix of complete files ({finished} runs had finished); a valid cache after \
         {caches}, none after the others"
    );
    // The next run removes what killed runs left behind, and completes.
    let out = f.depmod(&[]);
    assert!(out.status.success());
    assert_eq!(f.old_or_new(&moddir, "after the kills"), f.changed());
    assert!(leftovers(&moddir).is_empty(), "left behind: {:?}", leftovers(&moddir));
    assert!(cache_valid_or_none(&moddir, &moddir, "after the kills").is_some());
    let _ = fs::remove_dir_all(&f.work);
}

/// A tmpfs mounted at `dir` with `options`, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, options: &str) -> Option<Mount> {
        if !is_root() {
            common::missing("root, to mount a tmpfs");
            return None;
        }
        fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            common::missing("mount -t tmpfs");
            return None;
        }
        Some(Mount(dir.to_path_buf()))
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -o remount,{options}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_filesystem_keeps_the_old_indexes() {
    let Some(f) = Fixture::new("faults-full") else { return };
    let out_root = f.work.join("out");
    let Some(_mount) = Mount::tmpfs(&out_root, "size=4m") else { return };
    let outdir = out_root.join("lib/modules").join(&f.version);
    f.install_old(&outdir);
    // Fill the filesystem, leaving room for a few of the new files but not all.
    let used: usize = f.old.iter().map(|(_, d)| d.len()).sum();
    let filler = vec![0xa5u8; (4 << 20) - used - (used / 3)];
    let _ = fs::write(out_root.join("filler"), &filler);
    let out = f.depmod(&["-o", out_root.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "depmod succeeded on a full disk: {stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("could not write"),
        "message: {stderr}"
    );
    assert_eq!(f.old_or_new(&outdir, "full disk"), 0, "some index was replaced");
    assert!(leftovers(&outdir).is_empty(), "left behind: {:?}", leftovers(&outdir));
    // With room again, the same command succeeds.
    fs::remove_file(out_root.join("filler")).unwrap();
    assert!(f.depmod(&["-o", out_root.to_str().unwrap()]).status.success());
    assert_eq!(f.old_or_new(&outdir, "after freeing space"), f.changed());
}

#[test]
fn a_read_only_output_directory_is_an_error() {
    let Some(f) = Fixture::new("faults-read-only") else { return };
    let out_root = f.work.join("out");
    let Some(mount) = Mount::tmpfs(&out_root, "size=16m") else { return };
    let outdir = out_root.join("lib/modules").join(&f.version);
    f.install_old(&outdir);
    mount.remount("ro");
    let out = f.depmod(&["-o", out_root.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "depmod succeeded on a read-only directory: {stderr}");
    assert!(stderr.contains("Read-only file system"), "message: {stderr}");
    assert_eq!(f.old_or_new(&outdir, "read-only"), 0);
    mount.remount("rw");
}

#[test]
fn concurrent_runs_leave_complete_indexes() {
    let Some(f) = Fixture::new("faults-concurrent") else { return };
    let moddir = f.moddir();
    for round in 0..10 {
        f.install_old(&moddir);
        let children: Vec<_> = (0..4)
            .map(|_| {
                Depmod::Ours
                    .command(f.args(&[]))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(f.old_or_new(&moddir, &format!("round {round}")), f.changed());
        assert!(leftovers(&moddir).is_empty(), "left behind: {:?}", leftovers(&moddir));
        let cache = cache_valid_or_none(&moddir, &moddir, &format!("round {round}"));
        assert!(cache.is_some(), "round {round}: no cache");
    }
}

/// A cache that cannot be written (the file system fills up after the indexes) is reported at
/// `-v`; the run, whose indexes are written, succeeds, and nothing is left behind.
#[test]
fn a_cache_that_cannot_be_written_never_fails_the_run() {
    let Some(f) = Fixture::new("faults-cache-full") else { return };
    let moddir = f.moddir();
    let cache_size = fs::metadata(moddir.join(CACHE)).unwrap().len();
    assert!(cache_size > 0, "the fixture's runs wrote a cache");
    let out_root = f.work.join("out");
    let Some(_mount) = Mount::tmpfs(&out_root, "size=8m") else { return };
    let outdir = out_root.join("lib/modules").join(&f.version);
    fs::create_dir_all(&outdir).unwrap();
    fs::write(outdir.join(CACHE), b"").unwrap();
    // Room for the indexes (each rounded up to pages), not for the cache as well.
    let indexes: u64 = f.new.iter().map(|(_, d)| (d.len() as u64).div_ceil(4096) * 4096).sum();
    let st = rustix::fs::statvfs(&out_root).unwrap();
    let free = st.f_bavail * st.f_frsize;
    let filler = free - indexes - 8 * 4096 - cache_size / 2;
    fs::write(out_root.join("filler"), vec![0xa5u8; filler as usize]).unwrap();
    let out = f.depmod(&["-v", "-o", out_root.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run failed: {stderr}");
    let message = format!(
        "depmod: NOTICE: could not write {}/{CACHE}: No space left on device (the indexes are \
         written)\n",
        outdir.display()
    );
    assert!(stderr.contains(&message), "message: {stderr}");
    assert_eq!(f.old_or_new(&outdir, "cache on a full disk"), f.changed());
    assert!(leftovers(&outdir).is_empty(), "left behind: {:?}", leftovers(&outdir));
    assert_eq!(fs::read(outdir.join(CACHE)).unwrap(), b"", "the old cache was replaced");
    // With room again, it is written.
    fs::remove_file(out_root.join("filler")).unwrap();
    assert!(f.depmod(&["-o", out_root.to_str().unwrap()]).status.success());
    assert!(cache_valid_or_none(&outdir, &moddir, "with room again").is_some());
}

/// (inode, modification time in ns) of each index.
fn identities(dir: &Path) -> Vec<(u64, i128)> {
    OUTPUTS
        .iter()
        .map(|n| {
            let m = fs::metadata(dir.join(n)).unwrap();
            (m.ino(), i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()))
        })
        .collect()
}

#[test]
fn an_unchanged_tree_is_not_rewritten_and_quick_mode_follows_changes() {
    let Some(f) = Fixture::new("faults-unchanged") else { return };
    let moddir = f.moddir();
    let before = identities(&moddir);
    std::thread::sleep(Duration::from_millis(20));
    assert!(f.depmod(&[]).status.success());
    let after = identities(&moddir);
    for ((name, b), a) in OUTPUTS.iter().zip(&before).zip(&after) {
        assert_eq!(b.0, a.0, "{name} was replaced on an unchanged tree");
        if *name == "modules.dep" {
            // Touched, so that -A sees the indexes as current.
            assert!(a.1 > b.1, "modules.dep's time was not updated");
        } else {
            assert_eq!(b.1, a.1, "{name} was written on an unchanged tree");
        }
    }
    assert!(f.outputs() == f.new, "a second run changed the indexes");

    // -A with nothing newer than modules.dep: nothing happens.
    let out = f.depmod(&["-A"]);
    assert!(out.status.success() && out.stderr.is_empty());
    assert_eq!(identities(&moddir), after);

    // Remove a module and add it back under a new name (a new file, newer than modules.dep):
    // -A must index the tree as a full run does.
    std::thread::sleep(Duration::from_millis(20));
    let moved = moddir.join("kernel/drivers/virtio/virtio_ring_renamed.ko");
    fs::copy(moddir.join(LEFT_OUT), &moved).unwrap();
    fs::remove_file(moddir.join(LEFT_OUT)).unwrap();
    let out = f.depmod(&["-A"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let quick = f.outputs();
    assert!(quick != f.new, "-A did not regenerate the indexes after a module was added");
    assert!(f.depmod(&[]).status.success());
    assert!(quick == f.outputs(), "-A and a full run disagree");
}
