//! Builds `native/memcpy.c`: a faster `memcpy` that replaces musl's in the static build (see the
//! file), and is also exported under its own name so the tests can check it on any target.

fn main() {
    println!("cargo:rerun-if-changed=native/memcpy.c");
    let musl = std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "musl");
    let mut build = cc::Build::new();
    build
        .file("native/memcpy.c")
        .flag_if_supported("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns")
        .opt_level(2);
    if musl {
        build.define("DEPMOD_REPLACE_MEMCPY", None);
    }
    build.compile("depmod_memcpy");
}
