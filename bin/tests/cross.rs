//! Conformance on other CPUs: this depmod, built by `scripts/cross` for a board's target, runs
//! under qemu-user on the real Debian module tree of that architecture, and kmod 34.2 (x86-64,
//! the reference) indexes a copy of the same tree on the host; all 11 files and stderr must be
//! identical. s390x is the big-endian host, so a byte-order assumption in reading modules or in
//! writing the `.bin` indexes shows there; its tree is also recompressed with xz and zstd, whose
//! decoders have byte-order-specific code. Each architecture's tree recompressed with xz (the one
//! its boot test indexes) is checked too. The unit tests also run on aarch64 and s390x, and the
//! smallest builds (`scripts/cross TARGET --small`) of the musl targets are checked the same way.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use common::{Depmod, OUTPUTS, compare_dirs, index_copy, kmod34, missing, repo, scratch, which};

/// A board: the Rust target, its qemu-user emulator, Debian's architecture and kernel flavour.
struct Board {
    target: &'static str,
    qemu: &'static str,
    arch: &'static str,
    flavour: &'static str,
}

const AARCH64: Board = Board {
    target: "aarch64-unknown-linux-musl",
    qemu: "qemu-aarch64-static",
    arch: "arm64",
    flavour: "arm64",
};
const ARMV7: Board = Board {
    target: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm-static",
    arch: "armhf",
    flavour: "armmp",
};
const RISCV64: Board = Board {
    target: "riscv64gc-unknown-linux-gnu",
    qemu: "qemu-riscv64-static",
    arch: "riscv64",
    flavour: "riscv64",
};
const S390X: Board = Board {
    target: "s390x-unknown-linux-gnu",
    qemu: "qemu-s390x-static",
    arch: "s390x",
    flavour: "s390x",
};

/// `scripts/cross TARGET ARGS...`: the static binary's path (its last line of output).
fn cross_build(target: &str, args: &[&str]) -> Option<PathBuf> {
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let out = Command::new(repo().join("scripts/cross"))
        .arg(target)
        .args(args)
        .env("CARGO_TARGET_DIR", &target_dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            text.lines().last().map(PathBuf::from)
        }
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: Vec<&str> = err.lines().rev().take(8).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            missing(&format!(
                "a static depmod for {target} (scripts/cross {target} {}):\n{}",
                args.join(" "),
                tail.join("\n")
            ));
            None
        }
        Err(e) => {
            missing(&format!("scripts/cross: {e}"));
            None
        }
    }
}

/// `scripts/fetch ARGS` printing a tree root, and that tree's kernel release.
fn fetch_tree(args: &[&str]) -> Option<(PathBuf, String)> {
    let root = match common::fetch(args) {
        Ok(r) => PathBuf::from(r),
        Err(e) => {
            missing(&format!("a Debian module tree ({e})"));
            return None;
        }
    };
    let versions: Vec<String> = fs::read_dir(root.join("lib/modules"))
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    match versions.as_slice() {
        [v] => Some((root, v.clone())),
        _ => {
            panic!("{}: expected one kernel under lib/modules, found {versions:?}", root.display())
        }
    }
}

/// The board's depmod under its emulator and kmod 34.2 on copies of each tree `fetch` names.
fn conform(board: &Board, trees: &[&[&str]]) {
    conform_build(board, &[], trees);
}

/// [`conform`], with the board's depmod built by `scripts/cross TARGET BUILD...` (and run
/// natively when the target is the host's).
fn conform_build(board: &Board, build: &[&str], trees: &[&[&str]]) {
    let native = board.target == "x86_64-unknown-linux-musl";
    let qemu = which(board.qemu);
    if qemu.is_none() && !native {
        missing(&format!("{} (Debian: qemu-user-static)", board.qemu));
        return;
    }
    let Some(kmod) = kmod34() else { return };
    let Some(depmod) = cross_build(board.target, build) else { return };
    for args in trees {
        let Some((root, version)) = fetch_tree(args) else { return };
        let label = format!("{}{}-{}", board.target, build.join(""), args.join("-"));
        let work = scratch(&format!("cross-{label}"));
        let kmod = Depmod::Kmod(kmod.clone());
        let (theirs, their_err) = index_copy(&kmod, &root, &version, &work, "kmod", None);
        let ours = match &qemu {
            Some(qemu) if !native => {
                Depmod::Emulated { qemu: qemu.clone(), binary: depmod.clone() }
            }
            _ => Depmod::Build(depmod.clone()),
        };
        let (ours, our_err) = index_copy(&ours, &root, &version, &work, "ours", None);
        if let Err(diff) = compare_dirs(&theirs, &ours, &OUTPUTS) {
            panic!(
                "{label} ({version}): outputs under {} differ from kmod 34.2:\n{diff}",
                board.qemu
            );
        }
        assert_eq!(their_err, our_err, "{label}: stderr differs from kmod 34.2");
        let _ = fs::remove_dir_all(&work);
    }
}

#[test]
fn aarch64_musl_on_arm64_trees() {
    let b = &AARCH64;
    conform(
        b,
        &[&["arch-tree", b.arch, b.flavour], &["arch-recompressed", b.arch, b.flavour, "xz"]],
    );
}

#[test]
fn armv7_on_armmp_trees() {
    let b = &ARMV7;
    conform(
        b,
        &[&["arch-tree", b.arch, b.flavour], &["arch-recompressed", b.arch, b.flavour, "xz"]],
    );
}

/// The smallest builds (`scripts/cross TARGET --small`: the standard library rebuilt, panics
/// aborting at once): x86-64 with every decoder on the amd64 tree, and aarch64 with xz alone
/// (the size a board that ships `.ko.xz` builds) on arm64's tree recompressed with xz.
#[test]
fn small_builds_on_amd64_and_arm64_trees() {
    let x86_64 = Board { target: "x86_64-unknown-linux-musl", qemu: "", arch: "", flavour: "" };
    conform_build(&x86_64, &["--small"], &[&["tree", &common::main_tree_name()]]);
    let b = &AARCH64;
    conform_build(
        b,
        &["--small", "--no-default-features", "--features", "xz"],
        &[&["arch-recompressed", b.arch, b.flavour, "xz"]],
    );
}

/// Debian 13's riscv64 tree ships `.ko.xz`.
#[test]
fn riscv64_on_trixie_ko_xz_tree() {
    let b = &RISCV64;
    conform(b, &[&["arch-tree", b.arch, b.flavour]]);
}

#[test]
fn s390x_big_endian_on_s390x_trees() {
    let b = &S390X;
    conform(
        b,
        &[
            &["arch-tree", b.arch, b.flavour],
            &["arch-recompressed", b.arch, b.flavour, "xz"],
            &["arch-recompressed", b.arch, b.flavour, "zst"],
        ],
    );
}

/// The unit tests of the library and of the program (the portable `memcpy`, and `memcmp` and
/// `bcmp`, among them), built for a board and run under qemu-user: aarch64 (musl,
/// little-endian) and s390x (big-endian).
#[test]
fn unit_tests_on_aarch64_and_s390x() {
    for board in [&AARCH64, &S390X] {
        if which(board.qemu).is_none() {
            missing(&format!("{} (Debian: qemu-user-static)", board.qemu));
            return;
        }
        if cross_build(board.target, &[]).is_none() {
            return;
        }
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| repo().join("target"), PathBuf::from);
        let out = Command::new(repo().join("scripts/cross"))
            .args([board.target, "--test", "-p", "depmod-core", "-p", "depmod", "--lib", "--bins"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .output()
            .expect("scripts/cross runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "unit tests for {} under {}: {}\n{text}\n{}",
            board.target,
            board.qemu,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let suites = text.lines().filter(|l| l.starts_with("test result: ok.")).count();
        assert_eq!(
            suites, 2,
            "{}: expected the library's and the program's tests:\n{text}",
            board.target
        );
    }
}

/// The Debian package of each board's build (`scripts/deb --binary`, as `scripts/deb --target
/// TARGET` makes it): named and labelled with the board's Debian architecture (read from the
/// binary's ELF header; s390x's is big-endian), this program's version (asked of the binary under
/// qemu-user), holding that very binary, and the same maintainer scripts as every package.
#[test]
fn debian_packages_for_boards() {
    for board in [&AARCH64, &ARMV7, &RISCV64, &S390X] {
        if which(board.qemu).is_none() {
            missing(&format!("{} (Debian: qemu-user-static)", board.qemu));
            return;
        }
        let Some(binary) = cross_build(board.target, &[]) else { return };
        let out = scratch(&format!("deb-{}", board.arch));
        let made = Command::new(repo().join("scripts/deb"))
            .arg("--binary")
            .arg(&binary)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("scripts/deb runs");
        assert!(
            made.status.success(),
            "scripts/deb --binary {}: {}\n{}",
            binary.display(),
            made.status,
            String::from_utf8_lossy(&made.stderr)
        );
        let deb = PathBuf::from(String::from_utf8_lossy(&made.stdout).trim());
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            deb.file_name().and_then(|n| n.to_str()),
            Some(format!("depmod-rs_{version}_{}.deb", board.arch).as_str())
        );
        let field = |name: &str| {
            let o = Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name).output();
            String::from_utf8_lossy(&o.expect("dpkg-deb runs").stdout).trim().to_string()
        };
        assert_eq!(field("Architecture"), board.arch, "{}", deb.display());
        assert_eq!(field("Version"), version, "{}", deb.display());
        let unpacked = out.join("unpacked");
        let status = Command::new("dpkg-deb")
            .arg("-R")
            .arg(&deb)
            .arg(&unpacked)
            .status()
            .expect("dpkg-deb runs");
        assert!(status.success(), "dpkg-deb -R {}", deb.display());
        let built = fs::read(&binary).unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let packaged = fs::read(unpacked.join("usr/libexec/depmod-rs/depmod")).unwrap_or_default();
        assert!(
            packaged == built,
            "{}: /usr/libexec/depmod-rs/depmod is not {}",
            deb.display(),
            binary.display()
        );
        for script in ["preinst", "postinst", "prerm", "postrm"] {
            let ours = fs::read(repo().join("bin/debian").join(script)).unwrap_or_default();
            let packed = fs::read(unpacked.join("DEBIAN").join(script)).unwrap_or_default();
            assert!(!ours.is_empty() && packed == ours, "{}: DEBIAN/{script}", deb.display());
        }
        let _ = fs::remove_dir_all(&out);
    }
}
