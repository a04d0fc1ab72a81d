//! Builds `native/memcpy.c`: on x86-64, a faster `memcpy` that replaces musl's in the static build
//! (see the file); on every target, its portable copy, exported under its own name so that the
//! tests can check it. And computes the build identity the module cache records
//! (`build/identity.rs`).

#[path = "build/identity.rs"]
mod identity;

fn main() {
    identity::emit();
    println!("cargo:rerun-if-changed=build/identity.rs");
    println!("cargo:rerun-if-changed=native/memcpy.c");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let mut build = cc::Build::new();
    build
        .file("native/memcpy.c")
        .flag_if_supported("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns")
        .opt_level(2);
    // Only musl's x86-64 memcpy is slow on short copies; other C libraries keep their own.
    if env("CARGO_CFG_TARGET_ENV") == "musl" && env("CARGO_CFG_TARGET_ARCH") == "x86_64" {
        build.define("DEPMOD_REPLACE_MEMCPY", None);
    }
    build.compile("depmod_memcpy");
}
