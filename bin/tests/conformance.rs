//! Conformance on real Debian module trees: kmod 34.2 and this depmod index separate scratch
//! copies of the same tree; every output must be byte-identical, and so must stderr.

mod support;

use std::fs;

use support::{Depmod, OUTPUTS, compare_dirs, kmod34, link_tree, scratch, tree};

/// Runs both depmods on copies of the tree of `linux-image-<meta>` and compares everything.
fn conform(meta: &str) {
    let Some(kmod) = kmod34() else { return };
    let Some((root, version)) = tree(meta) else {
        return;
    };
    let work = scratch(&format!("conformance-{meta}"));
    let config = work.join("empty-depmod.d");
    fs::create_dir_all(&config).unwrap();
    let moddir = format!("lib/modules/{version}");
    let mut stderr = Vec::new();
    for (name, depmod) in [("kmod", Depmod::Kmod(kmod)), ("ours", Depmod::Ours)] {
        let base = work.join(name);
        link_tree(&root.join(&moddir), &base.join(&moddir));
        let out = depmod.run([
            "-b".as_ref(),
            base.as_os_str(),
            "-C".as_ref(),
            config.as_os_str(),
            version.as_ref(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr).replace(base.to_str().unwrap(), "$BASE");
        assert!(
            out.status.success(),
            "{name} depmod failed on {meta}: {err}"
        );
        stderr.push(err);
    }
    let dir = |name: &str| work.join(name).join(&moddir);
    if let Err(diff) = compare_dirs(&dir("kmod"), &dir("ours"), &OUTPUTS) {
        panic!("{meta} ({version}): outputs differ from kmod 34.2:\n{diff}");
    }
    assert_eq!(
        stderr[0], stderr[1],
        "{meta}: stderr differs from kmod 34.2"
    );
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn debian_amd64() {
    conform("amd64");
}

#[test]
fn debian_cloud_amd64() {
    conform("cloud-amd64");
}
