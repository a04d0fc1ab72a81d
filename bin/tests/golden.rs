//! Golden scenarios: synthetic module trees described in `tests/cases/golden/<name>/scenario`, with the
//! expected results (kmod 34.2's) beside them in `expected/`.
//!
//! Each scenario is built twice from its description; this depmod must reproduce `expected/`
//! exactly (exit status, stdout, stderr, every output file), and kmod 34.2 run on the other copy
//! must too, which proves the expectation is kmod's. `UPDATE_GOLDEN=1` rewrites `expected/` from
//! kmod's run; where the scenario says `kmod skip` or `kmod differs`, `expected/` comes from our
//! run and must be reviewed by hand (and `expected-kmod/` from kmod's).
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
    let args =
        s.args.clone().unwrap_or_else(|| format!("-b $ROOT -C $ROOT/etc/depmod.d {}", s.version));
    let args: Vec<String> =
        args.split_whitespace().map(|a| a.replace("$ROOT", root.to_str().unwrap())).collect();
    let out = depmod.run(&args);
    let mut files = vec![
        ("exit".to_string(), format!("{}\n", out.status.code().unwrap_or(-1)).into_bytes()),
        ("stdout".to_string(), normalise(&out.stdout, root)),
        ("stderr".to_string(), normalise(&out.stderr, root)),
    ];
    let dir = root.join(format!("lib/modules/{}", s.version));
    for name in OUTPUTS {
        if let Ok(data) = fs::read(dir.join(name)) {
            files.push((name.to_string(), data));
        }
    }
    Results { files }
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
        let ours = run(&s, &Depmod::Ours, &ours_root);

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
    if !failures.is_empty() {
        panic!(
            "{} problem(s) in {count} scenarios (UPDATE_GOLDEN=1 rewrites expected/ from \
             kmod 34.2):\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}
