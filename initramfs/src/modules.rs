//! A kernel's module tree and the set of files an image needs so that modprobe finds everything
//! it may load for the modules asked for.

use crate::{Error, arch, glob};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// File name endings of module files, compressed or not.
pub const EXTENSIONS: [&str; 4] = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"];

/// One kernel's modules: `<basedir>/lib/modules/<version>`.
#[derive(Clone, Debug)]
pub struct Tree {
    /// The root holding `lib/modules/` (and usually `boot/`).
    pub basedir: PathBuf,
    /// The kernel release, the directory name under `lib/modules/`.
    pub version: String,
}

impl Tree {
    /// The tree of `version` under `basedir`; without a version, the only one there, or else the
    /// running kernel's.
    pub fn new(basedir: &Path, version: Option<&str>) -> Result<Tree, Error> {
        let version = match version {
            Some(v) => v.to_string(),
            None => default_version(basedir)?,
        };
        let tree = Tree { basedir: basedir.to_path_buf(), version };
        if !tree.dir().is_dir() {
            return Err(Error::new(format!("{}: no such module directory", tree.dir().display())));
        }
        Ok(tree)
    }

    /// `<basedir>/lib/modules/<version>`.
    pub fn dir(&self) -> PathBuf {
        self.basedir.join("lib/modules").join(&self.version)
    }

    /// The kernel image packaged with these modules (`<basedir>/boot/vmlinuz-<version>`, or
    /// `vmlinux-<version>` as Debian names riscv64's), if any.
    pub fn kernel(&self) -> Option<PathBuf> {
        ["vmlinuz", "vmlinux"]
            .map(|n| self.basedir.join("boot").join(format!("{n}-{}", self.version)))
            .into_iter()
            .find(|k| k.is_file())
    }

    /// Every module file of the tree, relative to [`Tree::dir`], sorted. Like depmod, it skips
    /// the `build` and `source` links and does not follow links to directories.
    pub fn all_modules(&self) -> Result<Vec<String>, Error> {
        let mut found = Vec::new();
        walk(&self.dir(), "", &mut found)?;
        found.sort();
        Ok(found)
    }
}

fn default_version(basedir: &Path) -> Result<String, Error> {
    let dir = basedir.join("lib/modules");
    let mut versions: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| Error::io("read", &dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("modules.order").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    if versions.len() == 1 {
        return Ok(versions.remove(0));
    }
    let running = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let running = running.trim();
    if versions.iter().any(|v| v == running) {
        return Ok(running.to_string());
    }
    Err(Error::new(format!(
        "{}: choose a kernel version among: {}",
        dir.display(),
        versions.join(" ")
    )))
}

fn walk(dir: &Path, rel: &str, found: &mut Vec<String>) -> Result<(), Error> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io("read", dir, e))? {
        let entry = entry.map_err(|e| Error::io("read", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == "build" || name == "source" {
            continue;
        }
        let path = format!("{rel}{name}");
        let kind = entry.file_type().map_err(|e| Error::io("stat", &entry.path(), e))?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{path}/"), found)?;
        } else if is_module_file(&name) {
            found.push(path);
        }
    }
    Ok(())
}

/// Whether a file name is a module's (it ends in a module extension and is longer than it).
pub fn is_module_file(name: &str) -> bool {
    EXTENSIONS.iter().any(|e| name.len() > e.len() && name.ends_with(e))
}

/// The module name of a path: its file name without the extension, `-` read as `_`.
pub fn name_of(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.find(".ko").map_or(file, |i| &file[..i]);
    glob::module_name(stem)
}

/// One line of `modules.softdep`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Softdep {
    /// The module the line is about.
    pub module: String,
    /// Names or aliases to load before it.
    pub pre: Vec<String>,
    /// Names or aliases to load after it.
    pub post: Vec<String>,
    /// Words before any `pre:` or `post:`, which kmod ignores.
    pub other: Vec<String>,
}

/// What a name or alias stands for in a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// These modules (a name gives one; an alias may give several).
    Modules(Vec<String>),
    /// Built into the kernel: nothing to load.
    Builtin,
    /// Nothing by that name or alias.
    Missing,
}

/// The text indexes of a tree as our depmod writes them, parsed: enough to compute what an image
/// must hold.
#[derive(Clone, Debug, Default)]
pub struct Indexes {
    /// Module name to its path (relative to the module directory) and the names it depends on.
    modules: BTreeMap<String, (String, Vec<String>)>,
    /// Normalised alias patterns and the module each names, in file order.
    aliases: Vec<(String, String)>,
    softdeps: Vec<Softdep>,
    weakdeps: BTreeMap<String, Vec<String>>,
    builtin: BTreeSet<String>,
}

impl Indexes {
    /// Runs `depmod` (ours, on the host; under qemu-user if it is a board's) over `tree` into a
    /// temporary directory and reads what it wrote. Fails when depmod fails or reports an error:
    /// indexes made from modules it could not read would leave dependencies out of the image.
    pub fn compute(tree: &Tree, depmod: &Path) -> Result<Indexes, Error> {
        let tmp = TempDir::new()?;
        let conf = tmp.0.join("depmod.d");
        fs::create_dir(&conf).map_err(|e| Error::io("create", &conf, e))?;
        // -C: an empty configuration, so the host's /etc/depmod.d cannot change the result.
        let output = arch::command(depmod)?
            .arg("-b")
            .arg(&tree.basedir)
            .arg("-o")
            .arg(&tmp.0)
            .arg("-C")
            .arg(&conf)
            .arg(&tree.version)
            .output()
            .map_err(|e| Error::io("run", depmod, e))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors: Vec<&str> =
            stderr.lines().filter(|l| l.contains(": ERROR: ") || l.contains(": FATAL: ")).collect();
        if !output.status.success() || !errors.is_empty() {
            let detail = if errors.is_empty() {
                stderr.trim().to_string()
            } else {
                errors[..errors.len().min(3)].join("\n")
            };
            return Err(Error::new(format!(
                "{} -b {} {}: {}, {} ERROR lines; the modules' dependencies are unknown. \
                 First lines:\n{detail}",
                depmod.display(),
                tree.basedir.display(),
                tree.version,
                output.status,
                errors.len(),
            )));
        }
        let out = tmp.0.join("lib/modules").join(&tree.version);
        let read = |name: &str| {
            let p = out.join(name);
            fs::read_to_string(&p).map_err(|e| Error::io("read", &p, e))
        };
        let builtin = fs::read_to_string(tree.dir().join("modules.builtin")).unwrap_or_default();
        Ok(Indexes::parse(
            &read("modules.dep")?,
            &read("modules.alias")?,
            &read("modules.softdep")?,
            &read("modules.weakdep").unwrap_or_default(),
            &builtin,
        ))
    }

    /// Parses the text forms of `modules.dep`, `.alias`, `.softdep`, `.weakdep` and `.builtin`.
    pub fn parse(dep: &str, alias: &str, softdep: &str, weakdep: &str, builtin: &str) -> Indexes {
        let mut ix = Indexes::default();
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(name_of).collect();
            ix.modules.insert(name_of(path), (path.to_string(), deps));
        }
        for line in alias.lines() {
            let mut words = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) =
                (words.next(), words.next(), words.next())
            {
                ix.aliases.push((glob::alias(pattern), module.to_string()));
            }
        }
        for line in softdep.lines() {
            let mut words = line.split_whitespace();
            let (Some("softdep"), Some(module)) = (words.next(), words.next()) else {
                continue;
            };
            let mut sd = Softdep {
                module: glob::module_name(module),
                pre: Vec::new(),
                post: Vec::new(),
                other: Vec::new(),
            };
            let mut list = &mut sd.other;
            for w in words {
                match w {
                    "pre:" => list = &mut sd.pre,
                    "post:" => list = &mut sd.post,
                    _ => list.push(w.to_string()),
                }
            }
            ix.softdeps.push(sd);
        }
        for line in weakdep.lines() {
            let mut words = line.split_whitespace();
            if let (Some("weakdep"), Some(module)) = (words.next(), words.next()) {
                let list = ix.weakdeps.entry(glob::module_name(module)).or_default();
                list.extend(words.map(str::to_string));
            }
        }
        ix.builtin = builtin.lines().map(name_of).collect();
        ix
    }

    /// The path (relative to the module directory) and dependencies of a module, by name.
    pub fn module(&self, name: &str) -> Option<(&str, &[String])> {
        let (path, deps) = self.modules.get(&glob::module_name(name))?;
        Some((path, deps))
    }

    /// Whether `name` is built into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&glob::module_name(name))
    }

    /// Every `softdep` line, in file order.
    pub fn softdeps(&self) -> &[Softdep] {
        &self.softdeps
    }

    /// What modprobe would load for `query`: a module name first, else every alias match.
    pub fn lookup(&self, query: &str) -> Lookup {
        if self.module(query).is_some() {
            return Lookup::Modules(vec![glob::module_name(query)]);
        }
        if self.is_builtin(query) {
            return Lookup::Builtin;
        }
        let q = glob::alias(query);
        let mut found: Vec<String> = Vec::new();
        for (pattern, module) in &self.aliases {
            if glob::matches(pattern, &q) && !found.contains(module) {
                found.push(module.clone());
            }
        }
        if found.is_empty() { Lookup::Missing } else { Lookup::Modules(found) }
    }

    /// The paths of every module that loading `queries` may bring in: the modules named, their
    /// dependencies, soft dependencies and weak dependencies, to any depth; sorted. A query that
    /// matches nothing is an error; a built-in one is returned in the second list.
    pub fn closure(&self, queries: &[String]) -> Result<(Vec<String>, Vec<String>), Error> {
        let mut todo: Vec<String> = Vec::new();
        let mut builtin = Vec::new();
        for q in queries {
            match self.lookup(q) {
                Lookup::Modules(names) => todo.extend(names),
                Lookup::Builtin => builtin.push(q.clone()),
                Lookup::Missing => {
                    return Err(Error::new(format!("no module or alias matches {q:?}")));
                }
            }
        }
        let mut seen = BTreeSet::new();
        let mut paths = BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some((path, deps)) = self.module(&name) else {
                continue;
            };
            paths.insert(path.to_string());
            todo.extend(deps.iter().cloned());
            let soft = self
                .softdeps
                .iter()
                .filter(|s| s.module == name)
                // `other` too: an image that holds a module too many is harmless.
                .flat_map(|s| s.pre.iter().chain(&s.post).chain(&s.other));
            let weak = self.weakdeps.get(&name).into_iter().flatten();
            for q in soft.chain(weak) {
                // A soft dependency that names nothing is not an error: modprobe skips it too.
                if let Lookup::Modules(names) = self.lookup(q) {
                    todo.extend(names);
                }
            }
        }
        Ok((paths.into_iter().collect(), builtin))
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, Error> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("depmod-initramfs.{}.{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).map_err(|e| Error::io("create", &dir, e))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Indexes {
        Indexes::parse(
            "kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/libcrc32c.ko\n\
             kernel/crypto/xor.ko:\n\
             kernel/lib/libcrc32c.ko:\n\
             kernel/crypto/crc32c_generic.ko:\n\
             kernel/crypto/lrw.ko: kernel/crypto/gf128mul.ko\n\
             kernel/crypto/gf128mul.ko:\n\
             kernel/crypto/ecb.ko:\n\
             kernel/drivers/char/hw_random/virtio-rng.ko:\n",
            "# Aliases extracted from modules themselves.\n\
             alias crypto-crc32c crc32c_generic\n\
             alias virtio:d00000004v* virtio_rng\n",
            "# Soft dependencies extracted from modules themselves.\n\
             softdep btrfs pre: crypto-crc32c missing-alias\n\
             softdep lrw pre: ecb\n\
             softdep cifs gcm post: md5\n",
            "",
            "kernel/lib/crc32.ko\n",
        )
    }

    #[test]
    fn closure_follows_hard_and_soft_dependencies() {
        let ix = sample();
        let (paths, builtin) = ix.closure(&["btrfs".into(), "crc32".into()]).unwrap();
        assert_eq!(
            paths,
            [
                "kernel/crypto/crc32c_generic.ko",
                "kernel/crypto/xor.ko",
                "kernel/fs/btrfs/btrfs.ko",
                "kernel/lib/libcrc32c.ko"
            ]
        );
        assert_eq!(builtin, ["crc32"]);
    }

    #[test]
    fn lookup_by_name_and_alias() {
        let ix = sample();
        let virtio = "virtio:d00000004v00001AF4";
        assert_eq!(ix.lookup(virtio), Lookup::Modules(vec!["virtio_rng".into()]));
        assert_eq!(ix.lookup("virtio-rng"), Lookup::Modules(vec!["virtio_rng".into()]));
        assert_eq!(ix.lookup("nothing"), Lookup::Missing);
        let err = ix.closure(&["nothing".into()]).unwrap_err();
        assert_eq!(err.to_string(), "no module or alias matches \"nothing\"");
    }

    #[test]
    fn names_of_paths() {
        assert_eq!(name_of("kernel/drivers/char/hw_random/virtio-rng.ko.xz"), "virtio_rng");
        assert!(is_module_file("a.ko.zst") && !is_module_file(".ko") && !is_module_file("a.o"));
        let sd = sample().softdeps()[2].clone();
        assert_eq!((sd.pre, sd.post, sd.other), (vec![], vec!["md5".into()], vec!["gcm".into()]));
        assert_eq!(sample().softdeps()[1].pre, ["ecb"]);
    }
}
