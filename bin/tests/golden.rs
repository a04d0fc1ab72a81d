//! Golden scenarios: synthetic module trees described in `tests/cases/golden/<name>/scenario`, with the
//! expected results (kmod 34.2's) beside them in `expected/`.
//!
//! Each scenario is built twice from its description; this depmod must reproduce `expected/`
//! exactly (exit status, stdout, stderr, every output file), and kmod 34.2 run on the other copy
//! must too, which proves the expectation is kmod's. `UPDATE_GOLDEN=1` rewrites `expected/` from
//! kmod's run; where the scenario says `kmod skip` or `kmod differs`, `expected/` comes from our
//! run and must be reviewed by hand (and `expected-kmod/` from kmod's).
//!
//! `DEPMOD_RS_WARM=1` runs ours with a warm module cache: once the tree is settled, the same run
//! first writes a cache (asked for by an empty `modules.cache.bin`: the runs give `-b`), its
//! indexes are removed, and the run compared recalls the modules from it. The cache is left
//! in the tree, and checked: valid, or (a run that fails) still the empty file.
//!
//! Scenario syntax (paths relative to the scenario root; `$MOD` is `lib/modules/VERSION`):
//! ```text
//! # comment
//! version 4.4.4                      kernel release (default 4.4.4)
//! args -b $ROOT -C $ROOT/etc/depmod.d 4.4.4   arguments (this is the default)
//! kmod skip REASON                   do not run kmod (it hangs or aborts here)
//! kmod differs REASON                kmod's results are in expected-kmod/ (a deliberate difference)
//! module PATH [class=32|64] [endian=little|big] [crcs] [namespace=NS] [machine=N] [compress=xz|zst|gz]
//!   export NAME...   need NAME...   weak NAME...
//!   modinfo KEY=VALUE                one .modinfo string (escapes: \0 \n \t \xNN \\)
//!   version NAME CRC                 a __versions record
//!   section NAME BYTES               an extra section (escapes as above)
//!   patch SECTION OFFSET HEX         overwrite bytes of the built file: OFFSET is relative to
//!                                    the named section (negative: from its end), or to the file
//!                                    when SECTION is `file`; applied before compression
//!   truncate LENGTH                  cut the built file to LENGTH bytes
//!   locals COUNT                     COUNT unnamed local functions in the symbol table
//!   local-need NAME[*COPIES]...      undefined symbols bound STB_LOCAL, amid those locals
//!   named-locals COUNT               COUNT local functions named local_fn_N, amid those locals
//! file PATH / file-noeol PATH        a text file; its lines follow, indented by two spaces
//! symlink PATH TARGET / dir PATH
//! ```

mod common;

use std::fs;
use std::path::Path;

use common::synth::{self, Step};
use common::{Depmod, OUTPUTS, compare_file, kmod34, normalise_pointers, scenario_dirs, scratch};

/// How kmod takes part in a scenario.
#[derive(Clone, Debug, PartialEq)]
enum KmodRole {
    Compare,
    Skip,
    Differs,
}

struct Scenario {
    name: String,
    version: String,
    args: Option<String>,
    kmod: KmodRole,
    /// Build steps, applied to a fresh root.
    steps: Vec<Step>,
}

fn parse(name: &str, text: &str) -> Scenario {
    let mut s = Scenario {
        name: name.to_string(),
        version: "4.4.4".into(),
        args: None,
        kmod: KmodRole::Compare,
        steps: Vec::new(),
    };
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mod_dir = format!("lib/modules/{}", s.version);
        match word {
            "version" => s.version = rest.trim().to_string(),
            "args" => s.args = Some(rest.trim().to_string()),
            "kmod" => {
                s.kmod = match rest.split_whitespace().next() {
                    Some("skip") => KmodRole::Skip,
                    Some("differs") => KmodRole::Differs,
                    other => panic!("{name}: unknown kmod role {other:?}"),
                }
            }
            _ => match synth::parse_step(name, word, rest, &mut lines, &mod_dir) {
                Some(step) => s.steps.push(step),
                None => panic!("{name}: unknown scenario line: {line}"),
            },
        }
    }
    s
}

fn build(s: &Scenario, root: &Path) {
    fs::create_dir_all(root.join("etc/depmod.d")).unwrap();
    fs::create_dir_all(root.join(format!("lib/modules/{}", s.version))).unwrap();
    for step in &s.steps {
        synth::apply(step, root, root.to_str().unwrap());
    }
}

/// What one depmod run produced, normalised for comparison.
struct Results {
    files: Vec<(String, Vec<u8>)>,
}

/// Replaces the scenario root and C pointer values, which differ from run to run.
fn normalise(text: &[u8], root: &Path) -> Vec<u8> {
    let text = String::from_utf8_lossy(text).replace(root.to_str().unwrap(), "$ROOT");
    normalise_pointers(text.as_bytes())
}

fn run(s: &Scenario, depmod: &Depmod, root: &Path) -> Results {
    run_timed(s, depmod, root, &mut Vec::new())
}

/// [`run`], with `DEPMOD_TIMING`'s lines (ours alone prints them) taken out of stderr into
/// `timing` when it is not empty.
fn run_timed(s: &Scenario, depmod: &Depmod, root: &Path, timing: &mut Vec<String>) -> Results {
    let args =
        s.args.clone().unwrap_or_else(|| format!("-b $ROOT -C $ROOT/etc/depmod.d {}", s.version));
    let args: Vec<String> =
        args.split_whitespace().map(|a| a.replace("$ROOT", root.to_str().unwrap())).collect();
    let mut cmd = depmod.command(&args);
    let timed = !timing.is_empty();
    if timed {
        timing.clear();
        cmd.env("DEPMOD_TIMING", "1");
    }
    let out = cmd.output().expect("depmod runs");
    let mut stderr = Vec::new();
    for line in out.stderr.split_inclusive(|&c| c == b'\n') {
        match line.strip_prefix(b"depmod: timing: ").filter(|_| timed) {
            Some(t) => timing.push(String::from_utf8_lossy(t).into_owned()),
            None => stderr.extend_from_slice(line),
        }
    }
    let mut files = vec![
        ("exit".to_string(), format!("{}\n", out.status.code().unwrap_or(-1)).into_bytes()),
        ("stdout".to_string(), normalise(&out.stdout, root)),
        ("stderr".to_string(), normalise(&stderr, root)),
    ];
    let dir = root.join(format!("lib/modules/{}", s.version));
    for name in OUTPUTS {
        if let Ok(data) = fs::read(dir.join(name)) {
            files.push((name.to_string(), data));
        }
    }
    Results { files }
}

/// The module cache's name.
const CACHE: &str = "modules.cache.bin";
/// The identity this build records (bin/src/cache.rs).
const PROGRAM: &str =
    concat!("depmod-rs ", env!("CARGO_PKG_VERSION"), " build ", env!("DEPMOD_BUILD_ID"));

/// The cache in the module directory `dir`, if any, is the empty file that asks for one or a
/// valid cache of this build for `dir`.
fn check_cache(dir: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(data) = fs::read(dir.join(CACHE)) else { return Ok(()) };
    if data.is_empty() {
        return Ok(());
    }
    let data: depmod_core::bytes::Shared = data.into();
    let identity = depmod_core::cache::Identity {
        program: PROGRAM.as_bytes(),
        tree: dir.as_os_str().as_bytes(),
    };
    depmod_core::cache::Cache::parse(&data, identity)
        .map(drop)
        .map_err(|e| format!("{}: {e}", dir.join(CACHE).display()))
}

fn read_expected(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec!["exit".to_string(), "stdout".to_string(), "stderr".to_string()];
    names.extend(OUTPUTS.iter().map(|s| s.to_string()));
    names.into_iter().filter_map(|n| fs::read(dir.join(&n)).ok().map(|d| (n, d))).collect()
}

fn write_expected(dir: &Path, r: &Results) {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).unwrap();
    for (name, data) in &r.files {
        fs::write(dir.join(name), data).unwrap();
    }
}

/// Every difference between expected and actual results.
fn differences(expected: &[(String, Vec<u8>)], actual: &Results) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, data) in expected {
        match actual.files.iter().find(|(n, _)| n == name) {
            Some((_, got)) => {
                if let Err(d) = compare_file(name, data, got) {
                    problems.push(d);
                }
            }
            None => problems.push(format!("{name}: expected, but not written")),
        }
    }
    for (name, _) in &actual.files {
        if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!("{name}: written, but not expected"));
        }
    }
    problems
}

#[test]
fn golden_scenarios() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let kmod = kmod34();
    let only = std::env::var("GOLDEN_ONLY").ok();
    let warm = std::env::var_os("DEPMOD_RS_WARM").is_some_and(|v| !v.is_empty() && v != "0");
    let mut recalled = 0;
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in scenario_dirs("golden") {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if only.as_ref().is_some_and(|o| !name.contains(o.as_str())) {
            continue;
        }
        count += 1;
        let text = fs::read_to_string(dir.join("scenario")).unwrap();
        let s = parse(&name, &text);
        let work = scratch(&format!("golden-{name}"));

        let ours_root = work.join("ours");
        build(&s, &ours_root);
        let moddir = ours_root.join(format!("lib/modules/{}", s.version));
        let ours = if warm {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            fs::write(moddir.join(CACHE), b"").unwrap();
            run(&s, &Depmod::Ours, &ours_root);
            for name in OUTPUTS {
                let _ = fs::remove_file(moddir.join(name));
            }
            let mut timing = vec![String::new()];
            let ours = run_timed(&s, &Depmod::Ours, &ours_root, &mut timing);
            let walk = timing.iter().find(|l| l.contains("files recalled"));
            let n =
                walk.and_then(|l| l.split('(').nth(1)?.split(' ').next()?.parse::<usize>().ok());
            recalled += n.unwrap_or(0);
            ours
        } else {
            run(&s, &Depmod::Ours, &ours_root)
        };
        if let Err(e) = check_cache(&moddir) {
            failures.push(format!("[{name}] {e}"));
        }

        let kmod_results = match (&kmod, &s.kmod) {
            (Some(k), KmodRole::Compare | KmodRole::Differs) => {
                let root = work.join("kmod");
                build(&s, &root);
                Some(run(&s, &Depmod::Kmod(k.clone()), &root))
            }
            _ => None,
        };
        let kmod_dir = match s.kmod {
            KmodRole::Differs => dir.join("expected-kmod"),
            _ => dir.join("expected"),
        };
        if update {
            if let Some(k) = &kmod_results {
                write_expected(&kmod_dir, k);
            }
            if s.kmod != KmodRole::Compare {
                eprintln!("{name}: expected/ written from OUR run ({:?}): review it", s.kmod);
                write_expected(&dir.join("expected"), &ours);
            }
        }
        for d in differences(&read_expected(&dir.join("expected")), &ours) {
            failures.push(format!("[{name}] ours vs expected: {d}"));
        }
        if let Some(k) = &kmod_results {
            for d in differences(&read_expected(&kmod_dir), k) {
                failures.push(format!("[{name}] kmod 34.2 vs {}: {d}", kmod_dir.display()));
            }
        }
        if s.name.contains("chained") {
            // kmod never finishes these; ours must, quickly.
            let start = std::time::Instant::now();
            let _ = run(&s, &Depmod::Ours, &ours_root);
            let took = start.elapsed();
            if took > std::time::Duration::from_secs(1) {
                failures.push(format!("[{name}] took {took:?}, more than a second"));
            }
        }
    }
    assert!(count > 0, "no scenario matched");
    if warm {
        eprintln!("golden: ours with a warm cache recalled {recalled} module files");
        assert!(recalled > 0, "no warm run recalled any module from the cache");
    }
    if !failures.is_empty() {
        panic!(
            "{} problem(s) in {count} scenarios (UPDATE_GOLDEN=1 rewrites expected/ from \
             kmod 34.2):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
