//! Synthetic trees for the golden and scenario tests: the build steps of a scenario file
//! (`module`, `file`, `file-noeol`, `symlink`, `dir`) and how they are applied to a root.
//!
//! ```text
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
//! `$MOD` in paths is `lib/modules/VERSION`.

use std::fs;
use std::iter::Peekable;
use std::path::Path;
use std::process::Command;

use depmod_core::Endian;
use depmod_core::elf::writer::{Class, ModuleSpec};

/// A change to a built module file, to make it malformed.
pub enum Patch {
    Bytes { section: String, offset: i64, bytes: Vec<u8> },
    Truncate(usize),
}

/// One build step.
pub enum Step {
    Module { path: String, spec: Box<ModuleSpec>, compress: Option<String>, patches: Vec<Patch> },
    File { path: String, data: Vec<u8> },
    Symlink { path: String, target: String },
    Dir { path: String },
}

/// Decodes `\0 \n \t \xNN \\` escapes.
pub fn unescape(s: &str) -> Vec<u8> {
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

/// The lines indented by two spaces that follow, without the indentation.
pub fn body<'a, I: Iterator<Item = &'a str>>(lines: &mut Peekable<I>) -> Vec<&'a str> {
    let mut out = Vec::new();
    while let Some(next) = lines.peek() {
        let Some(b) = next.strip_prefix("  ") else { break };
        out.push(b);
        lines.next();
    }
    out
}

/// Parses the build step starting with `word rest` (its indented body is taken from `lines`);
/// `None` when `word` is not a build step. `scenario` names the scenario in panics.
pub fn parse_step<'a, I: Iterator<Item = &'a str>>(
    scenario: &str,
    word: &str,
    rest: &str,
    lines: &mut Peekable<I>,
    mod_dir: &str,
) -> Option<Step> {
    let path_of = |p: &str| p.replace("$MOD", mod_dir);
    let step = match word {
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
                    _ => panic!("{scenario}: unknown module option {opt}"),
                }
            }
            for line in body(lines) {
                let (kind, args) = line.split_once(' ').unwrap_or((line, ""));
                match kind {
                    "export" => spec.exports.extend(args.split_whitespace().map(unescape)),
                    "need" => {
                        spec.imports.extend(args.split_whitespace().map(|n| (unescape(n), false)))
                    }
                    "weak" => {
                        spec.imports.extend(args.split_whitespace().map(|n| (unescape(n), true)))
                    }
                    "modinfo" => spec.modinfo.push(unescape(args)),
                    "version" => {
                        let (n, crc) = args.split_once(' ').expect("version NAME CRC");
                        let crc = u64::from_str_radix(crc.trim_start_matches("0x"), 16).unwrap();
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
                    "locals" => spec.plain_locals = args.trim().parse().unwrap(),
                    "named-locals" => spec.named_locals = args.trim().parse().unwrap(),
                    "local-need" => {
                        for name in args.split_whitespace() {
                            let (name, copies) = match name.split_once('*') {
                                Some((n, c)) => (n, c.parse().unwrap()),
                                None => (name, 1),
                            };
                            spec.local_imports.extend(std::iter::repeat_n(unescape(name), copies));
                        }
                    }
                    _ => panic!("{scenario}: unknown module line {line}"),
                }
            }
            if crcs {
                let n = spec.exports.len() as u32;
                spec.crcs = Some((0..n).map(|i| 0x1000_0000 + i).collect());
            }
            Step::Module { path, spec: Box::new(spec), compress, patches }
        }
        "file" | "file-noeol" => {
            let path = path_of(rest.trim());
            let mut data = Vec::new();
            for line in body(lines) {
                data.extend(unescape(line));
                data.push(b'\n');
            }
            if word == "file-noeol" {
                data.pop();
            }
            Step::File { path, data }
        }
        "symlink" => {
            let (p, t) = rest.split_once(' ').expect("symlink PATH TARGET");
            Step::Symlink { path: path_of(p), target: path_of(t.trim()) }
        }
        "dir" => Step::Dir { path: path_of(rest.trim()) },
        _ => return None,
    };
    Some(step)
}

/// Applies `step` under `root`; `$ROOT` in file contents and symlink targets becomes `run_root`
/// (where depmod will see the tree).
pub fn apply(step: &Step, root: &Path, run_root: &str) {
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
            let _ = fs::remove_file(&path);
            fs::write(&path, data).unwrap();
        }
        Step::File { data, .. } => {
            let text = String::from_utf8_lossy(data);
            let data = if text.contains("$ROOT") {
                text.replace("$ROOT", run_root).into_bytes()
            } else {
                data.clone()
            };
            // A new file, so that a hard-linked input is never written through.
            let _ = fs::remove_file(&path);
            fs::write(&path, data).unwrap();
        }
        Step::Symlink { target, .. } => {
            std::os::unix::fs::symlink(target.replace("$ROOT", run_root), &path).unwrap()
        }
        Step::Dir { .. } => fs::create_dir_all(&path).unwrap(),
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

/// Compresses with the command-line tool (`xz`, `zst`, `gz`), as distributions do: a zstd frame
/// records the content size, as `zstd FILE` writes it (`zst-stream` leaves it out, as a pipe
/// does).
pub fn compress_with(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut cmd = match tool {
        "xz" => Command::new("xz"),
        "zst" => {
            let mut c = Command::new("zstd");
            c.arg(format!("--stream-size={}", data.len()));
            c
        }
        "zst-stream" => Command::new("zstd"),
        "gz" => Command::new("gzip"),
        other => panic!("unknown compression {other}"),
    };
    let mut child = cmd
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} is needed for this scenario: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    // Written beside the read: a tool whose output fills its pipe stops reading its input, so
    // writing a big module first and reading after deadlocks (zstd's output of the 19 MB
    // big-local-symbols module can exceed the pipe's 64 KiB).
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(data).unwrap());
        child.wait_with_output().unwrap()
    });
    assert!(out.status.success());
    out.stdout
}
