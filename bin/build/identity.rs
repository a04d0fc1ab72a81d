//! The build identity the module cache records (`DEPMOD_BUILD_ID`): a cache written by another
//! build is not trusted, since another parser may read a file differently.
//!
//! It is a hash of what decides how a module file is read: the sources of `bin/` and `core/`,
//! the manifests and `Cargo.lock` (the decoders' versions), the features and the target. It
//! is computed from the sources rather than taken from the binary (an ELF build-id depends on
//! the linker, and `/proc/self/exe` may not exist in an initramfs), so a build is reproducible:
//! the same sources give the same identity.

use std::path::{Path, PathBuf};

/// 64-bit FNV-1a, twice over with different starting points: 128 bits, no dependency.
struct Fnv([u64; 2]);

impl Fnv {
    fn new() -> Self {
        Fnv([0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142])
    }

    fn update(&mut self, bytes: &[u8]) {
        // The length first, so that the parts cannot run into each other.
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            for h in &mut self.0 {
                *h = (*h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
}

/// Every file under `dir`, sorted.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Prints `cargo:rustc-env=DEPMOD_BUILD_ID=...` and what makes cargo compute it again.
pub fn emit() {
    let bin = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let top = bin.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut inputs = Vec::new();
    for dir in [bin.join("src"), top.join("core/src")] {
        println!("cargo:rerun-if-changed={}", dir.display());
        files(&dir, &mut inputs);
    }
    inputs.sort();
    for file in [bin.join("Cargo.toml"), top.join("core/Cargo.toml"), top.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", file.display());
        inputs.push(file);
    }
    let mut hash = Fnv::new();
    for file in &inputs {
        let name = file.strip_prefix(&top).unwrap_or(file);
        hash.update(name.to_string_lossy().as_bytes());
        hash.update(&std::fs::read(file).unwrap_or_default());
    }
    let mut features: Vec<String> =
        std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("CARGO_FEATURE_")).collect();
    features.sort();
    hash.update(features.join(" ").as_bytes());
    hash.update(std::env::var("TARGET").unwrap_or_default().as_bytes());
    let [a, b] = hash.0;
    println!("cargo:rustc-env=DEPMOD_BUILD_ID={a:016x}{b:016x}");
}
