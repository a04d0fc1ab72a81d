//! Golden scenarios: synthetic module trees described in `tests/golden/<name>/scenario`, with the
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
//! file PATH / file-noeol PATH        a text file; its lines follow, indented by two spaces
//! symlink PATH TARGET / dir PATH
//! ```

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use depmod_core::Endian;
use depmod_core::elf::writer::{Class, ModuleSpec};
use support::{Depmod, OUTPUTS, compare_file, kmod34, scratch};

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

/// A change to a built module file, to make it malformed.
enum Patch {
    Bytes { section: String, offset: i64, bytes: Vec<u8> },
    Truncate(usize),
}

enum Step {
    Module { path: String, spec: ModuleSpec, compress: Option<String>, patches: Vec<Patch> },
    File { path: String, data: Vec<u8> },
    Symlink { path: String, target: String },
    Dir { path: String },
}

/// Decodes `\0 \n \t \xNN \\` escapes.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'0' => out.push(0),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                other => out.push(other),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
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
        let path_of = |p: &str| p.replace("$MOD", &mod_dir);
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
            "module" => {
                let mut words = rest.split_whitespace();
                let path = path_of(words.next().expect("module path"));
                let mut spec = ModuleSpec::new();
                let mut compress = None;
                let mut crcs = false;
                let mut patches = Vec::new();
                for opt in words {
                    match opt.split_once('=') {
                        Some(("class", "32")) => spec.class = Class::Elf32,
                        Some(("class", "64")) => spec.class = Class::Elf64,
                        Some(("endian", "big")) => spec.endian = Endian::Big,
                        Some(("endian", "little")) => spec.endian = Endian::Little,
                        Some(("namespace", ns)) => spec.namespace = Some(ns.as_bytes().to_vec()),
                        Some(("machine", m)) => spec.machine = m.parse().unwrap(),
                        Some(("compress", c)) => compress = Some(c.to_string()),
                        None if opt == "crcs" => crcs = true,
                        _ => panic!("{name}: unknown module option {opt}"),
                    }
                }
                while let Some(next) = lines.peek() {
                    let Some(body) = next.strip_prefix("  ") else {
                        break;
                    };
                    lines.next();
                    let (kind, args) = body.split_once(' ').unwrap_or((body, ""));
                    match kind {
                        "export" => spec.exports.extend(args.split_whitespace().map(unescape)),
                        "need" => spec
                            .imports
                            .extend(args.split_whitespace().map(|n| (unescape(n), false))),
                        "weak" => spec
                            .imports
                            .extend(args.split_whitespace().map(|n| (unescape(n), true))),
                        "modinfo" => spec.modinfo.push(unescape(args)),
                        "version" => {
                            let (n, crc) = args.split_once(' ').expect("version NAME CRC");
                            let crc =
                                u64::from_str_radix(crc.trim_start_matches("0x"), 16).unwrap();
                            spec.versions.push((unescape(n), crc));
                        }
                        "patch" => {
                            let w: Vec<&str> = args.split_whitespace().collect();
                            let bytes = (0..w[2].len())
                                .step_by(2)
                                .map(|i| u8::from_str_radix(&w[2][i..i + 2], 16).unwrap())
                                .collect();
                            let offset = w[1].parse().unwrap();
                            patches.push(Patch::Bytes { section: w[0].to_string(), offset, bytes });
                        }
                        "section" => {
                            let (n, data) = args.split_once(' ').unwrap_or((args, ""));
                            spec.extra_sections.push((n.to_string(), unescape(data)));
                        }
                        "truncate" => patches.push(Patch::Truncate(args.trim().parse().unwrap())),
                        _ => panic!("{name}: unknown module line {body}"),
                    }
                }
                if crcs {
                    let n = spec.exports.len() as u32;
                    spec.crcs = Some((0..n).map(|i| 0x1000_0000 + i).collect());
                }
                s.steps.push(Step::Module { path, spec, compress, patches });
            }
            "file" | "file-noeol" => {
                let path = path_of(rest.trim());
                let mut data = Vec::new();
                while let Some(next) = lines.peek() {
                    let Some(body) = next.strip_prefix("  ") else {
                        break;
                    };
                    lines.next();
                    data.extend(unescape(body));
                    data.push(b'\n');
                }
                if word == "file-noeol" {
                    data.pop();
                }
                s.steps.push(Step::File { path, data });
            }
            "symlink" => {
                let (p, t) = rest.split_once(' ').expect("symlink PATH TARGET");
                s.steps.push(Step::Symlink { path: path_of(p), target: path_of(t.trim()) });
            }
            "dir" => s.steps.push(Step::Dir { path: path_of(rest.trim()) }),
            _ => panic!("{name}: unknown scenario line: {line}"),
        }
    }
    s
}

fn build(s: &Scenario, root: &Path) {
    fs::create_dir_all(root.join("etc/depmod.d")).unwrap();
    fs::create_dir_all(root.join(format!("lib/modules/{}", s.version))).unwrap();
    for step in &s.steps {
        let (path, parent) = match step {
            Step::Module { path, .. }
            | Step::File { path, .. }
            | Step::Symlink { path, .. }
            | Step::Dir { path } => (root.join(path), root.join(path).parent().unwrap().to_owned()),
        };
        fs::create_dir_all(parent).unwrap();
        match step {
            Step::Module { spec, compress, patches, .. } => {
                let mut elf = spec.build();
                apply_patches(&mut elf, patches);
                let data = match compress.as_deref() {
                    None => elf,
                    Some(tool) => compress_with(tool, &elf),
                };
                fs::write(&path, data).unwrap();
            }
            Step::File { data, .. } => fs::write(&path, data).unwrap(),
            Step::Symlink { target, .. } => std::os::unix::fs::symlink(target, &path).unwrap(),
            Step::Dir { .. } => fs::create_dir_all(&path).unwrap(),
        }
    }
}

fn apply_patches(elf: &mut Vec<u8>, patches: &[Patch]) {
    for p in patches {
        match p {
            Patch::Truncate(len) => elf.truncate(*len),
            Patch::Bytes { section, offset, bytes } => {
                let (start, len) = if section == "file" {
                    (0, elf.len())
                } else {
                    let parsed = depmod_core::elf::Elf::parse(elf).expect("patch needs valid ELF");
                    let s = parsed.section_by_name(section).expect("patched section exists");
                    (s.offset as usize, s.data.len())
                };
                let at = if *offset < 0 {
                    start + len - offset.unsigned_abs() as usize
                } else {
                    start + *offset as usize
                };
                elf[at..at + bytes.len()].copy_from_slice(bytes);
            }
        }
    }
}

/// Compresses with the command-line tool for `ext` (`xz`, `zst`, `gz`), as distributions do.
fn compress_with(ext: &str, data: &[u8]) -> Vec<u8> {
    match ext {
        "xz" => support::compress("xz", data),
        "zst" => support::compress("zstd", data),
        "gz" => support::compress("gzip", data),
        other => panic!("unknown compression {other}"),
    }
}

/// What one depmod run produced, normalised for comparison.
struct Results {
    files: Vec<(String, Vec<u8>)>,
}

/// Replaces the scenario root and C pointer values, which differ from run to run.
fn normalise(text: &[u8], root: &Path) -> Vec<u8> {
    let text = String::from_utf8_lossy(text).replace(root.to_str().unwrap(), "$ROOT");
    let mut out = String::new();
    let mut rest = text.as_str();
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

fn scenario_dirs() -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("scenario").is_file())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn golden_scenarios() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let kmod = kmod34();
    let only = std::env::var("GOLDEN_ONLY").ok();
    let mut failures = Vec::new();
    let mut count = 0;
    for dir in scenario_dirs() {
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
