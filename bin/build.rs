//! Builds `native/`: on x86-64, a faster `memcpy` that replaces musl's in the static build, and on
//! every musl target a `memcmp` and `bcmp` that replace musl's (see the files); on every target,
//! the portable copy and the comparisons, exported under their own names so that the tests can
//! check them (`src/native.rs`). And computes the build identity the module cache records
//! (`build/identity.rs`).

#[path = "build/identity.rs"]
mod identity;

fn main() {
    identity::emit();
    println!("cargo:rerun-if-changed=build/identity.rs");
    println!("cargo:rerun-if-changed=native/memcpy.c");
    println!("cargo:rerun-if-changed=native/memcmp.c");
    println!("cargo:rerun-if-changed=native/words.h");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let mut build = cc::Build::new();
    build
        .file("native/memcpy.c")
        .file("native/memcmp.c")
        .flag_if_supported("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns")
        .opt_level(2);
    let musl = env("CARGO_CFG_TARGET_ENV") == "musl";
    // Only musl's x86-64 memcpy is slow on short copies; other C libraries keep their own.
    if musl && env("CARGO_CFG_TARGET_ARCH") == "x86_64" {
        build.define("DEPMOD_REPLACE_MEMCPY", None);
    }
    // musl's memcmp compares one byte at a time on every architecture.
    if musl {
        build.define("DEPMOD_REPLACE_MEMCMP", None);
    }
    build.compile("depmod_native");
}
