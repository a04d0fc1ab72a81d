//! Consumers of the indexes, on the host: kmod's `modprobe` and `modinfo` (this machine's kmod 30
//! and kmod 34.2) must answer the same with our indexes as with kmod 34.2's, for hundreds of
//! module names and aliases sampled from real trees.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Depmod, kmod34, link_tree, missing, scratch, tree};

/// A `kmod` multi-call binary and how to run it as `modprobe` or `modinfo`.
#[derive(Clone)]
enum Kmod {
    /// The host's kmod (Debian 12: version 30).
    Host(PathBuf),
    /// kmod 34.2, run through its own loader.
    Fetched(PathBuf),
}

impl Kmod {
    fn command(&self, tool: &str) -> Command {
        match self {
            Kmod::Host(kmod) => {
                // kmod 30 picks the tool from argv[0] only.
                let mut c = Command::new(kmod);
                c.arg0(tool);
                c
            }
            Kmod::Fetched(root) => {
                let lib = root.join("usr/lib/x86_64-linux-gnu");
                let mut c = Command::new(lib.join("ld-linux-x86-64.so.2"));
                c.arg("--library-path").arg(&lib).arg("--argv0").arg(tool);
                c.arg(root.join("usr/bin/kmod"));
                c
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Kmod::Host(_) => "host kmod",
            Kmod::Fetched(_) => "kmod 34.2",
        }
    }
}

/// Every `step`-th item, up to `n`.
fn sample(items: Vec<String>, n: usize) -> Vec<String> {
    let step = (items.len() / n).max(1);
    items.into_iter().step_by(step).take(n).collect()
}

/// Runs one consumer query against the tree under `base`; output with `base` made generic.
fn query(kmod: &Kmod, tool: &str, args: &[&str], base: &Path) -> String {
    let out = kmod.command(tool).args(args).output().expect("kmod runs");
    let text = format!(
        "status {}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.replace(base.to_str().unwrap(), "$BASE")
}

fn consumers(meta: &str) {
    let Some(kmod_root) = kmod34() else { return };
    let host = Path::new("/usr/bin/kmod");
    if !host.exists() {
        missing("the host's kmod (apt-get install kmod)");
        return;
    }
    let Some((root, version)) = tree(meta) else {
        return;
    };
    let work = scratch(&format!("consumers-{meta}"));
    let moddir = format!("lib/modules/{version}");
    let empty = work.join("empty.d");
    fs::create_dir_all(&empty).unwrap();
    for (name, depmod) in [("kmod", Depmod::Kmod(kmod_root.clone())), ("ours", Depmod::Ours)] {
        let base = work.join(name);
        link_tree(&root.join(&moddir), &base.join(&moddir));
        let args =
            ["-b".as_ref(), base.as_os_str(), "-C".as_ref(), empty.as_os_str(), version.as_ref()];
        assert!(depmod.run(args).status.success(), "{name} depmod failed");
    }

    let ours_dir = work.join("ours").join(&moddir);
    let dep = fs::read_to_string(ours_dir.join("modules.dep")).unwrap();
    let names = sample(
        dep.lines()
            .filter_map(|l| l.split(':').next())
            .map(|p| {
                let base = p.rsplit('/').next().unwrap();
                base.split('.').next().unwrap().replace('-', "_")
            })
            .collect(),
        300,
    );
    let alias_text = fs::read_to_string(ours_dir.join("modules.alias")).unwrap();
    let aliases = sample(
        alias_text
            .lines()
            .filter_map(|l| l.strip_prefix("alias "))
            .filter_map(|l| l.rsplit_once(' ').map(|(a, _)| a.to_string()))
            .collect(),
        300,
    );
    assert!(names.len() >= 300 && aliases.len() >= 300, "enough samples in {meta}");

    let consumers = [Kmod::Host(host.to_path_buf()), Kmod::Fetched(kmod_root)];
    let mut problems = Vec::new();
    let mut answered = 0;
    for kmod in &consumers {
        let ask = |tool: &str, extra: &[&str], what: &str, base: &Path| {
            let d = base.to_str().unwrap();
            let c = empty.to_str().unwrap();
            let mut args: Vec<&str> = match tool {
                "modinfo" => vec!["-b", d, "-k", &version, "-F", "filename"],
                _ => vec!["-d", d, "-S", &version, "-C", c],
            };
            args.extend_from_slice(extra);
            args.push(what);
            query(kmod, tool, &args, base)
        };
        let queries: Vec<(&str, Vec<&str>, &String)> = names
            .iter()
            .flat_map(|n| [("modprobe", vec!["--show-depends"], n), ("modinfo", vec![], n)])
            .chain(aliases.iter().flat_map(|a| {
                [("modprobe", vec!["--show-depends"], a), ("modprobe", vec!["-R"], a)]
            }))
            .collect();
        for (tool, extra, what) in queries {
            let theirs = ask(tool, &extra, what, &work.join("kmod"));
            let ours = ask(tool, &extra, what, &work.join("ours"));
            if theirs != ours {
                problems.push(format!(
                    "{} {tool} {extra:?} {what}:\n  with kmod 34.2's indexes: {theirs}\n  with ours: {ours}",
                    kmod.name()
                ));
            }
            if theirs.starts_with("status 0") {
                answered += 1;
            }
        }
    }
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
    // Most queries must actually resolve, or the comparison proves little.
    let total = consumers.len() * (names.len() + aliases.len()) * 2;
    assert!(answered * 10 >= total * 9, "only {answered} of {total} queries succeeded");
    let _ = fs::remove_dir_all(&work);
}

#[test]
fn modprobe_and_modinfo_amd64() {
    consumers(&common::main_tree_name());
}

#[test]
fn modprobe_and_modinfo_cloud_amd64() {
    consumers("cloud-amd64");
}
