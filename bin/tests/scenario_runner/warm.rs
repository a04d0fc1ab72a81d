//! The module cache in the scenarios: how a run of ours is made warm (`DEPMOD_RS_WARM=1`), and
//! how the cache file is treated when runs are compared.
//!
//! A warm run is run twice: the first time (its outcome discarded) it writes a cache (asked for
//! by an empty `modules.cache.bin` in the module directory: the scenarios give `-b`), then
//! everything under the root is put back as it was (contents, modes, times), the cache aside;
//! the second run, compared, starts from the same state as kmod's, with a warm cache. Modules
//! are settled first (a cache keeps only files changed more than a second before its run).
//!
//! Whatever the mode, a cache is never in kmod's tree, and in ours is either the empty file that
//! asks for one or a valid cache of this build; it is taken out of what is compared.

use depmod_core::bytes::Shared;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use depmod_core::cache::{Cache, Identity};

use crate::outcome::{Entry, is_module_file};

/// The cache's name.
pub const CACHE: &str = "modules.cache.bin";
/// The identity this build records (bin/src/cache.rs).
const PROGRAM: &str =
    concat!("depmod-rs ", env!("CARGO_PKG_VERSION"), " build ", env!("DEPMOD_BUILD_ID"));

/// Whether runs of ours are made warm.
pub fn enabled() -> bool {
    std::env::var_os("DEPMOD_RS_WARM").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Sleeps until a second and a little has passed since `changed`, so that files changed then
/// are settled.
pub fn settle_since(changed: Instant) {
    let wait = Duration::from_millis(1100).saturating_sub(changed.elapsed());
    std::thread::sleep(wait);
}

/// Asks for a cache in the module directory of `root` (an empty file), unless one is there.
pub fn ask_for_cache(root: &Path, version: &str) {
    let dir = root.join("lib/modules").join(version);
    if dir.is_dir() && !dir.join(CACHE).exists() {
        fs::write(dir.join(CACHE), b"").unwrap();
    }
}

/// One saved path.
enum Saved {
    File {
        data: Vec<u8>,
        mode: u32,
        mtime: SystemTime,
    },
    Dir {
        mode: u32,
    },
    Link(PathBuf),
    /// A module file or a special file: depmod never changes them.
    Kept,
}

/// Everything under a root but the caches, to be put back.
pub struct Snapshot(BTreeMap<PathBuf, Saved>);

fn is_cache(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == CACHE)
}

impl Snapshot {
    pub fn take(root: &Path) -> Snapshot {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Saved>) {
            let Ok(entries) = fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                let m = fs::symlink_metadata(&p).unwrap();
                let saved = if is_cache(&p) {
                    continue;
                } else if m.file_type().is_symlink() {
                    Saved::Link(fs::read_link(&p).unwrap())
                } else if m.is_dir() {
                    walk(root, &p, out);
                    Saved::Dir { mode: m.mode() & 0o7777 }
                } else if !m.is_file() || is_module_file(&rel.to_string_lossy()) {
                    Saved::Kept
                } else {
                    let data = fs::read(&p).unwrap_or_default();
                    Saved::File { data, mode: m.mode() & 0o7777, mtime: m.modified().unwrap() }
                };
                out.insert(rel, saved);
            }
        }
        let mut out = BTreeMap::new();
        walk(root, root, &mut out);
        Snapshot(out)
    }

    /// Puts everything under `root` back as it was (caches aside).
    pub fn restore(&self, root: &Path) {
        // What was not there goes, deepest first.
        let now = Snapshot::take(root);
        for rel in now.0.keys().rev() {
            if !self.0.contains_key(rel) {
                let p = root.join(rel);
                let _ = fs::remove_file(&p).or_else(|_| fs::remove_dir_all(&p));
            }
        }
        for (rel, saved) in &self.0 {
            let p = root.join(rel);
            match saved {
                Saved::Kept => {}
                Saved::Dir { mode } => {
                    fs::create_dir_all(&p).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                }
                Saved::Link(target) => {
                    if fs::read_link(&p).ok().as_ref() != Some(target) {
                        let _ = fs::remove_file(&p).or_else(|_| fs::remove_dir_all(&p));
                        std::os::unix::fs::symlink(target, &p).unwrap();
                    }
                }
                Saved::File { data, mode, mtime } => {
                    let meta = fs::symlink_metadata(&p).ok();
                    let same = meta.as_ref().is_some_and(|m| {
                        m.is_file()
                            && m.mode() & 0o7777 == *mode
                            && m.modified().ok() == Some(*mtime)
                            && fs::read(&p).ok().as_ref() == Some(data)
                    });
                    if same {
                        continue;
                    }
                    if meta.as_ref().is_some_and(|m| !m.is_file()) {
                        let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
                    }
                    // A file made read-only by the scenario is written through its mode.
                    if meta.is_some() {
                        let _ = fs::set_permissions(&p, fs::Permissions::from_mode(0o644));
                    }
                    fs::write(&p, data).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
                    let f = fs::File::options().write(true).open(&p);
                    let f = f.or_else(|_| fs::File::open(&p)).unwrap();
                    f.set_modified(*mtime).unwrap();
                }
            }
        }
    }
}

/// What the warm runs took from the cache, from their `DEPMOD_TIMING` lines.
#[derive(Debug, Default)]
pub struct Use {
    pub runs: usize,
    pub recalled: usize,
    pub read: usize,
    /// Runs that found the indexes in place current.
    pub current: usize,
}

impl Use {
    /// Adds what the timing lines in `stderr` say, and returns `stderr` without them.
    pub fn take_timing(&mut self, stderr: &[u8]) -> Vec<u8> {
        let mut rest = Vec::new();
        let mut seen = false;
        for line in stderr.split_inclusive(|&c| c == b'\n') {
            let Some(timing) = line.strip_prefix(b"depmod: timing: ") else {
                rest.extend_from_slice(line);
                continue;
            };
            seen = true;
            let timing = String::from_utf8_lossy(timing);
            if let Some(counts) = timing.split_once('(').and_then(|(_, c)| c.split_once(')')) {
                let numbers: Vec<usize> =
                    counts.0.split(' ').filter_map(|w| w.parse().ok()).collect();
                if let [recalled, read] = numbers[..] {
                    self.recalled += recalled;
                    self.read += read;
                }
            }
            self.current += usize::from(timing.starts_with("indexes current"));
        }
        self.runs += usize::from(seen);
        rest
    }
}

impl std::fmt::Display for Use {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} module files recalled and {} read in {} runs, {} of which found the indexes current",
            self.recalled, self.read, self.runs, self.current
        )
    }
}

/// Takes the caches out of a run's files; each must be the empty file asking for one or a
/// valid cache of this build (checked against the module directory it records).
pub fn take_caches(files: &mut BTreeMap<String, Entry>) -> Result<usize, String> {
    let caches: Vec<String> = files.keys().filter(|k| is_cache(Path::new(k))).cloned().collect();
    for path in &caches {
        let entry = files.remove(path).unwrap();
        check(&entry.data).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(caches.len())
}

/// Whether `data` is empty or a valid cache of this build.
fn check(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    // The header (32 bytes), the program and the module directory, each after its length.
    let field = |at: usize| -> Option<(&[u8], usize)> {
        let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
        Some((data.get(at + 4..at + 4 + len)?, at + 4 + len))
    };
    let (_, next) = field(32).ok_or("no program field")?;
    let (tree, _) = field(next).ok_or("no module directory field")?;
    let bytes: Shared = data.to_vec().into();
    let identity = Identity { program: PROGRAM.as_bytes(), tree };
    Cache::parse(&bytes, identity).map(drop).map_err(|e| e.to_string())
}
