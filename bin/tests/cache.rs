//! The module cache (`modules.cache.bin`) only ever makes a run faster. Each test runs this
//! depmod on twin synthetic trees, one with a warm cache and one with `--no-cache`: both must
//! agree on every index, stdout, stderr and the exit status. Where a stale record could be
//! trusted, the test first shows that the record differs from the file in that one respect
//! only (so the test fails if the cache trusted it), and the warm run's `DEPMOD_TIMING` line
//! shows how many files it recalled.

mod common;

use depmod_core::bytes::Shared;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{Depmod, OUTPUTS, compare_dirs, compress, scratch};
use depmod_core::cache::{Cache, FORMAT, Identity, Stamp, Time, reseal};
use depmod_core::output::fixture::spec;

const VERSION: &str = "4.4.4";
const NAME: &str = "modules.cache.bin";
/// The identity this build records (bin/src/cache.rs, `PROGRAM`).
const PROGRAM: &str =
    concat!("depmod-rs ", env!("CARGO_PKG_VERSION"), " build ", env!("DEPMOD_BUILD_ID"));
/// The arguments of a plain run.
const DEFAULT: &[&str] = &["-b", "$ROOT", "-C", "$ROOT/etc/depmod.d", VERSION];

/// The module whose contents the tests change, and its two versions: the same size, another
/// alias.
const CHANGED: &str = "kernel/b.ko";

fn b_module(alias: &str) -> Vec<u8> {
    let mut m = spec(&[&format!("alias={alias}"), "license=GPL"], &["b_fn"], &["a_fn", "printk"]);
    m.versions = vec![(b"printk".to_vec(), 0x1234_5678)];
    m.build()
}

/// The modules of a tree: path under the module directory, contents.
fn modules() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("kernel/a.ko", spec(&["alias=a-alias"], &["a_fn", "a_other"], &["printk"]).build()),
        (CHANGED, b_module("variant-a")),
        ("kernel/sub/c.ko.xz", compress("xz", &spec(&["alias=c-*"], &[], &["b_fn"]).build())),
        (
            "kernel/sub/d.ko",
            spec(
                &["softdep=pre: a", "weakdep=c", "alias=devname:dee", "alias=char-major-10-99"],
                &[],
                &["missing_fn"],
            )
            .build(),
        ),
    ]
}

/// Sleeps until files written now are older than a run's settling time (a second).
fn settle() {
    std::thread::sleep(Duration::from_millis(1100));
}

fn stamp(path: &Path) -> Stamp {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: Time { sec: m.mtime(), nsec: m.mtime_nsec() as u32 },
        ctime: Time { sec: m.ctime(), nsec: m.ctime_nsec() as u32 },
    }
}

/// The fields in which two stamps differ.
fn differing(a: &Stamp, b: &Stamp) -> Vec<&'static str> {
    let fields = [
        ("dev", a.dev == b.dev),
        ("ino", a.ino == b.ino),
        ("size", a.size == b.size),
        ("mtime", a.mtime == b.mtime),
        ("ctime", a.ctime == b.ctime),
    ];
    fields.into_iter().filter(|(_, same)| !same).map(|(f, _)| f).collect()
}

/// What a run did.
#[derive(Debug, PartialEq)]
struct Ran {
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

/// One tree.
struct Tree {
    root: PathBuf,
}

impl Tree {
    fn moddir(&self) -> PathBuf {
        self.root.join("lib/modules").join(VERSION)
    }

    fn write(&self, rel: &str, data: &[u8]) {
        let path = self.root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    fn build(root: PathBuf) -> Tree {
        let _ = fs::remove_dir_all(&root);
        let t = Tree { root };
        fs::create_dir_all(t.root.join("etc/depmod.d")).unwrap();
        let mut order = String::new();
        for (path, data) in modules() {
            t.write(&format!("lib/modules/{VERSION}/{path}"), &data);
            order += &format!("{}.ko\n", path.split(".ko").next().unwrap());
        }
        t.write(&format!("lib/modules/{VERSION}/modules.order"), order.as_bytes());
        t.write(&format!("lib/modules/{VERSION}/modules.builtin"), b"kernel/fs/ext4.ko\n");
        t.write(&format!("lib/modules/{VERSION}/modules.builtin.modinfo"), b"ext4.alias=fs-ext4\0");
        t
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.replace("$ROOT", self.root.to_str().unwrap())).collect()
    }

    /// Runs this depmod; `DEPMOD_TIMING` lines go to `timing`.
    fn run(&self, args: &[&str], extra: &[&str], timing: &mut Vec<String>) -> Ran {
        let mut all = self.args(args);
        all.extend(extra.iter().map(|s| s.to_string()));
        let out = Depmod::Ours.command(&all).env("DEPMOD_TIMING", "1").output().unwrap();
        let root = self.root.to_str().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).replace(root, "$ROOT");
        let (times, rest): (Vec<&str>, Vec<&str>) =
            stderr.lines().partition(|l| l.starts_with("depmod: timing: "));
        timing.extend(times.iter().map(|s| s.to_string()));
        let rest: String = rest.iter().map(|l| format!("{l}\n")).collect();
        Ran {
            exit: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).replace(root, "$ROOT"),
            stderr: rest,
        }
    }

    fn cache_path(&self) -> PathBuf {
        self.moddir().join(NAME)
    }

    /// The cache, checked as this build checks it.
    fn with_cache<R>(&self, f: impl FnOnce(&Cache<'_>) -> R) -> R {
        let tree = self.moddir();
        self.with_cache_of(tree.as_os_str().as_bytes(), f)
    }

    /// The cache, checked as a cache of the module directory `tree`.
    fn with_cache_of<R>(&self, tree: &[u8], f: impl FnOnce(&Cache<'_>) -> R) -> R {
        let bytes: Shared = fs::read(self.cache_path()).unwrap().into();
        let identity = Identity { program: PROGRAM.as_bytes(), tree };
        let cache = Cache::parse(&bytes, identity).unwrap_or_else(|e| panic!("the cache: {e}"));
        f(&cache)
    }

    /// The record of the module at `rel`: its stamp and its aliases.
    fn record(&self, rel: &str) -> (Stamp, Vec<String>) {
        let path = self.moddir().join(rel);
        self.with_cache(|c| {
            let r =
                c.get(path.as_os_str().as_bytes()).unwrap_or_else(|| panic!("no record of {rel}"));
            (r.stamp(), r.aliases().map(|a| String::from_utf8_lossy(a).into_owned()).collect())
        })
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.moddir().join(name)).unwrap()
    }
}

/// Twin trees: `warm` runs with the cache, `cold` with `--no-cache`.
struct Twin {
    warm: Tree,
    cold: Tree,
    /// The `DEPMOD_TIMING` lines of the warm runs.
    timing: Vec<String>,
}

impl Twin {
    fn new(name: &str) -> Twin {
        let work = scratch(&format!("cache-{name}"));
        Twin {
            warm: Tree::build(work.join("warm")),
            cold: Tree::build(work.join("cold")),
            timing: vec![],
        }
    }

    fn apply(&self, f: impl Fn(&Tree)) {
        f(&self.warm);
        f(&self.cold);
    }

    /// Runs both with `args`; everything must agree (indexes in the module directory and in
    /// `outdirs`, relative to each root). Returns the warm run.
    fn run_in(&mut self, args: &[&str], outdirs: &[&str]) -> Ran {
        self.timing.clear();
        let warm = self.warm.run(args, &[], &mut self.timing);
        let cold = self.cold.run(args, &["--no-cache"], &mut Vec::new());
        assert_eq!(warm, cold, "{args:?}: the runs with and without the cache differ");
        let mut dirs = vec![format!("lib/modules/{VERSION}")];
        dirs.extend(outdirs.iter().map(|d| d.to_string()));
        for dir in dirs {
            if let Err(diff) =
                compare_dirs(&self.cold.root.join(&dir), &self.warm.root.join(&dir), &OUTPUTS)
            {
                panic!("{args:?}: {dir}: the indexes with and without the cache differ:\n{diff}");
            }
            assert!(!self.cold.root.join(&dir).join(NAME).exists(), "--no-cache wrote a cache");
        }
        warm
    }

    fn run(&mut self, args: &[&str]) -> Ran {
        self.run_in(args, &[])
    }

    /// The `walk and load` line of the last warm run: `N files recalled, M read`.
    fn loaded(&self) -> String {
        let line = self.timing.iter().find(|l| l.contains("walk and load")).expect("a timing line");
        let from = line.find('(').unwrap() + 1;
        line[from..line.find(')').unwrap()].to_string()
    }

    /// The `directory listings` line of the last warm run: `N recalled, M read` (the listings a
    /// cache can record).
    fn listed(&self) -> String {
        let line = self.timing.iter().find(|l| l.contains("directory listings")).expect("a line");
        let from = line.find('(').unwrap() + 1;
        line[from..line.find(')').unwrap()].to_string()
    }

    /// Whether the last warm run found the indexes current (and left them).
    fn kept_indexes(&self) -> bool {
        self.timing.iter().any(|l| l.contains("indexes current"))
    }

    /// Starts the warm tree's cache (an empty file asks for one under `-b`), once the modules
    /// are settled; it then holds every module.
    fn start_cache(&mut self) {
        fs::write(self.warm.cache_path(), b"").unwrap();
        settle();
        self.run(DEFAULT);
        let n = modules().len();
        assert_eq!(self.warm.with_cache(|c| c.len()), n, "the cache holds every module");
        self.run(DEFAULT);
        assert_eq!(self.loaded(), format!("{n} files recalled, 0 read"));
        assert!(self.kept_indexes());
    }
}

/// Writes `data` over the file at `path` (same inode), and sets its modification time to
/// `mtime`.
fn rewrite_in_place(path: &Path, data: &[u8], mtime: SystemTime) {
    let mut f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(data).unwrap();
    f.set_modified(mtime).unwrap();
}

/// Checks that the record of `CHANGED` says `variant-a` and differs from the file's stamp only
/// in some of `fields` (which can tell the change), `ctime` always; after a warm run, the file
/// is read again and its new alias shows; once it is settled, the new contents are recorded.
fn changed_module_is_read_again(t: &mut Twin, fields: &[&str]) {
    let (recorded, aliases) = t.warm.record(CHANGED);
    assert_eq!(aliases, ["variant-a"]);
    let now = stamp(&t.warm.moddir().join(CHANGED));
    let differ = differing(&recorded, &now);
    assert!(differ.contains(&"ctime"), "{differ:?}");
    assert!(differ.iter().all(|f| fields.contains(f)), "what tells the change: {differ:?}");
    t.run(DEFAULT);
    assert!(t.warm.read("modules.alias").contains("alias variant-b b\n"));
    assert!(!t.warm.read("modules.alias").contains("variant-a"));
    settle();
    t.run(DEFAULT);
    assert_eq!(t.warm.record(CHANGED).1, ["variant-b"], "the new contents are recorded");
}

/// Sets the modification time of every module to a whole second, as in a tree unpacked from a
/// package (dpkg and tar keep whole seconds).
fn whole_seconds(tree: &Tree) {
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (path, _) in modules() {
        let f = fs::File::options().write(true).open(tree.moddir().join(path)).unwrap();
        f.set_modified(second).unwrap();
    }
}

#[test]
fn a_module_rewritten_in_place_with_its_old_time_is_read_again() {
    let mut t = Twin::new("touch-r");
    t.start_cache();
    assert_eq!(b_module("variant-a").len(), b_module("variant-b").len());
    t.apply(|tree| {
        let path = tree.moddir().join(CHANGED);
        let old = fs::metadata(&path).unwrap().modified().unwrap();
        rewrite_in_place(&path, &b_module("variant-b"), old);
    });
    changed_module_is_read_again(&mut t, &["ctime"]);
    assert_eq!(t.loaded(), "3 files recalled, 1 read");
}

/// On a file system with whole-second times, a module rewritten within the second it was
/// written in keeps its modification time: simulated with whole seconds here.
#[test]
fn a_module_rewritten_in_place_within_the_same_second_is_read_again() {
    let mut t = Twin::new("same-second");
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    t.apply(whole_seconds);
    t.start_cache();
    t.apply(|tree| rewrite_in_place(&tree.moddir().join(CHANGED), &b_module("variant-b"), second));
    changed_module_is_read_again(&mut t, &["ctime"]);
}

#[test]
fn a_module_replaced_by_rename_is_read_again() {
    let mut t = Twin::new("rename");
    t.start_cache();
    t.apply(|tree| {
        let path = tree.moddir().join(CHANGED);
        let old = fs::metadata(&path).unwrap().modified().unwrap();
        let new = path.with_extension("ko.new");
        fs::write(&new, b_module("variant-b")).unwrap();
        fs::File::options().write(true).open(&new).unwrap().set_modified(old).unwrap();
        fs::rename(&new, &path).unwrap();
    });
    let (recorded, _) = t.warm.record(CHANGED);
    assert_ne!(recorded.ino, stamp(&t.warm.moddir().join(CHANGED)).ino);
    changed_module_is_read_again(&mut t, &["ino", "ctime"]);
}

/// The module directory restored from a backup made with times preserved, in which the module
/// has other contents of the same size and time (and the indexes and cache of before).
fn restored_with(tool: &str) {
    let mut t = Twin::new(&format!("restored-{tool}"));
    t.apply(whole_seconds);
    t.start_cache();
    t.apply(|tree| {
        let backup = tree.root.join("backup");
        let ok = Command::new("cp").arg("-a").arg(tree.moddir()).arg(&backup).status().unwrap();
        assert!(ok.success());
        let path = backup.join(CHANGED);
        let old = fs::metadata(&path).unwrap().modified().unwrap();
        rewrite_in_place(&path, &b_module("variant-b"), old);
        fs::remove_dir_all(tree.moddir()).unwrap();
        let restore = match tool {
            "cp" => format!("cp -a '{}' '{}'", backup.display(), tree.moddir().display()),
            "tar" => format!(
                "tar -C '{}' -cf - . | (mkdir '{}' && tar -C '{1}' -xpf -)",
                backup.display(),
                tree.moddir().display()
            ),
            _ => format!("rsync -a '{}/' '{}/'", backup.display(), tree.moddir().display()),
        };
        let ok = Command::new("sh").arg("-c").arg(&restore).status().unwrap();
        assert!(ok.success(), "{restore}");
    });
    changed_module_is_read_again(&mut t, &["ino", "ctime"]);
}

#[test]
fn a_tree_restored_by_cp_a_is_read_again() {
    restored_with("cp");
}

#[test]
fn a_tree_restored_by_tar_is_read_again() {
    restored_with("tar");
}

#[test]
fn a_tree_restored_by_rsync_a_is_read_again() {
    if common::which("rsync").is_none() {
        common::missing("rsync (apt-get install rsync)");
        return;
    }
    restored_with("rsync");
}

/// Edits a cache file in place and seals it again, so that the check behind the checksum is
/// the one that fails.
fn edit(bytes: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = bytes.to_vec();
    f(&mut b);
    reseal(&mut b);
    b
}

/// A cache cut short, garbled, of another format or build, from a host of the other byte
/// order, for another tree, or not a cache at all: each is named at `-v` and ignored (the
/// modules are read), and replaced by a good one.
#[test]
fn a_bad_cache_is_named_and_ignored() {
    let mut t = Twin::new("bad");
    t.start_cache();
    let good = fs::read(t.warm.cache_path()).unwrap();
    // A cache written for another module directory (another root).
    let other = Tree::build(t.warm.root.parent().unwrap().join("other"));
    fs::write(other.cache_path(), b"").unwrap();
    assert_eq!(other.run(DEFAULT, &[], &mut vec![]).exit, Some(0));
    let other_tree = fs::read(other.cache_path()).unwrap();
    let len = good.len();
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "truncated",
            good[..len - 100].to_vec(),
            format!("truncated: {} bytes of {len}", len - 100),
        ),
        (
            "garbled",
            {
                let mut b = good.clone();
                b[len / 2] ^= 0x40;
                b
            },
            "garbled: checksum".to_string(),
        ),
        (
            "another format",
            edit(&good, |b| b[8..12].copy_from_slice(&7u32.to_le_bytes())),
            format!("format 7, not {FORMAT} (another version wrote it)"),
        ),
        (
            "another build",
            // The program identity follows the header and its length.
            edit(&good, |b| b[36 + PROGRAM.len() - 1] ^= 1),
            "written by another build of depmod".to_string(),
        ),
        (
            "the other byte order",
            edit(&good, |b| b[12..16].reverse()),
            "written on a host of the other byte order".to_string(),
        ),
        ("another tree", other_tree, "written for another module directory".to_string()),
        ("not a cache", vec![0x5a; 64], "not a depmod-rs cache".to_string()),
    ];
    let verbose: Vec<&str> = DEFAULT.iter().copied().chain(["-v"]).collect();
    for (what, bytes, why) in cases {
        fs::write(t.warm.cache_path(), &bytes).unwrap();
        t.timing.clear();
        let warm = t.warm.run(&verbose, &[], &mut t.timing);
        let cold = t.cold.run(&verbose, &["--no-cache"], &mut vec![]);
        let notice = format!("depmod: NOTICE: $ROOT/lib/modules/{VERSION}/{NAME}: not used (");
        let (first, rest) = warm.stderr.split_once('\n').unwrap();
        assert!(first.starts_with(&notice) && first.contains(&why), "{what}: {first}");
        assert!(first.ends_with("); every module is read"), "{what}: {first}");
        assert_eq!(
            (warm.exit, &warm.stdout, rest),
            (cold.exit, &cold.stdout, &cold.stderr[..]),
            "{what}"
        );
        assert_eq!(t.loaded(), "0 files recalled, 4 read", "{what}");
        compare_dirs(&t.cold.moddir(), &t.warm.moddir(), &OUTPUTS).unwrap();
        // Replaced by a good cache, which the next run uses.
        assert_eq!(t.warm.with_cache(|c| c.len()), 4, "{what}");
        t.run(DEFAULT);
        assert_eq!(t.loaded(), "4 files recalled, 0 read", "{what}");
    }
    // A directory in its place can be neither read nor replaced: the run still succeeds.
    fs::remove_file(t.warm.cache_path()).unwrap();
    fs::create_dir(t.warm.cache_path()).unwrap();
    t.apply(|tree| {
        fs::write(tree.moddir().join("kernel/new.ko"), spec(&["alias=new"], &[], &[]).build())
            .unwrap()
    });
    let warm = t.warm.run(&verbose, &[], &mut vec![]);
    let cold = t.cold.run(&verbose, &["--no-cache"], &mut vec![]);
    let cache = format!("$ROOT/lib/modules/{VERSION}/{NAME}");
    assert_eq!(
        warm.stderr,
        format!(
            "depmod: NOTICE: {cache}: not used (Is a directory); every module is read\n{}\
             depmod: NOTICE: could not write {cache}: Is a directory (the indexes are written)\n",
            cold.stderr
        )
    );
    assert_eq!((warm.exit, &warm.stdout), (Some(0), &cold.stdout));
    compare_dirs(&t.cold.moddir(), &t.warm.moddir(), &OUTPUTS).unwrap();
}

/// What the options and the configuration decide is computed on every run: each case runs
/// from a cache made by a plain run, then plain runs follow (which may find the indexes
/// current again); every run agrees with one without the cache.
#[test]
fn options_and_configuration_are_applied_with_a_warm_cache() {
    let mut t = Twin::new("options");
    t.start_cache();
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = vec!["-b", "$ROOT", "-C", "$ROOT/etc/depmod.d"];
        a.extend_from_slice(extra);
        a
    };
    // System.map without a_fn: -e reports it missing. Module.symvers with a wrong CRC for printk.
    t.apply(|tree| {
        tree.write("System.map", b"ffffffff81000000 T printk\nffffffff81000010 T _printk\n");
        tree.write("Module.symvers", b"0x00000001\tprintk\tvmlinux\tEXPORT_SYMBOL\t\n");
    });
    let cases: Vec<(&str, Vec<&str>, &[&str])> = vec![
        ("-e -F", with(&["-e", "-F", "$ROOT/System.map", VERSION]), &[]),
        ("-e -E", with(&["-e", "-E", "$ROOT/Module.symvers", VERSION]), &[]),
        ("-P", with(&["-P", "_", "-F", "$ROOT/System.map", "-e", VERSION]), &[]),
        ("-e alone", with(&["-e", VERSION]), &[]),
        ("-w", with(&["-w", VERSION]), &[]),
        ("-v", with(&["-v", VERSION]), &[]),
        ("-n", with(&["-n", VERSION]), &[]),
        ("-o", with(&["-o", "$ROOT/out", VERSION]), &["out/lib/modules/4.4.4"]),
        ("-m", with(&["-m", "usr/lib/modules", VERSION]), &["usr/lib/modules/4.4.4"]),
        (
            "module files",
            with(&[
                VERSION,
                "$ROOT/lib/modules/4.4.4/kernel/a.ko",
                "$ROOT/lib/modules/4.4.4/kernel/b.ko",
            ]),
            &[],
        ),
    ];
    t.apply(|tree| {
        let usr = tree.root.join("usr/lib/modules");
        fs::create_dir_all(&usr).unwrap();
        let ok = Command::new("cp").arg("-a").arg(tree.moddir()).arg(&usr).status().unwrap();
        assert!(ok.success());
    });
    for (what, args, outdirs) in &cases {
        t.run_in(args, outdirs);
        for _ in 0..2 {
            t.run(DEFAULT);
        }
        assert!(
            t.kept_indexes(),
            "{what}: the second plain run after it finds the indexes current"
        );
    }
    // The configuration: an `updates` module that wins over the built-in one once configured,
    // then excluded; an override.
    t.apply(|tree| {
        let updates = spec(&["alias=a-from-updates"], &["a_fn"], &[]).build();
        tree.write(&format!("lib/modules/{VERSION}/updates/a.ko"), &updates);
    });
    settle();
    t.run(DEFAULT);
    let configs: [&[u8]; 4] = [
        b"search updates built-in\n",
        b"search built-in updates\n",
        b"override a * updates\n",
        b"exclude updates\n",
    ];
    for conf in configs {
        t.apply(|tree| tree.write("etc/depmod.d/test.conf", conf));
        t.run(DEFAULT);
        t.run(DEFAULT);
        assert!(t.kept_indexes(), "{}", String::from_utf8_lossy(conf));
    }
    // modules.order: another order, then one line fewer.
    for order in ["kernel/sub/d.ko\nkernel/b.ko\nkernel/a.ko\nkernel/sub/c.ko\n", "kernel/b.ko\n"] {
        t.apply(|tree| {
            tree.write(&format!("lib/modules/{VERSION}/modules.order"), order.as_bytes())
        });
        t.run(DEFAULT);
        t.run(DEFAULT);
    }
    // modules.builtin and modules.builtin.modinfo.
    t.apply(|tree| {
        tree.write(&format!("lib/modules/{VERSION}/modules.builtin"), b"kernel/fs/xfs.ko\n");
        tree.write(
            &format!("lib/modules/{VERSION}/modules.builtin.modinfo"),
            b"xfs.alias=fs-xfs\0",
        );
    });
    t.run(DEFAULT);
    assert!(fs::read(t.warm.moddir().join("modules.builtin.bin")).unwrap().len() > 20);
    // -A after a module is added (newer than modules.dep): the tree is indexed again. The new
    // file is made a second newer than modules.dep: file times come from a coarse clock, and the
    // run just before may have written modules.dep in the tick the file is written in.
    t.apply(|tree| {
        let module = spec(&["alias=e"], &[], &[]).build();
        tree.write(&format!("lib/modules/{VERSION}/kernel/e.ko"), &module);
        let dep = fs::metadata(tree.moddir().join("modules.dep")).unwrap().modified().unwrap();
        let e = fs::File::options().write(true).open(tree.moddir().join("kernel/e.ko")).unwrap();
        e.set_modified(dep + Duration::from_secs(1)).unwrap();
    });
    t.run(&with(&["-A", VERSION]));
    assert!(t.warm.read("modules.alias").contains("alias e e\n"));
}

/// A change made to an index file.
type Edit<'a> = &'a dyn Fn(&Path);

/// Extra arguments and environment of a run.
type Extra<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// A run on an unchanged tree leaves the indexes as they are (modules.dep touched); an index
/// edited in place, removed or made a link is made again.
#[test]
fn indexes_are_left_only_when_they_are_the_ones_installed() {
    let mut t = Twin::new("current");
    t.start_cache();
    let dir = t.warm.moddir();
    let identity = |name: &str| {
        let m = fs::symlink_metadata(dir.join(name)).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before: Vec<_> = OUTPUTS.iter().map(|n| identity(n)).collect();
    std::thread::sleep(Duration::from_millis(20));
    t.run(DEFAULT);
    assert!(t.kept_indexes());
    for (name, b) in OUTPUTS.iter().zip(&before) {
        let a = identity(name);
        assert_eq!(a.0, b.0, "{name} was replaced");
        if *name == "modules.dep" {
            assert!((a.1, a.2) > (b.1, b.2), "modules.dep was not touched (-A compares its time)");
        } else {
            assert_eq!(a, *b, "{name} was written");
        }
    }
    // -A: nothing newer than modules.dep.
    t.run(&["-A", "-b", "$ROOT", "-C", "$ROOT/etc/depmod.d", VERSION]);
    let edits: [(&str, Edit); 5] = [
        ("modules.alias edited in place", &|p: &Path| {
            let mut text = fs::read(p).unwrap();
            let at = text.iter().position(|&c| c == b'a').unwrap();
            text[at] = b'x';
            rewrite_in_place(p, &text, fs::metadata(p).unwrap().modified().unwrap());
        }),
        ("modules.dep edited in place, its time put back", &|p: &Path| {
            let mut text = fs::read(p).unwrap();
            let at = text.iter().position(|&c| c == b'a').unwrap();
            text[at] = b'x';
            rewrite_in_place(p, &text, fs::metadata(p).unwrap().modified().unwrap());
        }),
        ("modules.symbols removed", &|p: &Path| fs::remove_file(p).unwrap()),
        ("modules.devname made a link", &|p: &Path| {
            let copy = p.with_extension("copy");
            fs::copy(p, &copy).unwrap();
            fs::remove_file(p).unwrap();
            std::os::unix::fs::symlink(&copy, p).unwrap();
        }),
        ("modules.softdep made another mode", &|p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(p, fs::Permissions::from_mode(0o600)).unwrap();
        }),
    ];
    for (what, edit) in edits {
        let name = what.split(' ').next().unwrap();
        edit(&t.warm.moddir().join(name));
        edit(&t.cold.moddir().join(name));
        t.run(DEFAULT);
        assert!(!t.kept_indexes(), "{what}: the indexes were left");
        assert!(fs::symlink_metadata(t.warm.moddir().join(name)).unwrap().is_file(), "{what}");
        t.run(DEFAULT);
        assert!(t.kept_indexes(), "{what}: the next run finds them current");
    }
}

/// A module replaced by another build that declares the same (a changed byte outside what
/// depmod reads) is read again; the indexes are left as they are, and its new stamp recorded.
#[test]
fn another_build_of_a_module_leaves_the_indexes() {
    let mut t = Twin::new("another-build");
    t.start_cache();
    t.apply(|tree| {
        let path = tree.moddir().join("kernel/a.ko");
        let mut data = fs::read(&path).unwrap();
        data.extend_from_slice(b"another build");
        fs::write(&path, data).unwrap();
    });
    t.run(DEFAULT);
    assert_eq!(t.loaded(), "3 files recalled, 1 read");
    assert!(t.kept_indexes());
    settle();
    t.run(DEFAULT);
    assert_eq!(t.loaded(), "3 files recalled, 1 read");
    // Settled now, its new stamp is recorded.
    t.run(DEFAULT);
    assert_eq!(t.loaded(), "4 files recalled, 0 read");
    assert!(t.kept_indexes());
}

/// Directory listings: the cache records that of each settled directory but the one the
/// indexes are written to, and a directory whose stamp did not change is not listed again. Any
/// change to what a directory holds is found: a module added (the directory's modification time
/// then put back), renamed, a directory moved in another's place, a symbolic link (a directory
/// with one is not recorded), a name excluded by the configuration.
#[test]
fn directories_are_listed_again_when_they_change() {
    let mut t = Twin::new("listings");
    t.start_cache();
    let dir = |rel: &str| format!("{}/{rel}", t.warm.moddir().display()).into_bytes();
    let (top, kernel, sub) = (dir(""), dir("kernel/"), dir("kernel/sub/"));
    t.warm.with_cache(|c| {
        assert!(c.listing(&top).is_none(), "the output directory's listing is not recorded");
        assert!(c.listing(&kernel).is_some() && c.listing(&sub).is_some());
    });
    assert_eq!(t.listed(), "2 recalled, 0 read");
    // The run after a change, with the listings it recalled and read; then, once the change is
    // settled, the run after the one that records it.
    let settled_run = |t: &mut Twin, what: &str, listed: &str, then: &str| {
        t.run(DEFAULT);
        assert!(!t.kept_indexes(), "{what}: the indexes were left");
        assert_eq!(t.listed(), listed, "{what}");
        settle();
        t.run(DEFAULT);
        t.run(DEFAULT);
        assert!(t.kept_indexes(), "{what}: then current");
        assert_eq!(t.listed(), then, "{what}: then");
    };
    // A module added to kernel/sub, whose modification time is then put back: its change time
    // moved.
    t.apply(|tree| {
        let sub = tree.moddir().join("kernel/sub");
        let then = fs::metadata(&sub).unwrap().modified().unwrap();
        tree.write(
            &format!("lib/modules/{VERSION}/kernel/sub/e.ko"),
            &spec(&["alias=e"], &[], &[]).build(),
        );
        fs::File::open(&sub).unwrap().set_modified(then).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().modified().unwrap(), then);
    });
    settled_run(&mut t, "added", "1 recalled, 1 read", "2 recalled, 0 read");
    assert!(t.warm.read("modules.alias").contains("alias e e\n"));
    // Renamed within a directory.
    t.apply(|tree| {
        let sub = tree.moddir().join("kernel/sub");
        fs::rename(sub.join("e.ko"), sub.join("f.ko")).unwrap();
    });
    settled_run(&mut t, "renamed", "1 recalled, 1 read", "2 recalled, 0 read");
    assert!(t.warm.read("modules.dep").contains("kernel/sub/f.ko:"));
    // Another directory moved in kernel/sub's place, with other modules.
    t.apply(|tree| {
        let kernel = tree.moddir().join("kernel");
        fs::create_dir(kernel.join("other")).unwrap();
        fs::write(kernel.join("other/g.ko"), spec(&["alias=g"], &[], &[]).build()).unwrap();
        fs::rename(kernel.join("sub"), tree.root.join("old-sub")).unwrap();
        fs::rename(kernel.join("other"), kernel.join("sub")).unwrap();
    });
    settled_run(&mut t, "moved in", "0 recalled, 2 read", "2 recalled, 0 read");
    assert!(t.warm.read("modules.dep").contains("kernel/sub/g.ko:"));
    assert!(!t.warm.read("modules.dep").contains("kernel/sub/d.ko:"));
    // A name excluded by the configuration, in a listing recalled; then included again.
    for exclude in [true, false] {
        t.apply(|tree| match exclude {
            true => tree.write("etc/depmod.d/exclude.conf", b"exclude g.ko\n"),
            false => fs::remove_file(tree.root.join("etc/depmod.d/exclude.conf")).unwrap(),
        });
        t.run(DEFAULT);
        assert_eq!(t.warm.read("modules.dep").contains("kernel/sub/g.ko:"), !exclude);
        assert_eq!(t.listed(), "2 recalled, 0 read");
    }
    // A symbolic link to a module in kernel/: the directory's listing is no longer recorded.
    t.apply(|tree| {
        std::os::unix::fs::symlink("a.ko", tree.moddir().join("kernel/link.ko")).unwrap();
    });
    settled_run(&mut t, "symbolic link", "1 recalled, 0 read", "1 recalled, 0 read");
    t.warm.with_cache(|c| assert!(c.listing(&kernel).is_none(), "a listing with a link"));
}

/// Modules added and removed, settled or not: the indexes follow, and are never left stale.
#[test]
fn added_and_removed_modules() {
    let mut t = Twin::new("added-removed");
    t.start_cache();
    let new = format!("lib/modules/{VERSION}/kernel/new.ko");
    for settled in [false, true] {
        t.apply(|tree| tree.write(&new, &spec(&["alias=new-one"], &["new_fn"], &["b_fn"]).build()));
        if settled {
            settle();
        }
        t.run(DEFAULT);
        assert!(t.warm.read("modules.dep").contains("kernel/new.ko: kernel/b.ko kernel/a.ko\n"));
        t.run(DEFAULT);
        t.apply(|tree| fs::remove_file(tree.root.join(&new)).unwrap());
        t.run(DEFAULT);
        assert!(!t.warm.read("modules.dep").contains("new.ko"));
        t.run(DEFAULT);
        t.run(DEFAULT);
        assert!(t.kept_indexes());
    }
}

/// Where a cache is started and written: under `-b`, only where one is (an empty file asks for
/// one); never with `-n`, module files named, `--no-cache` or `DEPMOD_NO_CACHE=1` (which do not
/// read it either).
#[test]
fn where_a_cache_is_written() {
    let mut t = Twin::new("where");
    settle();
    for _ in 0..3 {
        t.run(DEFAULT);
        assert!(!t.warm.cache_path().exists(), "a cache was started in a tree given with -b");
    }
    let garbage = vec![0x5au8; 64];
    let runs: [Extra; 5] = [
        (&["-n"], &[]),
        (&["$ROOT/lib/modules/4.4.4/kernel/a.ko"], &[]),
        (&["--no-cache"], &[]),
        (&[], &[("DEPMOD_NO_CACHE", "1")]),
        (&[], &[("DEPMOD_NO_CACHE", "yes")]),
    ];
    for (extra, env) in runs {
        fs::write(t.warm.cache_path(), &garbage).unwrap();
        let mut args = t.warm.args(&["-v", "-b", "$ROOT", "-C", "$ROOT/etc/depmod.d", VERSION]);
        args.extend(t.warm.args(extra));
        let out = Depmod::Ours.command(&args).envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reads = stderr.contains("NOTICE");
        let expect_read = !extra.contains(&"--no-cache") && env.is_empty();
        assert_eq!(reads, expect_read, "{extra:?} {env:?}: {stderr}");
        assert_eq!(
            fs::read(t.warm.cache_path()).unwrap(),
            garbage,
            "{extra:?} {env:?} wrote a cache"
        );
    }
    // DEPMOD_NO_CACHE=0 or empty leaves it on: the garbage is replaced.
    for value in ["0", ""] {
        fs::write(t.warm.cache_path(), &garbage).unwrap();
        let args = t.warm.args(DEFAULT);
        assert!(
            Depmod::Ours.command(&args).env("DEPMOD_NO_CACHE", value).status().unwrap().success()
        );
        assert_eq!(t.warm.with_cache(|c| c.len()), 4);
    }
}

/// Runs the program and arguments after `--` in a private root (a tmpfs) holding the C
/// library, the program's directory, and the tree given bound at /lib/modules.
const SYSTEM_ROOT: &str = r#"set -e
newroot=$1 tree=$2 bindir=$3 libdir=$4; shift 4
mount --make-rprivate /
mount -t tmpfs tmpfs "$newroot"
for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
    mkdir -p "$newroot/$d"; mount --bind "$libdir" "$newroot/$d"
done
ln -s /lib/x86_64-linux-gnu "$newroot/lib64"
mkdir -p "$newroot/lib/modules" "$newroot$bindir"
mount --bind "$tree" "$newroot/lib/modules"
mount --bind "$bindir" "$newroot$bindir"
exec chroot "$newroot" "$@"
"#;

/// The system's own tree (no `-b`) gets a cache from its second run: the first finds no
/// indexes, as in an image being built. Run in a private root whose /lib/modules is the tree.
#[test]
fn the_system_tree_gets_a_cache_from_its_second_run() {
    let ld = fs::canonicalize("/lib64/ld-linux-x86-64.so.2");
    let (true, Some(_), Ok(ld)) = (common::is_root(), common::which("unshare"), ld) else {
        common::missing("root, unshare and the x86-64 loader, to run depmod in a private root");
        return;
    };
    let t = Twin::new("system");
    settle();
    let newroot = t.warm.root.parent().unwrap().join("newroot");
    fs::create_dir_all(&newroot).unwrap();
    let depmod = Path::new(env!("CARGO_BIN_EXE_depmod"));
    let run = || {
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c", SYSTEM_ROOT, "sh"])
            .arg(&newroot)
            .arg(t.warm.root.join("lib/modules"))
            .arg(depmod.parent().unwrap())
            .arg(ld.parent().unwrap())
            .arg(depmod)
            .args(["-C", "/etc/depmod.d", VERSION])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run();
    assert!(t.warm.moddir().join("modules.dep").exists());
    assert!(!t.warm.cache_path().exists(), "a first run (no indexes yet) started a cache");
    run();
    let n = t.warm.with_cache_of(format!("/lib/modules/{VERSION}").as_bytes(), |c| c.len());
    assert_eq!(n, 4, "the second run started a cache");
}

/// A deterministic generator (xorshift) for the series of changes below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// A module of the series: aliases and exports drawn from small pools, so that modules share
/// aliases (a key with values from many modules) and exports (a symbol whose owner changes when
/// its last exporter goes), or needs of those exports.
fn series_module(rng: &mut Rng) -> Vec<u8> {
    let aliases: Vec<String> = (0..rng.below(4))
        .map(|_| match rng.below(3) {
            0 => format!("alias=pci:v00008086d0000{:04X}sv*sd*bc*sc*i*", rng.below(12)),
            1 => format!("alias=usb:v{:04X}p*d*dc*", rng.below(6)),
            _ => format!("alias=platform:dev-{}", rng.below(8)),
        })
        .collect();
    // A module exports or needs symbols, never both: no dependency cycles.
    let symbols: Vec<String> =
        (0..rng.below(3)).map(|_| format!("sym_{}", rng.below(10))).collect();
    let (exports, imports) = match rng.below(2) {
        0 => (symbols, vec![]),
        _ => (vec![], symbols),
    };
    let modinfo: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let exports: Vec<&str> = exports.iter().map(String::as_str).collect();
    let imports: Vec<&str> = imports.iter().map(String::as_str).collect();
    spec(&modinfo, &exports, &imports).build()
}

/// A series of random changes (modules added, removed, replaced by other builds with other
/// aliases and exports), each settled before the run: the warm runs patch `modules.dep.bin`,
/// `modules.alias`, `modules.alias.bin` and `modules.symbols.bin` from the previous run's (or
/// leave one in place, when the change does not reach it), and every index equals the cold
/// run's.
#[test]
fn a_series_of_changes_patches_the_indexes_as_a_full_run_builds_them() {
    let mut t = Twin::new("series");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let dir = format!("lib/modules/{VERSION}/kernel/series");
    let mut present: Vec<usize> = Vec::new();
    let mut next = 0;
    let mut add = |t: &Twin, rng: &mut Rng, present: &mut Vec<usize>| {
        let data = series_module(rng);
        t.apply(|tree| tree.write(&format!("{dir}/s{next}.ko"), &data));
        present.push(next);
        next += 1;
    };
    for _ in 0..24 {
        add(&t, &mut rng, &mut present);
    }
    fs::write(t.warm.cache_path(), b"").unwrap();
    settle();
    t.run(DEFAULT);
    t.run(DEFAULT);
    assert!(t.kept_indexes());
    let mut patched = 0;
    let rounds = 8;
    let patchable =
        ["modules.dep.bin", "modules.alias", "modules.alias.bin", "modules.symbols.bin"];
    for _ in 0..rounds {
        for _ in 0..1 + rng.below(3) {
            match rng.below(3) {
                0 => add(&t, &mut rng, &mut present),
                1 if !present.is_empty() => {
                    let gone = present.remove(rng.below(present.len()));
                    t.apply(|tree| {
                        fs::remove_file(tree.root.join(format!("{dir}/s{gone}.ko"))).unwrap()
                    });
                }
                _ if !present.is_empty() => {
                    let m = present[rng.below(present.len())];
                    let data = series_module(&mut rng);
                    t.apply(|tree| tree.write(&format!("{dir}/s{m}.ko"), &data));
                }
                _ => {}
            }
        }
        settle();
        t.run(DEFAULT);
        let line = t.timing.iter().find(|l| l.contains("outputs (")).expect("an outputs line");
        let built = &line[line.find("built: ").unwrap() + 7..line.rfind(')').unwrap()];
        patched += usize::from(built.split(' ').all(|name| !patchable.contains(&name)));
    }
    assert_eq!(patched, rounds, "every round patches the four indexes: {:?}", t.timing);
}

/// The indexes a change of modules leaves as they are (the modules added or gone have none of
/// their entries, or they come from the builtin inputs only) stay in place, not made again; the
/// others are patched or built; every index equals the cold run's.
#[test]
fn indexes_the_change_does_not_reach_stay_in_place() {
    let mut t = Twin::new("in-place");
    t.start_cache();
    let in_place = |t: &Twin| {
        let line = t.timing.iter().find(|l| l.contains("outputs (")).expect("an outputs line");
        // Which are patched depends on the shape of each index (a change at its root is not).
        line[line.find(", ").unwrap() + 2..line.find(';').unwrap()].to_string()
    };
    let dir = format!("lib/modules/{VERSION}");
    // A module with no aliases, dependencies or exports: only its place and its needs are new.
    let plain = spec(&["license=GPL"], &[], &["a_fn"]).build();
    t.apply(|tree| tree.write(&format!("{dir}/kernel/e.ko"), &plain));
    settle();
    t.run(DEFAULT);
    assert_eq!(in_place(&t), "7 in place");
    // Soft and weak dependencies and device-node aliases go; no export does.
    t.apply(|tree| fs::remove_file(tree.moddir().join("kernel/sub/d.ko")).unwrap());
    settle();
    t.run(DEFAULT);
    assert_eq!(in_place(&t), "3 in place");
    // Exports and aliases go; no soft or weak dependency is left to go.
    t.apply(|tree| fs::remove_file(tree.moddir().join("kernel/a.ko")).unwrap());
    settle();
    t.run(DEFAULT);
    assert_eq!(in_place(&t), "4 in place");
}
