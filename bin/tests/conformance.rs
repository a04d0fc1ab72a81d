//! Conformance on real Debian module trees: kmod 34.2 and this depmod index separate scratch
//! copies of the same tree; every output must be byte-identical, and so must stderr. Trees:
//! Debian 12's amd64 kernel (or the one `DEPMOD_RS_TREE` names) and its cloud-amd64 kernel
//! (uncompressed), its 6.12 kernel (`.ko.xz`), and the cloud tree recompressed with `zstd -19`.
//! For a gzip recompression, which Debian's kmod cannot read, the expectation is the uncompressed
//! tree's outputs with `.ko` paths turned into `.ko.gz`.
//!
//! `DEPMOD_RS_WARM=1` runs each of ours with a warm module cache: on the same copy, once its
//! modules are settled, a first run writes the cache (an empty `modules.cache.bin` asks for one
//! under `-b`), its indexes are removed, and the run compared recalls every module from it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{
    Depmod, OUTPUTS, compare_dirs, compare_file, index_copy, kmod34, main_tree, main_tree_name,
    recompressed, scratch, tree,
};
use depmod_core::index::reader::Index;

/// The module cache's name.
const CACHE: &str = "modules.cache.bin";

/// Both depmods on copies of a tree; everything must be identical.
fn conform(label: &str, tree: Option<(PathBuf, String)>) {
    conform_with(&Depmod::Ours, label, tree);
}

/// kmod 34.2 and `depmod` (a build of ours) on copies of a tree; everything must be identical.
fn conform_with(depmod: &Depmod, label: &str, tree: Option<(PathBuf, String)>) {
    let Some(kmod) = kmod34() else { return };
    let Some((root, version)) = tree else { return };
    let work = scratch(&format!("conformance-{label}"));
    let (theirs, their_err) = index_copy(&Depmod::Kmod(kmod), &root, &version, &work, "kmod", None);
    let (ours, our_err) = index_copy(depmod, &root, &version, &work, "ours", None);
    if let Err(diff) = compare_dirs(&theirs, &ours, &OUTPUTS) {
        panic!("{label} ({version}): outputs differ from kmod 34.2:\n{diff}");
    }
    assert_eq!(their_err, our_err, "{label}: stderr differs from kmod 34.2");
    assert!(!theirs.join(CACHE).exists(), "{label}: a module cache in kmod's tree");
    let _ = fs::remove_dir_all(&work);
}

/// Debian 12's standard kernel, or the one `DEPMOD_RS_TREE` names.
#[test]
fn debian_amd64() {
    conform(&main_tree_name(), main_tree());
}

#[test]
fn debian_cloud_amd64() {
    conform("cloud-amd64", tree("cloud-amd64"));
}

#[test]
fn debian_6_12_xz() {
    conform("6.12-amd64-xz", tree("6.12-amd64"));
}

#[test]
fn cloud_amd64_recompressed_zstd() {
    conform("cloud-amd64-zst", recompressed("cloud-amd64", "zst"));
}

/// The static musl binary (another allocator, other decoder build flags) on the uncompressed
/// and the `.ko.xz` tree.
#[test]
fn static_binary() {
    let Some(depmod) = common::static_depmod() else { return };
    let depmod = Depmod::Build(depmod);
    conform_with(&depmod, &format!("static-{}", main_tree_name()), main_tree());
    conform_with(&depmod, "static-6.12-amd64-xz", tree("6.12-amd64"));
    conform_with(&depmod, "static-cloud-amd64-zst", recompressed("cloud-amd64", "zst"));
}

/// `.ko` paths in a `modules.dep` line (or `.bin` value) as the gzip tree has them.
fn gz_paths(line: &str) -> String {
    line.split(' ')
        .map(|w| match w.strip_suffix(".ko:") {
            Some(p) => format!("{p}.ko.gz:"),
            None => match w.strip_suffix(".ko") {
                Some(p) => format!("{p}.ko.gz"),
                None => w.to_string(),
            },
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn cloud_amd64_recompressed_gzip() {
    let Some((plain_root, version)) = tree("cloud-amd64") else {
        return;
    };
    let Some((gz_root, _)) = recompressed("cloud-amd64", "gz") else {
        return;
    };
    let work = scratch("conformance-cloud-amd64-gz");
    let (plain, _) = index_copy(&Depmod::Ours, &plain_root, &version, &work, "plain", None);
    let (gz, _) = index_copy(&Depmod::Ours, &gz_root, &version, &work, "gz", None);
    let read = |dir: &Path, f: &str| fs::read(dir.join(f)).unwrap();
    let mut problems = Vec::new();
    for f in OUTPUTS {
        let (want, got) = (read(&plain, f), read(&gz, f));
        let want = match f {
            "modules.dep" => {
                let text = String::from_utf8(want).unwrap();
                text.lines().map(|l| gz_paths(l) + "\n").collect::<String>().into_bytes()
            }
            "modules.dep.bin" => {
                // Compare decoded entries: the paths grow, so the node offsets move.
                let decode = |b: &[u8]| Index::parse(b).unwrap().entries().unwrap();
                let expected: Vec<_> = decode(&want)
                    .into_iter()
                    .map(|(k, vs)| {
                        let vs: Vec<_> = vs
                            .into_iter()
                            .map(|v| (v.priority, gz_paths(&String::from_utf8(v.text).unwrap())))
                            .collect();
                        (k, vs)
                    })
                    .collect();
                let actual: Vec<_> = decode(&got)
                    .into_iter()
                    .map(|(k, vs)| {
                        let vs: Vec<_> = vs
                            .into_iter()
                            .map(|v| (v.priority, String::from_utf8(v.text).unwrap()))
                            .collect();
                        (k, vs)
                    })
                    .collect();
                if expected != actual {
                    problems.push("modules.dep.bin: entries differ".to_string());
                }
                continue;
            }
            _ => want,
        };
        if let Err(d) = compare_file(f, &want, &got) {
            problems.push(d);
        }
    }
    assert!(problems.is_empty(), "gzip tree:\n{}", problems.join("\n"));
    let _ = fs::remove_dir_all(&work);
}

/// The outputs never depend on the number of threads.
#[test]
fn thread_count_does_not_change_outputs() {
    let Some((root, version)) = tree("6.12-amd64") else {
        return;
    };
    let work = scratch("conformance-threads");
    let (one, _) = index_copy(&Depmod::Ours, &root, &version, &work, "one", Some("1"));
    let (many, _) = index_copy(&Depmod::Ours, &root, &version, &work, "many", Some("16"));
    if let Err(diff) = compare_dirs(&one, &many, &OUTPUTS) {
        panic!("1 thread and 16 threads differ:\n{diff}");
    }
    let _ = fs::remove_dir_all(&work);
}
