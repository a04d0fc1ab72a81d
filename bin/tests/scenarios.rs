//! The scenario suite: every option, spelling, configuration case and message of kmod 34.2's
//! depmod, run against kmod 34.2 itself on identical fresh copies of a small tree.
//!
//! Each scenario (`tests/scenarios/<name>/scenario`) starts from a tree — a 46-module subset of
//! Debian 12's real amd64 tree (`tree real`) or a synthetic one built with core's ELF writer —
//! and then runs a sequence of steps on two copies, one for kmod and one for this depmod. After
//! every `run`, the two must agree on the exit status, stdout, stderr, every file under the root
//! (contents and mode; module files by size), and whether each `modules.dep` was rewritten (what
//! `-A` compares). Both copies are run at the same path (`$ROOT`, the copy is renamed there for
//! the run), so absolute paths in messages and indexes compare as they are.
//!
//! Where this depmod deliberately differs (the README's table), the run says `differs REASON`;
//! both results are then held in `expected/<n>-ours/` and `expected/<n>-kmod/` (n counts the
//! runs from 1) and each side must match its own. `UPDATE_SCENARIOS=1` rewrites those files from
//! the runs; review them. `SCENARIO_ONLY=text` runs the scenarios whose name contains `text`.
//!
//! Syntax, one step per line (`#` comments; `$ROOT`, `$VERSION` and `$MOD` =
//! `lib/modules/$VERSION` are replaced in arguments, paths and file contents):
//! ```text
//! tree real | tree synthetic         the starting tree (default synthetic, empty)
//! version V                          kernel release of a synthetic tree (default 4.4.4)
//! module/file/file-noeol/symlink/dir  build steps, as in tests/golden (support/synth.rs)
//! touch PATH [SECONDS]               set the mtime to now + SECONDS (default 0)
//! chmod MODE PATH                    octal mode
//! rm PATH                            remove a file or a directory tree
//! cp FROM TO                         copy a file (a module of the real tree, say)
//! system-map PATH [missing=A,B]      a System.map of the kernel's exports: every symbol the
//!                                    modules need and none of them exports, less `missing`
//! symvers PATH [missing=A,B] [bad-crc=C,D]   the same as a Module.symvers, CRCs from the
//!                                    modules' __versions (`bad-crc` ones altered)
//! run ARGS...                        runs both depmods; indented attributes:
//!   cwd PATH                         working directory
//!   env NAME=VALUE                   extra environment
//!   readonly PATH                    PATH is a read-only bind mount (private mount namespace)
//!   host-config                      runs in a private root whose /etc, /run, /usr/local/lib,
//!                                    /usr/lib and /lib depmod.d are $ROOT/host/<dir>/depmod.d
//!                                    (the working directory is then its `/`)
//!   expect-stdout / expect-stderr / expect-file PATH   the indented lines after it (4 spaces)
//!                                    are what both must produce (kmod's testsuite's expectations)
//!   differs REASON                   a deliberate difference (see above)
//!   pending REASON                   a known bug of ours, held the same way until it is fixed
//!                                    (then the suite says to remove the mark)
//!   kmod skip REASON                 kmod is not run (it would hang)
//! ```

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use depmod_core::ModuleInfo;
use support::synth::{self, Step};
use support::{Depmod, compare_file, decode_bin, first_difference, kmod34, scratch};

/// The real tree's subset: btrfs, ext4 and xfs with their libraries, virtio, SCSI, USB storage,
/// e1000/e1000e, and modules with device names (fuse, loop, tun, autofs4, uinput, dm-mod) — with
/// dashes in names, a namespace, softdeps and many aliases. Dependencies are closed over.
const REAL_MODULES: &[&str] = &[
    "kernel/arch/x86/crypto/crc32c-intel.ko",
    "kernel/block/t10-pi.ko",
    "kernel/crypto/crc32c_generic.ko",
    "kernel/crypto/crct10dif_common.ko",
    "kernel/crypto/cryptd.ko",
    "kernel/crypto/crypto_simd.ko",
    "kernel/crypto/xor.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/drivers/block/virtio_blk.ko",
    "kernel/drivers/char/virtio_console.ko",
    "kernel/drivers/input/misc/uinput.ko",
    "kernel/drivers/md/dm-mod.ko",
    "kernel/drivers/net/ethernet/intel/e1000/e1000.ko",
    "kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/tun.ko",
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/scsi/scsi_common.ko",
    "kernel/drivers/scsi/scsi_mod.ko",
    "kernel/drivers/scsi/sd_mod.ko",
    "kernel/drivers/scsi/virtio_scsi.ko",
    "kernel/drivers/usb/common/usb-common.ko",
    "kernel/drivers/usb/core/usbcore.ko",
    "kernel/drivers/usb/storage/usb-storage.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_balloon.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/fs/autofs/autofs4.ko",
    "kernel/fs/btrfs/btrfs.ko",
    "kernel/fs/ext4/ext4.ko",
    "kernel/fs/fuse/fuse.ko",
    "kernel/fs/jbd2/jbd2.ko",
    "kernel/fs/mbcache.ko",
    "kernel/fs/nls/nls_utf8.ko",
    "kernel/fs/xfs/xfs.ko",
    "kernel/lib/crc-t10dif.ko",
    "kernel/lib/crc16.ko",
    "kernel/lib/crc64-rocksoft.ko",
    "kernel/lib/crc64.ko",
    "kernel/lib/libcrc32c.ko",
    "kernel/lib/raid6/raid6_pq.ko",
    "kernel/lib/zstd/zstd_compress.ko",
    "kernel/net/core/failover.ko",
];

/// How long one run may take before it counts as hung.
const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq)]
enum KmodRole {
    Compare,
    Differs(String),
    /// A known bug of ours, not a deliberate difference: held like `Differs` until it is fixed.
    Pending(String),
    Skip(String),
}

#[derive(Default)]
struct Run {
    args: Vec<String>,
    cwd: Option<String>,
    env: Vec<(String, String)>,
    readonly: Vec<String>,
    host_config: bool,
    expect: Vec<(Expect, Vec<u8>)>,
    kmod: Option<KmodRole>,
}

enum Expect {
    Stdout,
    Stderr,
    File(String),
}

enum Action {
    Build(Step),
    Touch { path: String, seconds: i64 },
    Chmod { path: String, mode: u32 },
    Remove { path: String },
    Copy { from: String, to: String },
    SystemMap { path: String, missing: Vec<String> },
    Symvers { path: String, missing: Vec<String>, bad_crc: Vec<String> },
    Run(Box<Run>),
}

struct Scenario {
    real: bool,
    version: String,
    actions: Vec<Action>,
}

fn list(value: Option<&str>) -> Vec<String> {
    value.map(|v| v.split(',').map(str::to_string).collect()).unwrap_or_default()
}

fn parse(name: &str, text: &str, real_version: Option<&str>) -> Scenario {
    let mut s = Scenario { real: false, version: "4.4.4".into(), actions: Vec::new() };
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mod_dir = format!("lib/modules/{}", s.version);
        let path = |p: &str| p.trim().replace("$MOD", &mod_dir);
        let opts = |rest: &str| -> BTreeMap<String, String> {
            rest.split_whitespace()
                .skip(1)
                .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect()
        };
        let action = match word {
            "tree" => {
                s.real = match rest.trim() {
                    "real" => true,
                    "synthetic" => false,
                    other => panic!("{name}: unknown tree {other}"),
                };
                if s.real {
                    s.version = real_version.unwrap_or("0.0-unavailable").to_string();
                }
                continue;
            }
            "version" => {
                s.version = rest.trim().to_string();
                continue;
            }
            "touch" => {
                let mut w = rest.split_whitespace();
                let p = path(w.next().expect("touch PATH"));
                let seconds = w.next().map_or(0, |n| n.trim_start_matches('+').parse().unwrap());
                Action::Touch { path: p, seconds }
            }
            "chmod" => {
                let (mode, p) = rest.split_once(' ').expect("chmod MODE PATH");
                Action::Chmod { path: path(p), mode: u32::from_str_radix(mode, 8).unwrap() }
            }
            "rm" => Action::Remove { path: path(rest) },
            "cp" => {
                let (from, to) = rest.split_once(' ').expect("cp FROM TO");
                Action::Copy { from: path(from), to: path(to) }
            }
            "system-map" => {
                let o = opts(rest);
                let p = path(rest.split_whitespace().next().expect("system-map PATH"));
                Action::SystemMap { path: p, missing: list(o.get("missing").map(String::as_str)) }
            }
            "symvers" => {
                let o = opts(rest);
                let p = path(rest.split_whitespace().next().expect("symvers PATH"));
                Action::Symvers {
                    path: p,
                    missing: list(o.get("missing").map(String::as_str)),
                    bad_crc: list(o.get("bad-crc").map(String::as_str)),
                }
            }
            "run" => {
                let mut run = Run {
                    args: rest.split_whitespace().map(str::to_string).collect(),
                    ..Run::default()
                };
                while let Some(attr) = lines.peek().and_then(|l| l.strip_prefix("  ")) {
                    lines.next();
                    let (k, v) = attr.split_once(' ').unwrap_or((attr, ""));
                    match k {
                        "cwd" => run.cwd = Some(v.to_string()),
                        "env" => {
                            let (n, val) = v.split_once('=').expect("env NAME=VALUE");
                            run.env.push((n.to_string(), val.to_string()));
                        }
                        "readonly" => run.readonly.push(v.trim().to_string()),
                        "host-config" => run.host_config = true,
                        "differs" => run.kmod = Some(KmodRole::Differs(v.to_string())),
                        "pending" => run.kmod = Some(KmodRole::Pending(v.to_string())),
                        "kmod" => {
                            let reason = v.strip_prefix("skip").expect("kmod skip REASON");
                            run.kmod = Some(KmodRole::Skip(reason.trim().to_string()));
                        }
                        "expect-stdout" | "expect-stderr" | "expect-file" => {
                            let mut data = Vec::new();
                            while let Some(l) = lines.peek().and_then(|l| l.strip_prefix("    ")) {
                                lines.next();
                                data.extend(synth::unescape(l));
                                data.push(b'\n');
                            }
                            let what = match k {
                                "expect-stdout" => Expect::Stdout,
                                "expect-stderr" => Expect::Stderr,
                                _ => Expect::File(v.trim().to_string()),
                            };
                            run.expect.push((what, data));
                        }
                        _ => panic!("{name}: unknown run attribute {attr}"),
                    }
                }
                Action::Run(Box::new(run))
            }
            _ => match synth::parse_step(name, word, rest, &mut lines, &mod_dir) {
                Some(step) => Action::Build(step),
                None => panic!("{name}: unknown scenario line: {line}"),
            },
        };
        s.actions.push(action);
    }
    s
}

/// Replaces `$ROOT`, `$VERSION` and `$MOD` in `text`.
fn subst(text: &str, root: &Path, version: &str) -> String {
    text.replace("$MOD", &format!("lib/modules/{version}"))
        .replace("$ROOT", root.to_str().unwrap())
        .replace("$VERSION", version)
}

/// Makes `path` a file of its own (not a hard link into the cache) before it is changed.
fn unshare_file(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else { return };
    if meta.is_file() && meta.nlink() > 1 {
        let data = fs::read(path).unwrap();
        let mtime = meta.modified().unwrap();
        fs::remove_file(path).unwrap();
        fs::write(path, data).unwrap();
        fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
    }
}

/// The real subset of the Debian tree at `src`, hard-linked into `root`.
fn build_real(src: &Path, root: &Path, version: &str) {
    let from = src.join("lib/modules").join(version);
    let to = root.join("lib/modules").join(version);
    for m in REAL_MODULES {
        let target = to.join(m);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::hard_link(from.join(m), &target).unwrap();
    }
    for f in ["modules.builtin", "modules.builtin.modinfo"] {
        fs::hard_link(from.join(f), to.join(f)).unwrap();
    }
    let order = fs::read_to_string(from.join("modules.order")).unwrap();
    let kept: String =
        order.lines().filter(|l| REAL_MODULES.contains(l)).map(|l| format!("{l}\n")).collect();
    fs::write(to.join("modules.order"), kept).unwrap();
}

/// What the modules under `dir` export, and what they need that none of them exports (with the
/// CRC of its first `__versions` record): the kernel's part.
fn kernel_symbols(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, out: &mut Vec<ModuleInfo>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(&p, out);
            } else if p.to_string_lossy().ends_with(".ko") {
                out.push(ModuleInfo::parse(&fs::read(&p).unwrap()));
            }
        }
    }
    let mut infos = Vec::new();
    walk(dir, &mut infos);
    let exported: std::collections::BTreeSet<Vec<u8>> =
        infos.iter().flat_map(|i| i.exports().map(|(n, _)| n.to_vec())).collect();
    let mut kernel = BTreeMap::new();
    for info in &infos {
        for need in info.imports() {
            if !exported.contains(need.name) {
                let name = String::from_utf8_lossy(need.name).into_owned();
                kernel.entry(name).or_insert(need.crc);
            }
        }
    }
    kernel
}

/// Applies one non-run action to the copy at `root` (which depmod will see at `run_root`).
fn apply(action: &Action, root: &Path, run_root: &Path, version: &str) {
    // Paths of steps are relative to the root; `$ROOT/` may spell it out.
    let at = |p: &str| root.join(subst(p.trim_start_matches("$ROOT/"), run_root, version));
    match action {
        Action::Build(step) => synth::apply(step, root, run_root.to_str().unwrap()),
        Action::Touch { path, seconds } => {
            let p = at(path);
            unshare_file(&p);
            let now = SystemTime::now();
            let t = if *seconds >= 0 {
                now + Duration::from_secs(seconds.unsigned_abs())
            } else {
                now - Duration::from_secs(seconds.unsigned_abs())
            };
            fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        }
        Action::Chmod { path, mode } => {
            let p = at(path);
            unshare_file(&p);
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        }
        Action::Remove { path } => {
            let p = at(path);
            if p.is_dir() {
                fs::remove_dir_all(&p).unwrap();
            } else {
                fs::remove_file(&p).unwrap();
            }
        }
        Action::Copy { from, to } => {
            let to = at(to);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(at(from), to).unwrap();
        }
        Action::SystemMap { path, missing } => {
            let kernel = kernel_symbols(&root.join("lib/modules").join(version));
            let mut text = String::from(
                "0000000000000000 A __per_cpu_start\nffffffff81000000 T _stext\n\
                 ffffffff81000000 T startup_64\n",
            );
            for (i, name) in kernel.keys().filter(|n| !missing.contains(n)).enumerate() {
                let _ = writeln!(text, "ffffffff8{:07x} T {name}", 0x100000 + i * 16);
                let _ = writeln!(text, "ffffffff8{:07x} r __ksymtab_{name}", 0x2000000 + i * 12);
            }
            text.push_str("ffffffff83000000 B _end\n");
            fs::write(at(path), text).unwrap();
        }
        Action::Symvers { path, missing, bad_crc } => {
            let kernel = kernel_symbols(&root.join("lib/modules").join(version));
            let mut text = String::new();
            for (name, crc) in kernel.iter().filter(|(n, _)| !missing.contains(n)) {
                let crc = if bad_crc.contains(name) { crc ^ 0x5a5a } else { *crc };
                let _ = writeln!(text, "0x{crc:08x}\t{name}\tvmlinux\tEXPORT_SYMBOL\t");
            }
            fs::write(at(path), text).unwrap();
        }
        Action::Run(_) => unreachable!(),
    }
}

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    mode: u32,
    /// Contents, or a description for module files and symbolic links.
    data: Vec<u8>,
}

/// What one run did, as compared between the two depmods.
#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    exit: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    files: BTreeMap<String, Entry>,
    /// Each `modules.dep`, and whether the run replaced or touched it.
    dep_rewritten: BTreeMap<String, bool>,
}

fn is_module_file(name: &str) -> bool {
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().any(|e| name.ends_with(e))
}

/// Every file and directory under `root`, keyed by relative path.
fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            let mode = meta.mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&p).unwrap();
                let data = format!("symlink to {}", target.display()).into_bytes();
                out.insert(rel, Entry { mode, data });
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Entry { mode, data: Vec::new() });
                walk(root, &p, out);
            } else if is_module_file(&rel) {
                let data = format!("module file, {} bytes", meta.len()).into_bytes();
                out.insert(rel, Entry { mode, data });
            } else {
                let data = fs::read(&p).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes());
                out.insert(rel, Entry { mode, data });
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Identity of every `modules.dep` under `root`: inode, mtime and ctime.
fn dep_stamps(root: &Path) -> BTreeMap<String, (u64, i64, i64, i64, i64)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, i64, i64, i64, i64)>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = fs::symlink_metadata(&p) else { continue };
            if meta.is_dir() {
                walk(root, &p, out);
            } else if e.file_name() == "modules.dep" {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                let stamp =
                    (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.ctime(), meta.ctime_nsec());
                out.insert(rel, stamp);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Libkmod's pointers (`context 0x55d0... released`) differ from run to run.
fn normalise_pointers(text: &[u8]) -> Vec<u8> {
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

/// The shell script of a `host-config` run: a private root (tmpfs) with the C library, the two
/// depmods, the work directory, and the scenario's config directories in the system's places.
const HOST_CONFIG_SCRIPT: &str = r#"set -e
newroot=$1 root=$2 libdir=$3; shift 3
mount -t tmpfs tmpfs "$newroot"
for d in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu; do
    mkdir -p "$newroot/$d"; mount --bind "$libdir" "$newroot/$d"
done
ln -s /lib/x86_64-linux-gnu "$newroot/lib64"
while [ "$1" != "--" ]; do mkdir -p "$newroot$1"; mount --bind "$1" "$newroot$1"; shift; done
shift
for d in etc run usr/local/lib usr/lib lib; do
    if [ -d "$root/host/$d/depmod.d" ]; then
        mkdir -p "$newroot/$d/depmod.d"; mount --bind "$root/host/$d/depmod.d" "$newroot/$d/depmod.d"
    fi
done
exec chroot "$newroot" "$@"
"#;

/// A `readonly` run: read-only bind mounts of the given paths, then the command.
const READONLY_SCRIPT: &str = r#"set -e
while [ "$1" != "--" ]; do mount --bind "$1" "$1"; mount -o remount,bind,ro "$1" "$1"; shift; done
shift
exec "$@"
"#;

/// Runs `cmd` with a time limit; exit status (or how it ended), stdout, stderr.
fn run_with_timeout(mut cmd: Command, out_dir: &Path) -> (String, Vec<u8>, Vec<u8>) {
    let (out, err) = (out_dir.join("stdout"), out_dir.join("stderr"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break match status.code() {
                Some(c) => format!("{c}\n"),
                None => format!("killed: {status}\n"),
            };
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break format!("hung: killed after {TIMEOUT:?}\n");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    (status, fs::read(out).unwrap(), fs::read(err).unwrap())
}

/// Where the pieces of a `host-config` run come from (and the proof that mount namespaces, for
/// `host-config` and `readonly`, work here).
struct HostConfig {
    /// The directory holding the dynamic loader and the C library.
    libdir: PathBuf,
}

fn host_config() -> Option<HostConfig> {
    let probe = scratch("namespace-probe");
    let ok = Command::new("unshare")
        .args(["-m", "sh", "-c", "mount -t tmpfs tmpfs \"$0\" && command -v chroot >/dev/null"])
        .arg(&probe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        support::missing("mount namespaces (unshare -m, mount, chroot; root is needed)");
        return None;
    }
    let Some(libdir) = fs::canonicalize("/lib64/ld-linux-x86-64.so.2")
        .ok()
        .and_then(|ld| ld.parent().map(Path::to_path_buf))
    else {
        support::missing("the x86-64 dynamic loader at /lib64/ld-linux-x86-64.so.2");
        return None;
    };
    Some(HostConfig { libdir })
}

/// Runs `depmod` for `run` with the copy at `root`; `work` holds scratch files.
fn execute(
    depmod: &Depmod,
    run: &Run,
    root: &Path,
    version: &str,
    work: &Path,
    host: Option<&HostConfig>,
) -> Outcome {
    let args: Vec<String> = run.args.iter().map(|a| subst(a, root, version)).collect();
    // Ours runs as plain `depmod` found in PATH, as kmod runs with `--argv0 depmod`: getopt's
    // messages and the usage text show argv[0].
    let bin = work.join("bin");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let inner = match depmod {
        Depmod::Ours => {
            if !bin.join("depmod").exists() {
                fs::create_dir_all(&bin).unwrap();
                std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_depmod"), bin.join("depmod"))
                    .unwrap();
            }
            let mut c = Command::new("depmod");
            c.args(&args);
            c
        }
        _ => depmod.command(&args),
    };
    let mut cmd = if run.host_config {
        let host = host.expect("host-config scenarios are skipped without mount namespaces");
        let newroot = work.join("newroot");
        fs::create_dir_all(&newroot).unwrap();
        let mut binds: Vec<PathBuf> = vec![work.to_path_buf()];
        binds.push(Path::new(env!("CARGO_BIN_EXE_depmod")).parent().unwrap().to_path_buf());
        if let Depmod::Kmod(k) = depmod {
            binds.push(k.clone());
        }
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", HOST_CONFIG_SCRIPT, "sh"]).arg(&newroot).arg(root);
        c.arg(&host.libdir).args(&binds).arg("--").arg(inner.get_program()).args(inner.get_args());
        c
    } else if !run.readonly.is_empty() {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", READONLY_SCRIPT, "sh"]);
        c.args(run.readonly.iter().map(|p| subst(p, root, version)));
        c.arg("--").arg(inner.get_program()).args(inner.get_args());
        c
    } else {
        inner
    };
    cmd.current_dir(
        run.cwd.as_deref().map_or_else(|| work.to_path_buf(), |c| subst(c, root, version).into()),
    );
    cmd.env("PATH", path);
    for (k, v) in &run.env {
        cmd.env(k, v);
    }
    let before = dep_stamps(root);
    let (exit, stdout, stderr) = run_with_timeout(cmd, work);
    let after = dep_stamps(root);
    let dep_rewritten =
        after.iter().map(|(p, stamp)| (p.clone(), before.get(p) != Some(stamp))).collect();
    Outcome {
        exit,
        stdout: normalise_pointers(&stdout),
        stderr: normalise_pointers(&stderr),
        files: snapshot(root),
        dep_rewritten,
    }
}

/// Every address (`0x` and at least 8 hex digits, as kmod's DEBUG lines print pointers) as
/// `0xPTR`.
fn normalise_addresses(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(b"0x") {
            let n = text[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            if n >= 8 {
                out.extend_from_slice(b"0xPTR");
                i += 2 + n;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// Files longer than this (as text) are held in `expected/` by length and checksum.
const LARGE: usize = 4096;

/// kmod's temporary file names (`modules.dep.PID.USEC.SEC`) with those numbers replaced.
fn normalise_temp_names(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        // A letter, then three `.digits` groups.
        let groups = |mut j: usize| {
            for _ in 0..3 {
                if b.get(j) != Some(&b'.') {
                    return None;
                }
                let n = b[j + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                j += 1 + n;
            }
            Some(j)
        };
        if b[i].is_ascii_alphabetic() {
            if let Some(end) = groups(i + 1) {
                out.push(b[i] as char);
                out.push_str(".PID.USEC.SEC");
                i = end;
                continue;
            }
        }
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + len]);
        i += len;
    }
    out
}

/// An outcome as text, with the root path shown as `$ROOT`, kmod's temporary names without
/// their numbers and indexes decoded: what `expected/` holds.
fn render(o: &Outcome, root: &Path) -> BTreeMap<&'static str, String> {
    let r = root.to_str().unwrap();
    let text = |b: &[u8]| {
        let t = String::from_utf8_lossy(&normalise_addresses(b)).replace(r, "$ROOT");
        normalise_temp_names(&t)
    };
    let mut files = String::new();
    for (path, e) in &o.files {
        let body = if path.ends_with(".bin") { decode_bin(&e.data) } else { text(&e.data) };
        let body = body.replace(r, "$ROOT");
        let _ = writeln!(files, "=== {path} (mode {:o})", e.mode);
        if body.len() > LARGE {
            // The real tree's indexes: a checksum keeps expected/ small.
            let crc = crc32fast::hash(body.as_bytes());
            let _ = writeln!(files, "{} bytes as text, crc32 {crc:08x}", body.len());
            continue;
        }
        files.push_str(&body);
        if is_module_file(path) || e.data.starts_with(b"symlink to ") {
            files.push('\n');
        } else if !body.is_empty() && !body.ends_with('\n') {
            files.push_str("\n(no final newline)\n");
        }
    }
    for (path, rewritten) in &o.dep_rewritten {
        let _ = writeln!(files, "=== {path} rewritten: {rewritten}");
    }
    BTreeMap::from([
        ("exit", o.exit.clone()),
        ("stdout", text(&o.stdout)),
        ("stderr", text(&o.stderr)),
        ("files", files),
    ])
}

/// Every difference between two outcomes of the same run, each with its first differing lines.
fn differences(kmod: &Outcome, ours: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    if kmod.exit != ours.exit {
        problems.push(format!("exit status: kmod {} ours {}", kmod.exit.trim(), ours.exit.trim()));
    }
    for (name, k, o) in
        [("stdout", &kmod.stdout, &ours.stdout), ("stderr", &kmod.stderr, &ours.stderr)]
    {
        if let Err(d) = compare_file(name, k, o) {
            problems.push(d);
        }
    }
    for (path, k) in &kmod.files {
        match ours.files.get(path) {
            None => problems.push(format!("{path}: kmod wrote it, ours did not")),
            Some(o) => {
                if k.mode != o.mode {
                    problems
                        .push(format!("{path}: mode {:o} (kmod) vs {:o} (ours)", k.mode, o.mode));
                }
                let name = path.rsplit('/').next().unwrap();
                if let Err(d) = compare_file(name, &k.data, &o.data) {
                    problems.push(format!("{path}: {d}"));
                }
            }
        }
    }
    for path in ours.files.keys().filter(|p| !kmod.files.contains_key(*p)) {
        problems.push(format!("{path}: ours wrote it, kmod did not"));
    }
    if kmod.dep_rewritten != ours.dep_rewritten {
        problems.push(format!(
            "modules.dep rewritten: kmod {:?} ours {:?}",
            kmod.dep_rewritten, ours.dep_rewritten
        ));
    }
    problems
}

/// Checks `expect-*` attributes against one outcome.
fn check_expectations(
    run: &Run,
    o: &Outcome,
    root: &Path,
    version: &str,
    who: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, want) in &run.expect {
        let want = subst(&String::from_utf8_lossy(want), root, version).into_bytes();
        let (label, got) = match what {
            Expect::Stdout => ("stdout".to_string(), Some(&o.stdout)),
            Expect::Stderr => ("stderr".to_string(), Some(&o.stderr)),
            Expect::File(p) => {
                let p = subst(p, root, version);
                (p.clone(), o.files.get(&p).map(|e| &e.data))
            }
        };
        match got {
            None => problems.push(format!("{who}: {label} was expected, but is missing")),
            Some(got) if *got != want => problems.push(format!(
                "{who}: {label} is not as expected: {}",
                first_difference(&String::from_utf8_lossy(&want), &String::from_utf8_lossy(got))
            )),
            Some(_) => {}
        }
    }
    problems
}

/// Compares an outcome with `expected/<dir>/`, or rewrites it there.
fn against_expected(dir: &Path, o: &Outcome, root: &Path, update: bool) -> Vec<String> {
    let rendered = render(o, root);
    if update {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).unwrap();
        for (name, text) in &rendered {
            fs::write(dir.join(name), text).unwrap();
        }
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (name, text) in &rendered {
        match fs::read_to_string(dir.join(name)) {
            Ok(want) if want == *text => {}
            Ok(want) => problems.push(format!(
                "{}/{name}: {}",
                dir.display(),
                first_difference(&want, text)
            )),
            Err(e) => problems
                .push(format!("{}/{name}: {e} (UPDATE_SCENARIOS=1 writes it)", dir.display())),
        }
    }
    problems
}

struct Context {
    kmod: Option<Depmod>,
    real: Option<(PathBuf, String)>,
    host: Option<Option<HostConfig>>,
    update: bool,
}

/// Runs one scenario; its problems.
fn run_scenario(dir: &Path, ctx: &mut Context) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(dir.join("scenario")).unwrap();
    let real_version = ctx.real.as_ref().map(|(_, v)| v.as_str());
    let s = parse(&name, &text, real_version);
    if s.real && ctx.real.is_none() {
        return Vec::new(); // support::tree reported it
    }
    // Without mount namespaces these runs would fail alike on both sides and prove nothing.
    let needs_host = s
        .actions
        .iter()
        .any(|a| matches!(a, Action::Run(r) if r.host_config || !r.readonly.is_empty()));
    if needs_host && ctx.host.get_or_insert_with(host_config).is_none() {
        return Vec::new();
    }
    let work = scratch(&format!("scenario-{name}"));
    let run_root = work.join("root");
    let copies = [("kmod", work.join("kmod")), ("ours", work.join("ours"))];
    for (_, root) in &copies {
        fs::create_dir_all(root.join("lib/modules").join(&s.version)).unwrap();
        if s.real {
            build_real(&ctx.real.as_ref().unwrap().0, root, &s.version);
        }
    }
    let mut problems = Vec::new();
    let mut runs = 0;
    for action in &s.actions {
        let Action::Run(run) = action else {
            for (_, root) in &copies {
                apply(action, root, &run_root, &s.version);
            }
            continue;
        };
        runs += 1;
        let label = format!("[{name} run {runs}: {}]", run.args.join(" "));
        let role = run.kmod.clone().unwrap_or(KmodRole::Compare);
        let mut outcomes = Vec::new();
        for (who, root) in &copies {
            let depmod = match *who {
                "kmod" => match (&ctx.kmod, &role) {
                    (Some(k), KmodRole::Compare | KmodRole::Differs(_) | KmodRole::Pending(_)) => {
                        k.clone()
                    }
                    _ => continue,
                },
                _ => Depmod::Ours,
            };
            fs::rename(root, &run_root).unwrap();
            let host = ctx.host.as_ref().and_then(Option::as_ref);
            let o = execute(&depmod, run, &run_root, &s.version, &work, host);
            fs::rename(&run_root, root).unwrap();
            for p in check_expectations(run, &o, &run_root, &s.version, who) {
                problems.push(format!("{label} {p}"));
            }
            outcomes.push((*who, o));
        }
        match (&role, outcomes.as_slice()) {
            (KmodRole::Compare, [(_, kmod), (_, ours)]) => {
                for d in differences(kmod, ours) {
                    problems.push(format!("{label} kmod 34.2 vs ours: {d}"));
                }
            }
            (KmodRole::Compare, _) => {} // no kmod: only the expectations are checked
            (KmodRole::Differs(_) | KmodRole::Pending(_) | KmodRole::Skip(_), _) => {
                for (who, o) in &outcomes {
                    let expected = dir.join("expected").join(format!("{runs}-{who}"));
                    for p in against_expected(&expected, o, &run_root, ctx.update) {
                        problems.push(format!("{label} {who}: {p}"));
                    }
                }
                if let (KmodRole::Differs(_) | KmodRole::Pending(_), [(_, kmod), (_, ours)]) =
                    (&role, outcomes.as_slice())
                {
                    if differences(kmod, ours).is_empty() {
                        problems.push(format!(
                            "{label} marked `differs` or `pending`, but kmod 34.2 and ours agree: remove the mark"
                        ));
                    }
                }
            }
        }
    }
    problems
}

fn scenario_dirs() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("scenario").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn scenarios() {
    let start = Instant::now();
    let mut ctx = Context {
        kmod: kmod34().map(Depmod::Kmod),
        real: support::tree("amd64"),
        host: None,
        update: std::env::var_os("UPDATE_SCENARIOS").is_some(),
    };
    let only = std::env::var("SCENARIO_ONLY").ok();
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in scenario_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        count += 1;
        eprintln!("scenario {name}");
        failures.extend(run_scenario(&dir, &mut ctx));
    }
    eprintln!("{count} scenarios in {:.1} s", start.elapsed().as_secs_f64());
    assert!(count > 0, "no scenario matched");
    if !failures.is_empty() {
        panic!(
            "{} problem(s) in {count} scenarios (UPDATE_SCENARIOS=1 rewrites the expected/ \
             results of `differs` runs):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
