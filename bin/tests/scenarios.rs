//! The scenario suite: every option, spelling, configuration case and message of kmod 34.2's
//! depmod, run against kmod 34.2 itself on identical fresh copies of a small tree.
//!
//! Each scenario (`tests/cases/scenarios/<name>/scenario`) starts from a tree — a 46-module subset of
//! Debian 12's real amd64 tree (`tree real`) or a synthetic one built with core's ELF writer —
//! and then runs a sequence of steps on two copies, one for kmod and one for this depmod. After
//! every `run`, the two must agree on the exit status, stdout, stderr, every file under the root
//! (contents and mode; module files by size), and whether each `modules.dep` was rewritten (what
//! `-A` compares). Both copies are run at the same path (`$ROOT`, the copy is renamed there for
//! the run), so absolute paths in messages and indexes compare as they are.
//!
//! Where this depmod deliberately differs (the README's table), the run says `differs REASON`
//! and states the difference: what each side must do for the aspects that differ (`kmod exit 0`,
//! `ours exit 1`, `ours unchanged`, `ours stderr` and its lines, `kmod without PATH...`: kmod
//! indexes its copy without those files, ...); every aspect no statement covers must still be the
//! same for both. On a synthetic tree a run may instead hold both results in `expected/<n>-ours/`
//! and `expected/<n>-kmod/` (n counts the runs from 1), each side matching its own;
//! `UPDATE_SCENARIOS=1` rewrites those files from the runs (review them). A run on the real tree
//! must state its outcome: recorded files would hold the package's version and module sizes,
//! which change with every Debian kernel update. `SCENARIO_ONLY=text` runs the scenarios whose
//! name contains `text`; `DEPMOD_RS_TREE` picks the real tree (see `common::main_tree`).
//!
//! `DEPMOD_RS_WARM=1` runs every run of ours with a warm module cache (`scenario_runner/warm.rs`).
//! In either mode the cache file is checked (never in kmod's tree; in ours, empty or valid) and
//! then left out of what is compared.
//!
//! Syntax, one step per line (`#` comments; `$ROOT`, `$VERSION` and `$MOD` =
//! `lib/modules/$VERSION` are replaced in arguments, paths and file contents):
//! ```text
//! tree real | tree synthetic         the starting tree (default synthetic, empty)
//! version V                          kernel release of a synthetic tree (default 4.4.4)
//! module/file/file-noeol/symlink/dir  build steps, as in tests/cases/golden (common/synth.rs)
//! touch PATH [SECONDS]               set the mtime to now + SECONDS (default 0)
//! touch PATH @SECONDS.NANOSECONDS    set the mtime to that time since the epoch
//! chmod MODE PATH                    octal mode
//! rm PATH                            remove a file or a directory tree
//! cp FROM TO                         copy a file (a module of the real tree, say)
//! fifo PATH                          a named pipe
//! system-map PATH [missing=A,B]      a System.map of the kernel's exports: every symbol the
//!                                    modules need and none of them exports, less `missing`
//! symvers PATH [missing=A,B] [bad-crc=C,D]   the same as a Module.symvers, CRCs from the
//!                                    modules' __versions (`bad-crc` ones altered)
//! run ARGS...                        runs both depmods; indented attributes:
//!   cwd PATH                         working directory
//!   env NAME=VALUE                   extra environment
//!   nofile N                         at most N open files (kmod's loops end sooner)
//!   umask MODE                       the umask (octal; the suite's is 022)
//!   readonly PATH                    PATH is a read-only bind mount (private mount namespace)
//!   host-config                      runs in a private root whose /etc, /run, /usr/local/lib,
//!                                    /usr/lib and /lib depmod.d are $ROOT/host/<dir>/depmod.d
//!                                    (the working directory is then its `/`)
//!   expect-stdout / expect-stderr / expect-file PATH   the indented lines after it (4 spaces)
//!                                    are what both must produce (kmod's testsuite's expectations)
//!   differs REASON                   a deliberate difference (see above)
//!   kmod|ours exit N                 what that side's exit status must be
//!   kmod|ours stdout / stderr        the indented lines after it (4 spaces) are that side's
//!                                    output (`$ROOT`, `$MOD`, `$VERSION` replaced; kmod's
//!                                    temporary names as `NAME.PID.USEC.SEC`)
//!   kmod|ours unchanged              no file under the root changes, no modules.dep is touched
//!   kmod|ours dep-rewritten yes|no   whether modules.dep is replaced or touched
//!   kmod without PATH...             kmod's run sees its copy without these files
//!   pending REASON                   a known bug of ours, held the same way until it is fixed
//!                                    (then the suite says to remove the mark)
//!   kmod skip REASON                 kmod is not run (it would hang)
//! ```

mod common;
#[path = "scenario_runner/outcome.rs"]
mod outcome;
#[path = "scenario_runner/sandbox.rs"]
mod sandbox;
#[path = "scenario_runner/trees.rs"]
mod trees;
#[path = "scenario_runner/warm.rs"]
mod warm;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::synth::{self, Step};
use common::{Depmod, first_difference, kmod34, normalise_pointers, scenario_dirs, scratch};
use outcome::{
    Outcome, Stated, against_expected, dep_stamps, differences, differences_except, snapshot,
};
use sandbox::{HOST_CONFIG_SCRIPT, HostConfig, READONLY_SCRIPT, host_config, run_with_timeout};
use trees::{build_real, module_symvers, system_map, unshare_file};

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
    nofile: Option<u32>,
    umask: Option<String>,
    expect: Vec<(Expect, Vec<u8>)>,
    kmod: Option<KmodRole>,
    /// What a `differs` or `pending` run states about each side: `[kmod, ours]`.
    stated: [Stated; 2],
    /// `kmod without PATH...`: files moved out of kmod's copy for its run (put back after).
    kmod_without: Vec<String>,
}

enum Expect {
    Stdout,
    Stderr,
    File(String),
}

/// A modification time.
enum When {
    /// Now plus this many seconds (negative: ago).
    FromNow(i64),
    /// Since the epoch.
    At(Duration),
}

enum Action {
    Build(Step),
    Touch { path: String, when: When },
    Chmod { path: String, mode: u32 },
    Remove { path: String },
    Copy { from: String, to: String },
    Fifo { path: String },
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
    // The version first, so that `$VERSION` can be replaced everywhere, build steps included.
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("tree", "real")) => s.version = real_version.unwrap_or("0.0-none").to_string(),
            Some(("version", v)) => s.version = v.trim().to_string(),
            _ => {}
        }
    }
    let text = text.replace("$VERSION", &s.version);
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
                continue;
            }
            "version" => continue,
            "touch" => {
                let mut w = rest.split_whitespace();
                let p = path(w.next().expect("touch PATH"));
                let when = match w.next() {
                    Some(at) if at.starts_with('@') => {
                        let (secs, nanos) = at[1..].split_once('.').unwrap_or((&at[1..], "0"));
                        let nanos = format!("{nanos:0<9}");
                        When::At(Duration::new(secs.parse().unwrap(), nanos.parse().unwrap()))
                    }
                    Some(n) => When::FromNow(n.trim_start_matches('+').parse().unwrap()),
                    None => When::FromNow(0),
                };
                Action::Touch { path: p, when }
            }
            "chmod" => {
                let (mode, p) = rest.split_once(' ').expect("chmod MODE PATH");
                Action::Chmod { path: path(p), mode: u32::from_str_radix(mode, 8).unwrap() }
            }
            "rm" => Action::Remove { path: path(rest) },
            "fifo" => Action::Fifo { path: path(rest) },
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
                        "nofile" => run.nofile = Some(v.trim().parse().expect("nofile N")),
                        "umask" => run.umask = Some(v.trim().to_string()),
                        "differs" => run.kmod = Some(KmodRole::Differs(v.to_string())),
                        "pending" => run.kmod = Some(KmodRole::Pending(v.to_string())),
                        "kmod" if v.starts_with("skip") => {
                            let reason = v.strip_prefix("skip").unwrap_or_default();
                            run.kmod = Some(KmodRole::Skip(reason.trim().to_string()));
                        }
                        "kmod" if v.starts_with("without ") => {
                            let paths = v.split_whitespace().skip(1).map(&path);
                            run.kmod_without.extend(paths);
                        }
                        "kmod" | "ours" => {
                            let side = &mut run.stated[usize::from(k == "ours")];
                            let (aspect, value) = v.split_once(' ').unwrap_or((v, ""));
                            match aspect {
                                "exit" => side.exit = Some(value.trim().to_string()),
                                "unchanged" => side.unchanged = true,
                                "dep-rewritten" => {
                                    side.dep_rewritten = Some(match value.trim() {
                                        "yes" => true,
                                        "no" => false,
                                        other => {
                                            panic!("{name}: dep-rewritten yes|no, not {other}")
                                        }
                                    })
                                }
                                "stdout" | "stderr" => {
                                    let mut data = Vec::new();
                                    while let Some(l) =
                                        lines.peek().and_then(|l| l.strip_prefix("    "))
                                    {
                                        lines.next();
                                        data.extend(synth::unescape(l));
                                        data.push(b'\n');
                                    }
                                    *(if aspect == "stdout" {
                                        &mut side.stdout
                                    } else {
                                        &mut side.stderr
                                    }) = Some(data);
                                }
                                other => panic!("{name}: unknown statement `{k} {other}`"),
                            }
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

/// Applies one non-run action to the copy at `root` (which depmod will see at `run_root`).
fn apply(action: &Action, root: &Path, run_root: &Path, version: &str) {
    // Paths of steps are relative to the root; `$ROOT/` may spell it out.
    let at = |p: &str| root.join(subst(p.trim_start_matches("$ROOT/"), run_root, version));
    match action {
        Action::Build(step) => synth::apply(step, root, run_root.to_str().unwrap()),
        Action::Touch { path, when } => {
            let p = at(path);
            unshare_file(&p);
            let now = SystemTime::now();
            let t = match when {
                When::FromNow(s) if *s >= 0 => now + Duration::from_secs(s.unsigned_abs()),
                When::FromNow(s) => now - Duration::from_secs(s.unsigned_abs()),
                When::At(d) => SystemTime::UNIX_EPOCH + *d,
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
        Action::Fifo { path } => {
            let p = at(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            let ok = Command::new("mkfifo").arg(&p).status().is_ok_and(|s| s.success());
            assert!(ok, "mkfifo {}", p.display());
        }
        Action::SystemMap { path, missing } => {
            let dir = root.join("lib/modules").join(version);
            fs::write(at(path), system_map(&dir, missing)).unwrap();
        }
        Action::Symvers { path, missing, bad_crc } => {
            let dir = root.join("lib/modules").join(version);
            fs::write(at(path), module_symvers(&dir, missing, bad_crc)).unwrap();
        }
        Action::Run(_) => unreachable!(),
    }
}

/// Moves the files `paths` (relative) from under `from` to the same places under `to`.
fn move_files(paths: &[String], from: &Path, to: &Path) {
    for p in paths {
        let dst = to.join(p);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::rename(from.join(p), &dst).unwrap_or_else(|e| panic!("moving {p}: {e}"));
    }
}

/// Runs `depmod` for `run` with the copy at `root`; `work` holds scratch files.
fn execute(
    depmod: &Depmod,
    run: &Run,
    root: &Path,
    version: &str,
    work: &Path,
    host: Option<&HostConfig>,
    timing: bool,
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
    // Descriptors inherited from whatever started the tests (a CI runner, a terminal) are closed:
    // kmod walks a symlink loop until it runs out of them, so its output depends on how many are
    // free.
    let mut limits = String::from(
        "for f in /proc/$$/fd/*; do f=${f##*/}; [ \"$f\" -gt 2 ] && eval \"exec $f>&-\"; done; ",
    );
    if let Some(n) = run.nofile {
        limits.push_str(&format!("ulimit -n {n} && "));
    }
    if let Some(m) = &run.umask {
        limits.push_str(&format!("umask {m} && "));
    }
    let inner = {
        let mut c = Command::new("bash");
        c.args(["-c", &format!("{limits}exec \"$@\""), "bash"]);
        c.arg(inner.get_program()).args(inner.get_args());
        c
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
    if timing {
        cmd.env("DEPMOD_TIMING", "1");
    }
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

struct Context {
    kmod: Option<Depmod>,
    real: Option<(PathBuf, String)>,
    host: Option<Option<HostConfig>>,
    update: bool,
    warm: bool,
    /// What the warm runs took from the cache.
    cache_use: warm::Use,
}

/// Runs one scenario; its problems.
fn run_scenario(dir: &Path, ctx: &mut Context) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let text = fs::read_to_string(dir.join("scenario")).unwrap();
    let real_version = ctx.real.as_ref().map(|(_, v)| v.as_str());
    let s = parse(&name, &text, real_version);
    if s.real && ctx.real.is_none() {
        return Vec::new(); // common::tree reported it
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
    // When our copy last changed, for a warm run (its files must have settled).
    let mut changed = Instant::now();
    for action in &s.actions {
        let Action::Run(run) = action else {
            for (_, root) in &copies {
                apply(action, root, &run_root, &s.version);
            }
            changed = Instant::now();
            continue;
        };
        runs += 1;
        let label = format!("[{name} run {runs}: {}]", run.args.join(" "));
        let role = run.kmod.clone().unwrap_or(KmodRole::Compare);
        let stated = run.stated.iter().any(|st| !st.is_empty());
        let mut outcomes = Vec::new();
        for (side, (who, root)) in copies.iter().enumerate() {
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
            if ctx.warm && *who == "ours" {
                // The same run first, for the cache it writes; then everything else back.
                let saved = warm::Snapshot::take(&run_root);
                warm::settle_since(changed);
                warm::ask_for_cache(&run_root, &s.version);
                execute(&depmod, run, &run_root, &s.version, &work, host, false);
                saved.restore(&run_root);
            }
            let mut before = snapshot(&run_root);
            let without = if *who == "kmod" { &run.kmod_without[..] } else { &[] };
            let aside = work.join("aside");
            move_files(without, &run_root, &aside);
            let warm = ctx.warm && *who == "ours";
            let mut o = execute(&depmod, run, &run_root, &s.version, &work, host, warm);
            if warm {
                // Only the timing lines asked for here: what the cache gave.
                o.stderr = ctx.cache_use.take_timing(&o.stderr);
            }
            if !without.is_empty() {
                move_files(without, &aside, &run_root);
                o.files = snapshot(&run_root);
            }
            fs::rename(&run_root, root).unwrap();
            // The cache is ours alone, and is not compared.
            for files in [&mut before, &mut o.files] {
                match (warm::take_caches(files), *who) {
                    (Ok(0), _) | (Ok(_), "ours") => {}
                    (Ok(n), _) => problems.push(format!("{label} {who}: {n} module caches")),
                    (Err(e), _) => problems.push(format!("{label} {who}: a bad cache: {e}")),
                }
            }
            for p in check_expectations(run, &o, &run_root, &s.version, who) {
                problems.push(format!("{label} {p}"));
            }
            let expand = |t: &str| subst(t, &run_root, &s.version);
            for p in run.stated[side].check(&o, &before, &expand) {
                problems.push(format!("{label} {who}, against what the scenario states: {p}"));
            }
            outcomes.push((*who, o));
        }
        let marked = matches!(role, KmodRole::Differs(_) | KmodRole::Pending(_));
        if let ([(_, kmod), (_, ours)], true) = (outcomes.as_slice(), marked) {
            if differences(kmod, ours).is_empty() {
                problems.push(format!(
                    "{label} marked `differs` or `pending`, but kmod 34.2 and ours agree: remove the mark"
                ));
            }
        }
        match (&role, outcomes.as_slice()) {
            (KmodRole::Compare, [(_, kmod), (_, ours)]) => {
                for d in differences(kmod, ours) {
                    problems.push(format!("{label} kmod 34.2 vs ours: {d}"));
                }
            }
            (KmodRole::Compare, _) => {} // no kmod: only the expectations are checked
            // The difference is stated: the rest must agree.
            (_, [(_, kmod), (_, ours)]) if stated => {
                for d in differences_except(kmod, ours, &run.stated) {
                    problems.push(format!("{label} kmod 34.2 vs ours, beyond what is stated: {d}"));
                }
            }
            (_, _) if stated => {}
            (_, _) if s.real => problems.push(format!(
                "{label} a `differs`, `pending` or `kmod skip` run on the real tree must state its \
                 outcome (`kmod|ours exit N`, `stdout`, `stderr`, `unchanged`, `dep-rewritten \
                 yes|no`, `kmod without PATH...`): a recording in expected/ would hold the \
                 package's version and module sizes, which move"
            )),
            (KmodRole::Differs(_) | KmodRole::Pending(_) | KmodRole::Skip(_), _) => {
                for (who, o) in &outcomes {
                    let expected = dir.join("expected").join(format!("{runs}-{who}"));
                    for p in against_expected(&expected, o, &run_root, ctx.update) {
                        problems.push(format!("{label} {who}: {p}"));
                    }
                }
            }
        }
        if stated || s.real {
            for who in ["kmod", "ours"] {
                let recorded = dir.join("expected").join(format!("{runs}-{who}"));
                if recorded.exists() {
                    problems.push(format!(
                        "{label} {} is not used (the run states its outcome): remove it",
                        recorded.display()
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn scenarios() {
    let start = Instant::now();
    // Output modes are compared and held in expected/: the same umask wherever this runs.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let mut ctx = Context {
        kmod: kmod34().map(Depmod::Kmod),
        real: common::main_tree(),
        host: None,
        update: std::env::var_os("UPDATE_SCENARIOS").is_some(),
        warm: warm::enabled(),
        cache_use: warm::Use::default(),
    };
    let only = std::env::var("SCENARIO_ONLY").ok();
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in scenario_dirs("scenarios") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        count += 1;
        eprintln!("scenario {name}");
        failures.extend(run_scenario(&dir, &mut ctx));
    }
    let mode = if ctx.warm {
        format!(", ours with a warm cache: {}", ctx.cache_use)
    } else {
        String::new()
    };
    eprintln!("{count} scenarios in {:.1} s{mode}", start.elapsed().as_secs_f64());
    if ctx.warm && ctx.cache_use.recalled == 0 {
        failures.push("no warm run recalled any module from the cache".into());
    }
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
