//! Shared helpers of the integration tests: the reference kmod, real trees, scratch copies, and
//! comparisons that show the first differing lines.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use depmod_core::index::reader::Index;

pub mod synth;

/// The 11 files depmod writes, in kmod's order.
pub const OUTPUTS: [&str; 11] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.weakdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("bin/ has a parent").to_path_buf()
}

/// Whether this is a CI run (`CI=true`), where a missing tool is a failure, not a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Handles a missing prerequisite: fails under CI, otherwise prints a loud skip notice.
/// Returns `false` so callers can `return` early.
pub fn missing(what: &str) -> bool {
    if in_ci() {
        panic!("required for this test and missing under CI=true: {what}");
    }
    eprintln!("\n*** SKIPPED: {what} is not available (set CI=true to make this a failure) ***\n");
    false
}

/// Runs `scripts/fetch ARGS` (which downloads into the cache when needed); its output line.
pub fn fetch(args: &[&str]) -> Result<String, String> {
    let out = Command::new(repo().join("scripts/fetch"))
        .args(args)
        .output()
        .map_err(|e| format!("scripts/fetch: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/fetch {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// kmod 34.2's extracted root, fetched on first use.
pub fn kmod34() -> Option<PathBuf> {
    match fetch(&["kmod34"]) {
        Ok(p) => Some(PathBuf::from(p)),
        Err(e) => {
            missing(&format!("kmod 34.2 (scripts/fetch kmod34 failed: {e})"));
            None
        }
    }
}

/// A real module tree: the extracted package root and the kernel release.
pub fn tree(meta: &str) -> Option<(PathBuf, String)> {
    match fetch(&["tree", meta]).and_then(|r| Ok((r, fetch(&["tree-version", meta])?))) {
        Ok((root, version)) => Some((PathBuf::from(root), version)),
        Err(e) => {
            missing(&format!("the Debian {meta} module tree ({e})"));
            None
        }
    }
}

/// The Debian amd64 kernel the suites take as their main real tree: `DEPMOD_RS_TREE` when set —
/// a meta package's suffix (`rt-amd64` for `linux-image-rt-amd64`) or a kernel package's
/// (`6.1.0-50-amd64`) — otherwise `amd64`, Debian 12's current standard kernel. Nothing the
/// suites expect depends on which one it is.
pub fn main_tree_name() -> String {
    std::env::var("DEPMOD_RS_TREE").ok().filter(|t| !t.is_empty()).unwrap_or_else(|| "amd64".into())
}

/// [`main_tree_name`]'s tree: the extracted package root and the kernel release.
pub fn main_tree() -> Option<(PathBuf, String)> {
    tree(&main_tree_name())
}

/// A real module tree recompressed with `format` (`xz`, `zst`, `gz`): root and kernel release.
pub fn recompressed(meta: &str, format: &str) -> Option<(PathBuf, String)> {
    match fetch(&["recompressed", meta, format])
        .and_then(|r| Ok((r, fetch(&["tree-version", meta])?)))
    {
        Ok((root, version)) => Some((PathBuf::from(root), version)),
        Err(e) => {
            missing(&format!("the Debian {meta} tree recompressed with {format} ({e})"));
            None
        }
    }
}

/// The static musl build of this depmod (the one initramfs images carry: its own allocator and
/// decoder flags), built with the cargo running the tests.
pub fn static_depmod() -> Option<PathBuf> {
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let out = Command::new(cargo)
        .args(["build", "--release", "--target", TARGET, "-p", "depmod", "--manifest-path"])
        .arg(repo().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .output();
    match out {
        Ok(out) if out.status.success() => Some(target_dir.join(TARGET).join("release/depmod")),
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = err.lines().rev().take(8).collect::<Vec<_>>();
            missing(&format!(
                "a static depmod (rustup target add {TARGET}; apt-get install musl-tools): {}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
            None
        }
        Err(e) => {
            missing(&format!("cargo, to build the static depmod: {e}"));
            None
        }
    }
}

/// Which depmod to run.
#[derive(Clone, Debug)]
pub enum Depmod {
    Ours,
    /// Another build of this depmod (the static one).
    Build(PathBuf),
    /// kmod 34.2 from this extracted root, run through its own loader.
    Kmod(PathBuf),
    /// A build of this depmod for another architecture, run by this emulator (qemu-user).
    Emulated {
        qemu: PathBuf,
        binary: PathBuf,
    },
}

impl Depmod {
    /// A command running this depmod with `args`.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = match self {
            Depmod::Ours => Command::new(env!("CARGO_BIN_EXE_depmod")),
            Depmod::Build(path) => Command::new(path),
            Depmod::Emulated { qemu, binary } => {
                let mut c = Command::new(qemu);
                c.arg(binary);
                c
            }
            Depmod::Kmod(root) => {
                let lib = root.join("usr/lib/x86_64-linux-gnu");
                let mut c = Command::new(lib.join("ld-linux-x86-64.so.2"));
                c.arg("--library-path").arg(&lib).arg("--argv0").arg("depmod");
                c.arg(root.join("usr/bin/kmod"));
                c
            }
        };
        cmd.args(args);
        cmd
    }

    /// Runs with `args`, returning the output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(args).output().expect("depmod runs")
    }
}

/// Runs `depmod` on a hard-linked copy of `root`'s tree under `work/name`; returns the module
/// directory of the copy and the normalised stderr.
///
/// With `DEPMOD_RS_WARM=1`, a build of ours runs from a warm module cache: on the same copy,
/// once its modules are settled, a first run writes the cache (an empty `modules.cache.bin`
/// asks for one under `-b`), its indexes are removed, and the run returned recalls every module
/// and directory listing from it (checked with its `DEPMOD_TIMING` lines, taken out of stderr).
pub fn index_copy(
    depmod: &Depmod,
    root: &Path,
    version: &str,
    work: &Path,
    name: &str,
    threads: Option<&str>,
) -> (PathBuf, String) {
    let config = work.join("empty-depmod.d");
    fs::create_dir_all(&config).unwrap();
    let moddir = format!("lib/modules/{version}");
    let base = work.join(name);
    let warm = warm() && !matches!(depmod, Depmod::Kmod(_));
    // A warm run holds the links still from its copy to its last run (see `tree_links`).
    let links = tree_links();
    link_tree_locked(&root.join(&moddir), &base.join(&moddir));
    let links = warm.then_some(links);
    let command = || {
        let mut cmd = depmod.command([
            "-b".as_ref(),
            base.as_os_str(),
            "-C".as_ref(),
            config.as_os_str(),
            version.as_ref(),
        ]);
        if let Some(t) = threads {
            cmd.env("DEPMOD_THREADS", t);
        }
        cmd
    };
    if warm {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::write(base.join(&moddir).join("modules.cache.bin"), b"").unwrap();
        assert!(command().status().expect("depmod runs").success());
        for name in OUTPUTS {
            fs::remove_file(base.join(&moddir).join(name)).unwrap();
        }
    }
    let mut cmd = command();
    if warm {
        cmd.env("DEPMOD_TIMING", "1");
    }
    let out = cmd.output().expect("depmod runs");
    drop(links);
    let mut err = String::from_utf8_lossy(&out.stderr).replace(base.to_str().unwrap(), "$BASE");
    if warm {
        let (timing, rest): (Vec<&str>, Vec<&str>) =
            err.split_inclusive('\n').partition(|l| l.starts_with("depmod: timing: "));
        // Every module recalled (the trees' modules all read without a defect).
        let walk = timing.iter().find(|l| l.contains("walk and load")).expect("a timing line");
        assert!(walk.contains(" 0 read)"), "{name}: not every module was recalled: {walk}");
        // Nor any directory listed again (but the module directory, whose listing is never
        // recorded, and any with a symbolic link).
        let dirs = timing.iter().find(|l| l.contains("directory listings")).expect("a line");
        assert!(dirs.contains(" 0 read)"), "{name}: directories were listed again: {dirs}");
        eprint!("{name} ({version}), warm: {walk}");
        err = rest.concat();
    }
    assert!(out.status.success(), "{name} depmod failed: {err}");
    (base.join(&moddir), err)
}

/// Whether runs of ours are made from a warm module cache (`DEPMOD_RS_WARM=1`).
pub fn warm() -> bool {
    std::env::var_os("DEPMOD_RS_WARM").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch").join(name);
    let links = tree_links();
    let _ = fs::remove_dir_all(&dir);
    drop(links);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Copies the tree under `src` into `dst` with hard links (depmod only reads modules and
/// replaces its outputs by rename, so the cache is never modified through the links).
pub fn link_tree(src: &Path, dst: &Path) {
    let _links = tree_links();
    link_tree_locked(src, dst);
}

/// Copies the tree under `src` into `dst`, each file a copy of its own: for a test whose
/// module cache must stay settled through runs seconds apart while other tests link and unlink
/// the cached trees' files (see [`tree_links`]).
pub fn copy_tree(src: &Path, dst: &Path) {
    mirror_tree(src, dst, false);
}

/// Taken while hard links to the cached trees' files are made or removed, and by a warm run
/// for its whole sequence: a link made or removed changes the change time (ctime) of the file
/// it names, in every tree linked to it, and the module cache then rightly reads that module
/// again. Tests running in parallel (and removing the copies of an earlier pass in
/// [`scratch`]) would otherwise make a warm run read modules it has recorded.
fn tree_links() -> std::sync::MutexGuard<'static, ()> {
    static LINKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LINKS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// [`link_tree`], with [`tree_links`] already held.
fn link_tree_locked(src: &Path, dst: &Path) {
    mirror_tree(src, dst, true);
}

/// The tree under `src` made again under `dst`: directories and symbolic links, and each file
/// a hard link (`link`) or a copy.
fn mirror_tree(src: &Path, dst: &Path, link: bool) {
    fs::create_dir_all(dst).expect("mkdir");
    for entry in fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            mirror_tree(&from, &to, link);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from).expect("readlink"), &to)
                .expect("symlink");
        } else if link {
            fs::hard_link(&from, &to).expect("hard link");
        } else {
            fs::copy(&from, &to).expect("copy");
        }
    }
}

/// Decodes a `.bin` index as text lines (`key<TAB>priority<TAB>value`), for readable diffs.
pub fn decode_bin(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::from("(empty file)\n");
    }
    match Index::parse(bytes).and_then(|i| i.entries()) {
        Ok(entries) => {
            let mut s = String::new();
            for (k, values) in entries {
                for v in values {
                    s.push_str(&format!(
                        "{}\t{}\t{}\n",
                        String::from_utf8_lossy(&k),
                        v.priority,
                        String::from_utf8_lossy(&v.text)
                    ));
                }
            }
            s
        }
        Err(e) => format!("(unreadable index: {e})\n"),
    }
}

/// Describes the first difference between two texts with a few lines of context.
pub fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let at = e.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(e.len().min(a.len()));
    let from = at.saturating_sub(2);
    let mut s =
        format!("first difference at line {} ({} vs {} lines):\n", at + 1, e.len(), a.len());
    for (label, lines) in [("expected", &e), ("actual", &a)] {
        s.push_str(&format!("  --- {label}\n"));
        for (i, line) in lines.iter().enumerate().skip(from).take(6) {
            let mark = if i == at { '>' } else { ' ' };
            s.push_str(&format!("  {mark}{:6} {line}\n", i + 1));
        }
    }
    s
}

/// Compares one output file's bytes; on a difference, describes it (`.bin` files decoded).
pub fn compare_file(name: &str, expected: &[u8], actual: &[u8]) -> Result<(), String> {
    if expected == actual {
        return Ok(());
    }
    let detail = if name.ends_with(".bin") {
        let (e, a) = (decode_bin(expected), decode_bin(actual));
        if e == a {
            format!("same entries, different bytes ({} vs {} bytes)", expected.len(), actual.len())
        } else {
            first_difference(&e, &a)
        }
    } else {
        first_difference(&String::from_utf8_lossy(expected), &String::from_utf8_lossy(actual))
    };
    Err(format!("{name} differs: {detail}"))
}

/// Reads a file, or `None` when it does not exist.
pub fn read_opt(path: &Path) -> Option<Vec<u8>> {
    fs::read(path).ok()
}

/// Compares the outputs in two module directories; every difference is listed.
pub fn compare_dirs(expected: &Path, actual: &Path, files: &[&str]) -> Result<(), String> {
    let mut problems = Vec::new();
    for name in files {
        match (read_opt(&expected.join(name)), read_opt(&actual.join(name))) {
            (Some(e), Some(a)) => {
                if let Err(d) = compare_file(name, &e, &a) {
                    problems.push(d);
                }
            }
            (None, None) => {}
            (Some(_), None) => problems.push(format!("{name}: missing from {}", actual.display())),
            (None, Some(_)) => problems.push(format!("{name}: not expected, but written")),
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

/// `path` as bytes.
pub fn bytes(path: &Path) -> &[u8] {
    path.as_os_str().as_bytes()
}

/// `data` compressed by the command-line `tool` (`xz`, `zstd`, `gzip`), as distributions do.
pub fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} is needed for this test: {e}"));
    child.stdin.take().expect("stdin").write_all(data).expect("write to the compressor");
    let out = child.wait_with_output().expect("compressor runs");
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// The path of `program` in `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Whether the tests run as root (which mounting and switching users need).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// The folders under `bin/tests/cases/<suite>` that hold a `scenario` file, sorted.
pub fn scenario_dirs(suite: &str) -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases").join(suite);
    let mut dirs: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("scenario").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Libkmod's pointers (`context 0x55d0... released`) differ from run to run: shown as `PTR`.
pub fn normalise_pointers(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    let mut rest = text.as_ref();
    while let Some(at) = rest.find(" 0x") {
        out.push_str(&rest[..at + 3]);
        rest = &rest[at + 3..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if rest[hex..].starts_with(" registered") || rest[hex..].starts_with(" released") {
            out.push_str("PTR");
        } else {
            out.push_str(&rest[..hex]);
        }
        rest = &rest[hex..];
    }
    out.push_str(rest);
    out.into_bytes()
}
