//! Malformed inputs: one broken file beside two good modules, for every kind of damage the issue
//! lists. For each, this depmod must print one message naming the file and what is wrong, leave
//! the broken module out, index the good ones (`good_b` depends on `good_a`) and not crash. Where
//! kmod 34.2 accepts the file and indexes it, every output must be kmod's.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

use common::{Depmod, OUTPUTS, compare_dirs, compress, is_root, kmod34, scratch, which};
use depmod_core::elf::writer::ModuleSpec;

const VERSION: &str = "4.4.4";

/// The broken module: 64-bit little endian, with every section depmod reads.
fn bad_spec() -> ModuleSpec {
    let mut spec = ModuleSpec::new();
    spec.modinfo = vec![b"alias=pci:v00001234d*".to_vec(), b"license=GPL".to_vec()];
    spec.exports = vec![b"bad_export".to_vec()];
    spec.imports = vec![(b"ga".to_vec(), false)];
    spec.versions = vec![(b"ga".to_vec(), 0x1234)];
    spec
}

/// Section header fields of an ELF64 little-endian file, as (name, header offset).
fn section_headers(elf: &[u8]) -> Vec<(String, usize)> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shnum, shstrndx) = (u64_at(0x28), u16_at(0x3c), u16_at(0x3e));
    let names = shoff + shstrndx * 64;
    let names_off = u64_at(names + 24);
    (0..shnum)
        .map(|i| {
            let h = shoff + i * 64;
            let n = u32::from_le_bytes(elf[h..h + 4].try_into().unwrap()) as usize;
            let start = names_off + n;
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            (String::from_utf8_lossy(&elf[start..end]).into_owned(), h)
        })
        .collect()
}

/// The offset of section `name`'s header.
fn header(elf: &[u8], name: &str) -> usize {
    section_headers(elf).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name}")).1
}

/// The file range of section `name`.
fn section_range(elf: &[u8], name: &str) -> std::ops::Range<usize> {
    let h = header(elf, name);
    let off = u64::from_le_bytes(elf[h + 24..h + 32].try_into().unwrap()) as usize;
    let size = u64::from_le_bytes(elf[h + 32..h + 40].try_into().unwrap()) as usize;
    off..off + size
}

fn put(elf: &mut [u8], at: usize, bytes: &[u8]) {
    elf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// What a case puts into the tree under `kernel/`.
enum Bad {
    /// A file `bad.ko` with these bytes.
    File(Vec<u8>),
    /// A file with this name and these bytes.
    Named(&'static [u8], Vec<u8>),
    /// A directory named `bad.ko`.
    Dir,
    /// A symbolic link `bad.ko` to this target.
    Link(&'static str),
    /// A named pipe `bad.ko`.
    Fifo,
    /// A valid module `bad.ko` that depmod may not read (mode 000, depmod run as `nobody`).
    Unreadable,
}

struct Case {
    name: String,
    bad: Bad,
    /// What our message must say about it.
    says: &'static str,
}

fn case(name: &str, bad: Bad, says: &'static str) -> Case {
    Case { name: name.to_string(), bad, says }
}

/// A valid module patched by `f`.
fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Bad {
    let mut elf = bad_spec().build();
    f(&mut elf);
    Bad::File(elf)
}

fn cases() -> Vec<Case> {
    let good = bad_spec().build();
    let len = good.len();
    let shoff = u64::from_le_bytes(good[0x28..0x30].try_into().unwrap()) as usize;
    let mut cases = vec![
        case("empty", Bad::File(Vec::new()), "not an ELF file: 0 bytes"),
        case("not-elf", Bad::File(b"#!/bin/sh\necho hello\n".to_vec()), "no \\x7fELF magic"),
        case("class", patched(|e| e[4] = 7), "invalid ELF class 7 in e_ident[4]"),
        case("data", patched(|e| e[5] = 0), "invalid ELF byte order 0 in e_ident[5]"),
        case(
            "shentsize",
            patched(|e| put(e, 0x3a, &40u16.to_le_bytes())),
            "e_shentsize is 40, expected 64",
        ),
        case(
            "shnum",
            patched(|e| put(e, 0x3c, &0xfff0u16.to_le_bytes())),
            "section header table (e_shoff",
        ),
        case(
            "shoff",
            patched(|e| put(e, 0x28, &(1u64 << 40).to_le_bytes())),
            "section header table (e_shoff 0x10000000000",
        ),
        case(
            "shstrndx",
            patched(|e| put(e, 0x3e, &200u16.to_le_bytes())),
            "e_shstrndx 200 is not a section",
        ),
        case(
            "section-past-end",
            patched(|e| {
                let h = header(e, ".modinfo");
                put(e, h + 32, &(len as u64).to_le_bytes());
            }),
            "section 2 (.modinfo) at offset 0x48, size 0x388 runs past the end of the 904-byte",
        ),
        case(
            "section-count-gigabytes",
            patched(|e| {
                let h = header(e, ".symtab");
                put(e, h + 32, &(24u64 << 30).to_le_bytes());
            }),
            "size 0x600000000 runs past the end",
        ),
        case(
            "shstrtab-unterminated",
            patched(|e| {
                let r = section_range(e, ".shstrtab");
                e[r.end - 1] = b'x';
            }),
            "does not end with a NUL byte",
        ),
        case(
            "strtab-unterminated",
            patched(|e| {
                let r = section_range(e, ".strtab");
                for b in &mut e[r.clone()] {
                    if *b == 0 {
                        *b = b'x';
                    }
                }
            }),
            ".strtab does not end with a NUL byte",
        ),
        case(
            "symtab-size",
            patched(|e| {
                let h = header(e, ".symtab");
                let size = u64::from_le_bytes(e[h + 32..h + 40].try_into().unwrap());
                put(e, h + 32, &(size - 5).to_le_bytes());
            }),
            ".symtab size",
        ),
        case(
            "symtab-link",
            patched(|e| {
                let h = header(e, ".symtab");
                put(e, h + 40, &0u32.to_le_bytes());
            }),
            ".symtab's sh_link is 0",
        ),
        case(
            "symtab-entsize",
            patched(|e| {
                let h = header(e, ".symtab");
                put(e, h + 56, &16u64.to_le_bytes());
            }),
            ".symtab's sh_entsize is 16, expected 24",
        ),
        case(
            "modinfo-unterminated",
            patched(|e| {
                let r = section_range(e, ".modinfo");
                e[r.end - 1] = b'x';
            }),
            ".modinfo does not end with a NUL byte",
        ),
        // A directory named like a module is walked like any directory (kmod does the same).
        case("directory", Bad::Dir, ""),
        case("dangling-symlink", Bad::Link("nowhere.ko"), "No such file or directory"),
        case("symlink-loop", Bad::Link("bad.ko"), "Too many levels of symbolic links"),
        case("fifo", Bad::Fifo, "unsupported file type"),
        case("unreadable", Bad::Unreadable, "Permission denied"),
        case(
            "non-utf8-name",
            Bad::Named(b"bad\xff.ko", b"\x7fELF garbage".to_vec()),
            "shorter than an ELF identification",
        ),
        case(
            "overlapping-sections",
            patched(|e| {
                let symtab = section_range(e, ".symtab");
                let h = header(e, ".modinfo");
                put(e, h + 24, &(symtab.start as u64).to_le_bytes());
            }),
            ".modinfo and .symtab overlap",
        ),
    ];
    // Truncated at every structure boundary and in between.
    let mut cuts = vec![1, 15, 16, 17, 40, 63, 64, 65, shoff - 1, shoff, shoff + 1, len - 1];
    cuts.extend((1..8).map(|i| len * i / 8));
    for name in [".modinfo", ".symtab", ".strtab", "__versions", ".shstrtab"] {
        let r = section_range(&good, name);
        cuts.extend([r.start, r.start + 1, (r.start + r.end) / 2, r.end - 1]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        cases.push(case(
            &format!("truncated-{cut}"),
            Bad::File(good[..cut].to_vec()),
            if cut < 17 { "not an ELF file" } else { "byte" },
        ));
    }
    // Compressed streams: corrupt, truncated, and with a wrong checksum.
    for (tool, ext, check_at) in [("xz", "xz", 12usize), ("zstd", "zst", 4), ("gzip", "gz", 8)] {
        let Some(_) = which(tool) else {
            common::missing(tool);
            continue;
        };
        let packed = compress(tool, &good);
        let name = |what: &str| format!("{ext}-{what}");
        let file = |data: Vec<u8>| -> Bad {
            let path: &'static [u8] = Box::leak(format!("bad.ko.{ext}").into_bytes().into());
            Bad::Named(path, data)
        };
        let mut corrupt = packed.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0x55;
        cases.push(case(&name("corrupt"), file(corrupt), ext_word(ext)));
        cases.push(case(
            &name("truncated"),
            file(packed[..packed.len() * 2 / 3].to_vec()),
            ext_word(ext),
        ));
        cases.push(case(
            &name("header-only"),
            file(packed[..check_at.min(packed.len())].to_vec()),
            ext_word(ext),
        ));
        // The stored checksum (xz: CRC64 before the index; zstd: with --check, the last 4
        // bytes; gzip: the CRC-32 in the trailer).
        let mut bad_sum = packed.clone();
        let at = match ext {
            "gz" => bad_sum.len() - 8,
            "zst" => bad_sum.len() - 4,
            _ => bad_sum.len() - 12 - 1,
        };
        bad_sum[at] ^= 0xff;
        cases.push(case(&name("checksum"), file(bad_sum), ext_word(ext)));
    }
    cases
}

/// The word our message uses for a compression format.
fn ext_word(ext: &str) -> &'static str {
    match ext {
        "xz" => "xz",
        "zst" => "zstd",
        _ => "gzip",
    }
}

/// Builds the tree for `case` under `base`; returns the name the broken file has.
fn build(base: &Path, case: &Case) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let kernel = base.join(format!("lib/modules/{VERSION}/kernel"));
    fs::create_dir_all(&kernel).unwrap();
    let mut a = ModuleSpec::new();
    a.exports = vec![b"ga".to_vec()];
    let mut b = ModuleSpec::new();
    b.imports = vec![(b"ga".to_vec(), false)];
    b.modinfo = vec![b"alias=good-b".to_vec()];
    for index in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        fs::write(kernel.parent().unwrap().join(index), b"").unwrap();
    }
    fs::write(kernel.join("good_a.ko"), a.build()).unwrap();
    fs::write(kernel.join("good_b.ko"), b.build()).unwrap();
    let name: &[u8] = match &case.bad {
        Bad::File(data) => {
            fs::write(kernel.join("bad.ko"), data).unwrap();
            b"bad.ko"
        }
        Bad::Named(name, data) => {
            fs::write(kernel.join(std::ffi::OsStr::from_bytes(name)), data).unwrap();
            name
        }
        Bad::Dir => {
            fs::create_dir_all(kernel.join("bad.ko")).unwrap();
            fs::write(kernel.join("bad.ko/inside.ko"), ModuleSpec::new().build()).unwrap();
            b"bad.ko"
        }
        Bad::Link(target) => {
            symlink(target, kernel.join("bad.ko")).unwrap();
            b"bad.ko"
        }
        Bad::Fifo => {
            let made = Command::new("mkfifo").arg(kernel.join("bad.ko")).status().unwrap();
            assert!(made.success());
            b"bad.ko"
        }
        Bad::Unreadable => {
            use std::os::unix::fs::PermissionsExt;
            fs::write(kernel.join("bad.ko"), bad_spec().build()).unwrap();
            fs::set_permissions(kernel.join("bad.ko"), fs::Permissions::from_mode(0o000)).unwrap();
            // The run is as `nobody`: it must be able to write the indexes.
            let moddir = kernel.parent().unwrap();
            fs::set_permissions(moddir, fs::Permissions::from_mode(0o777)).unwrap();
            b"bad.ko"
        }
    };
    name.to_vec()
}

/// Runs `depmod` on the tree at `base`; as `nobody` when `unprivileged` (root reads anything).
fn run(depmod: &Depmod, base: &Path, unprivileged: bool) -> Output {
    let config = base.join("depmod.d");
    fs::create_dir_all(&config).unwrap();
    let args =
        ["-b".as_ref(), base.as_os_str(), "-C".as_ref(), config.as_os_str(), VERSION.as_ref()];
    let mut cmd = depmod.command(args);
    if unprivileged {
        let mut wrapped = Command::new("setpriv");
        wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        wrapped.arg(cmd.get_program()).args(cmd.get_args());
        cmd = wrapped;
    }
    cmd.output().expect("depmod runs")
}

#[test]
fn every_malformed_input_is_named_and_skipped() {
    let kmod = kmod34();
    let work = scratch("malformed");
    let mut failures = Vec::new();
    let mut kmod_named = 0;
    let mut total = 0;
    for case in cases() {
        let unprivileged = matches!(case.bad, Bad::Unreadable);
        if unprivileged && !(is_root() && which("setpriv").is_some()) {
            // As a normal user, mode 000 already makes the file unreadable.
            if is_root() {
                common::missing("setpriv (util-linux), to run depmod as nobody");
                continue;
            }
        }
        let unprivileged = unprivileged && is_root();
        total += 1;
        let ours_base = work.join(&case.name).join("ours");
        let bad_name = build(&ours_base, &case);
        let out = run(&Depmod::Ours, &ours_base, unprivileged);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let moddir = ours_base.join(format!("lib/modules/{VERSION}"));
        let dep = fs::read_to_string(moddir.join("modules.dep")).unwrap_or_default();
        let bad_shown = String::from_utf8_lossy(&bad_name).into_owned();
        let mut problems = Vec::new();
        if out.status.code().is_none() {
            problems.push(format!("killed by a signal: {:?}", out.status));
        }
        let naming: Vec<&str> = stderr.lines().filter(|l| l.contains(&bad_shown)).collect();
        if case.says.is_empty() {
            if !naming.is_empty() || !dep.contains("kernel/bad.ko/inside.ko:\n") {
                problems.push("the directory is not walked silently".into());
            }
        } else {
            if naming.len() != 1 {
                problems.push(format!("{} lines name {bad_shown}, expected one", naming.len()));
            }
            if !naming.iter().any(|l| l.contains(case.says)) {
                problems.push(format!("no message says {:?}", case.says));
            }
        }
        if !dep.contains("kernel/good_b.ko: kernel/good_a.ko\n")
            || !dep.contains("kernel/good_a.ko:\n")
        {
            problems.push(format!("good modules not indexed; modules.dep:\n{dep}"));
        }
        // kmod on an identical tree: where it accepts the file, its outputs are the rule.
        if let Some(kmod) = &kmod {
            let kmod_base = work.join(&case.name).join("kmod");
            build(&kmod_base, &case);
            let theirs = run(&Depmod::Kmod(kmod.clone()), &kmod_base, unprivileged);
            let their_err = String::from_utf8_lossy(&theirs.stderr);
            let complains = their_err.contains(&bad_shown);
            kmod_named += usize::from(complains);
            let kmod_dir = kmod_base.join(format!("lib/modules/{VERSION}"));
            let kmod_dep = fs::read_to_string(kmod_dir.join("modules.dep")).unwrap_or_default();
            // kmod lists some files it could not read as modules without dependencies; only a
            // file it takes without complaint counts as accepted.
            if theirs.status.success() && !complains && kmod_dep.contains(&bad_shown) {
                if let Err(diff) = compare_dirs(&kmod_dir, &moddir, &OUTPUTS) {
                    problems.push(format!("kmod indexes it; outputs differ:\n{diff}"));
                }
            } else if dep.contains(&bad_shown) {
                problems.push("indexed, but kmod does not index it".into());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n  stderr: {stderr}",
                case.name,
                problems.join("\n  ")
            ));
        }
    }
    eprintln!("malformed inputs: {total} cases; kmod 34.2 names the file in {kmod_named}");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let _ = fs::remove_dir_all(&work);
}
