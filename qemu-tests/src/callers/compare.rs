//! What a run leaves, kept for the comparison: the callers' messages with what varies from run to
//! run masked, every index file, the module files of each image; and how two runs differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Depmod, Run};

/// Our module cache's file name, and its first bytes.
pub const CACHE: &str = "modules.cache.bin";
const CACHE_MAGIC: &[u8] = b"DMRSCACH";
/// The places a module cache belongs: the installed tree, from its second run with ours on
/// (then DKMS's two runs).
pub const CACHE_PLACES: [&str; 3] =
    ["root after depmod -a", super::dkms::AFTER_INSTALL, super::dkms::AFTER_REMOVE];

/// What in a caller's messages is inherently variable between two runs, replaced by a fixed
/// text; nothing else is touched:
/// - dpkg's count of installed files, which in our run includes the depmod package's own files
///   (the kmod 34.2 wrapper is no package);
/// - the random part of the temporary directories mkinitramfs and dracut make with `mktemp`
///   (`/var/tmp/dracut.XXXXXX`, `/var/tmp/mkinitramfs_XXXXXX`);
/// - the time dracut's hardlink step took (`dracut: Duration: 0.005239 seconds`);
/// - the dots DKMS adds, one every 3 seconds, after a step's `...` while it runs in the
///   background (`make -j2 ... M=/var/lib/dkms/NAME/VERSION/build.......`).
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let line = if line.ends_with("....") {
            format!("{}...", line.trim_end_matches('.'))
        } else if line.starts_with("(Reading database ... ")
            && line.ends_with(" files and directories currently installed.)")
        {
            "(Reading database ... N files and directories currently installed.)".to_string()
        } else if line.starts_with("dracut: Duration:") && line.ends_with(" seconds") {
            "dracut: Duration: N seconds".to_string()
        } else {
            ["/var/tmp/dracut.", "/var/tmp/mkinitramfs_"]
                .iter()
                .fold(line.to_string(), |l, p| mask_after(&l, p))
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `line` with the six characters after each `prefix` (mktemp's X's) replaced by `XXXXXX`.
fn mask_after(line: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(prefix) {
        let (head, tail) = rest.split_at(at + prefix.len());
        out.push_str(head);
        let n = tail.chars().take(6).take_while(char::is_ascii_alphanumeric).count();
        out.push_str(&"X".repeat(n));
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// Keeps every `modules.*` file of `dir` under `label`.
pub(super) fn snapshot(
    dir: &Path,
    label: &str,
    into: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut n = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("modules.") && entry.file_type().is_ok_and(|t| t.is_file()) {
            let bytes = std::fs::read(entry.path())
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            into.insert(format!("{label}: {name}"), bytes);
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!("{}: no modules.* file ({label})", dir.display()));
    }
    Ok(())
}

/// The names of what is in `dir`, sorted, or `(no directory)` when it is gone.
pub(super) fn left_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec!["(no directory)".to_string()] };
    let mut names: Vec<String> =
        entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The `lib/modules/VERSION` directories under an unpacked image (symbolic links not followed:
/// `lib` is often one to `usr/lib`).
pub(super) fn module_dirs(top: &Path, version: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![top.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name() == version && d.file_name().is_some_and(|n| n == "modules") {
                found.push(p);
            } else {
                stack.push(p);
            }
        }
    }
    found.sort();
    found
}

/// The module files under `dir`, relative to it, sorted.
pub(super) fn module_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if e.file_name().to_string_lossy().contains(".ko") {
                files.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// Where a run's module caches are wrong: ours must have one (a cache, by its magic) in the
/// installed tree from its second run on ([`CACHE_PLACES`]) and nowhere else (in no initramfs
/// image, no staged root); kmod's none at all.
fn cache_problems(run: &Run) -> Vec<String> {
    let name = run.depmod.name();
    let mut problems = Vec::new();
    let expected: Vec<String> = match run.depmod {
        Depmod::Ours => CACHE_PLACES.iter().map(|p| format!("{p}: {CACHE}")).collect(),
        Depmod::Kmod34 => Vec::new(),
    };
    for (key, bytes) in run.indexes.iter().filter(|(k, _)| k.ends_with(&format!(": {CACHE}"))) {
        if !expected.contains(key) {
            problems.push(format!("{key}: a module cache in {name}'s run, where none belongs"));
        } else if !bytes.starts_with(CACHE_MAGIC) {
            problems.push(format!("{key}: not a module cache ({} bytes)", bytes.len()));
        }
    }
    for key in expected.iter().filter(|k| !run.indexes.contains_key(*k)) {
        problems.push(format!(
            "{key}: missing (ours keeps a cache in the installed tree from its second run on)"
        ));
    }
    problems
}

/// Every way run `b` differs from run `a`: a caller's exit status or messages, an index missing
/// from one or with other bytes, an image with other module files; and a module cache where
/// none belongs, or missing where ours starts one (see `cache_problems`), which is otherwise
/// not compared. Differing indexes are written to `out/differences/` for inspection.
pub fn differences(a: &Run, b: &Run, out: &Path) -> Vec<String> {
    let mut diffs = cache_problems(a);
    diffs.extend(cache_problems(b));
    let (an, bn) = (a.depmod.name(), b.depmod.name());
    if a.calls.len() != b.calls.len() {
        diffs.push(format!("{an} ran {} callers, {bn} {}", a.calls.len(), b.calls.len()));
    }
    for (x, y) in a.calls.iter().zip(&b.calls) {
        if x.ran != y.ran {
            diffs.push(format!(
                "`{}`:\n=== {an}: {}\n=== {bn}: {}",
                x.command,
                x.ran.describe(),
                y.ran.describe()
            ));
        }
    }
    let dir = out.join("differences");
    let is_cache = |k: &&String| k.ends_with(&format!(": {CACHE}"));
    // Each file once, whichever run has it.
    let keys: std::collections::BTreeSet<&String> =
        a.indexes.keys().chain(b.indexes.keys()).collect();
    for key in keys.into_iter().filter(|k| !is_cache(k)) {
        match (a.indexes.get(key), b.indexes.get(key)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let file = key.replace([' ', '/', ':'], "_");
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join(format!("{file}.{an}")), x);
                let _ = std::fs::write(dir.join(format!("{file}.{bn}")), y);
                diffs.push(format!("{key}: different bytes (both in {})", dir.display()));
            }
            (Some(_), None) => diffs.push(format!("{key}: only in {an}'s run")),
            (None, _) => diffs.push(format!("{key}: only in {bn}'s run")),
        }
    }
    if a.after_purge != b.after_purge {
        diffs.push(format!(
            "left in the module directory after the kernel package's purge: {:?} with {an}, \
             {:?} with {bn}",
            a.after_purge, b.after_purge
        ));
    }
    if a.image_modules != b.image_modules {
        for (key, x) in &a.image_modules {
            let y = b.image_modules.get(key);
            if y != Some(x) {
                let n = y.map_or(0, Vec::len);
                diffs.push(format!("{key}: {} module files with {an}, {n} with {bn}", x.len()));
            }
        }
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(depmod: Depmod, caches: &[(&str, &[u8])]) -> Run {
        let mut indexes = BTreeMap::from([(format!("{}: modules.dep", CACHE_PLACES[0]), vec![])]);
        for (place, bytes) in caches {
            indexes.insert(format!("{place}: {CACHE}"), bytes.to_vec());
        }
        Run {
            depmod,
            version: String::new(),
            calls: Vec::new(),
            indexes,
            image_modules: BTreeMap::new(),
            after_purge: Vec::new(),
            log: Vec::new(),
            removal: None,
            install_script: None,
            kernel: PathBuf::new(),
            images: BTreeMap::new(),
            disk: PathBuf::new(),
        }
    }

    /// Ours' cache belongs in the installed tree from its second run on, nowhere else; kmod's
    /// runs have none. It is never compared as an index.
    #[test]
    fn the_module_cache_is_where_it_belongs() {
        let cache: &[u8] = b"DMRSCACH and the rest";
        let [second, installed, removed] = CACHE_PLACES;
        let everywhere = [(second, cache), (installed, cache), (removed, cache)];
        let good = run(Depmod::Ours, &everywhere);
        let kmod = run(Depmod::Kmod34, &[]);
        let out = std::env::temp_dir();
        assert_eq!(differences(&kmod, &good, &out), Vec::<String>::new());
        let missing = run(Depmod::Ours, &[]);
        let missing_each = |p: &str| {
            format!(
                "{p}: {CACHE}: missing (ours keeps a cache in the installed tree from its second run on)"
            )
        };
        assert_eq!(differences(&kmod, &missing, &out), CACHE_PLACES.map(missing_each));
        let gone = run(Depmod::Ours, &[(second, cache), (installed, cache)]);
        assert_eq!(differences(&kmod, &gone, &out), [missing_each(removed)]);
        let image = "image of dracut: lib/modules/6.1";
        let in_image = run(Depmod::Ours, &[&everywhere[..], &[(image, cache)]].concat());
        assert_eq!(
            differences(&kmod, &in_image, &out),
            [format!("{image}: {CACHE}: a module cache in ours's run, where none belongs")]
        );
        let in_kmod = run(Depmod::Kmod34, &[(second, cache)]);
        assert_eq!(
            differences(&in_kmod, &good, &out),
            [format!("{second}: {CACHE}: a module cache in kmod34's run, where none belongs")]
        );
        let garbage =
            run(Depmod::Ours, &[(second, cache), (installed, b"garbage"), (removed, cache)]);
        assert_eq!(
            differences(&kmod, &garbage, &out),
            [format!("{installed}: {CACHE}: not a module cache (7 bytes)")]
        );
    }

    /// An index that differs, or that one run lacks, is named once; so is what a purge left.
    #[test]
    fn each_differing_index_is_named_once() {
        let cache: &[u8] = b"DMRSCACH";
        let ours = |dep: &[u8]| {
            let mut r = run(Depmod::Ours, &CACHE_PLACES.map(|p| (p, cache)));
            r.indexes.insert("staged root: modules.dep".into(), dep.to_vec());
            r
        };
        let mut kmod = run(Depmod::Kmod34, &[]);
        kmod.after_purge = vec!["build".into()];
        kmod.indexes.insert("staged root: modules.dep".into(), b"a.ko:\n".to_vec());
        kmod.indexes.insert("staged root: modules.alias".into(), Vec::new());
        let out = std::env::temp_dir().join(format!("compare-test-{}", std::process::id()));
        let mut b = ours(b"b.ko:\n");
        b.after_purge = vec!["build".into(), CACHE.into()];
        let diffs = differences(&kmod, &b, &out);
        let _ = std::fs::remove_dir_all(&out);
        assert_eq!(
            diffs,
            [
                "staged root: modules.alias: only in kmod34's run".to_string(),
                format!(
                    "staged root: modules.dep: different bytes (both in {})",
                    out.join("differences").display()
                ),
                "left in the module directory after the kernel package's purge: [\"build\"] \
                 with kmod34, [\"build\", \"modules.cache.bin\"] with ours"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn only_what_varies_is_normalised() {
        let dpkg = "Selecting previously unselected package x.\n(Reading database ... 8994 files \
                    and directories currently installed.)\nUnpacking x (1) ...\n";
        assert_eq!(
            normalise(dpkg),
            "Selecting previously unselected package x.\n(Reading database ... N files and \
             directories currently installed.)\nUnpacking x (1) ...\n"
        );
        let dracut = "dracut: FAILED: /usr/lib/dracut/dracut-install -D /var/tmp/dracut.hLpgyJ/\
                      initramfs -a umount\ndracut: Duration:                 0.005239 seconds\n\
                      dracut: Files:                    889\n";
        assert_eq!(
            normalise(dracut),
            "dracut: FAILED: /usr/lib/dracut/dracut-install -D /var/tmp/dracut.XXXXXX/initramfs \
             -a umount\ndracut: Duration: N seconds\ndracut: Files:                    889\n"
        );
        let dkms = "make -j2 KERNELRELEASE=6.1 -C /lib/modules/6.1/build M=/var/lib/dkms/m/1/build\
                    .....\ndepmod...\nCleaning build area...(bad exit status: 2)\n";
        assert_eq!(
            normalise(dkms),
            "make -j2 KERNELRELEASE=6.1 -C /lib/modules/6.1/build M=/var/lib/dkms/m/1/build...\n\
             depmod...\nCleaning build area...(bad exit status: 2)\n"
        );
        let kept =
            "W: (Reading database ... 5 other things)\nE: /var/tmp/mkinitramfs_ab/x: 7 seconds\n";
        assert_eq!(
            normalise(kept),
            "W: (Reading database ... 5 other things)\nE: /var/tmp/mkinitramfs_XX/x: 7 seconds\n"
        );
    }
}
