//! Installing a dynamically linked kmod from a root file system (an extracted Debian package set,
//! or `/`) into an image, with its program interpreter and every library it needs.
//!
//! The libraries are found by asking the root's own dynamic loader (`ld.so --list`, what `ldd`
//! does), restricted to the root's library directories; kmod 34 also `dlopen`s its
//! decompression libraries, which no loader lists, so library names found in the binary's strings
//! are added too. A kmod of another architecture (a board's) is asked through qemu-user.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::elf::{self, Linking};
use crate::image::Image;
use crate::{Error, arch};

/// The kmod tools linked to the kmod binary in the image (depmod is left to the one under test).
pub const TOOLS: [&str; 5] = ["modprobe", "insmod", "rmmod", "lsmod", "modinfo"];

/// What [`install`] put into the image.
#[derive(Clone, Debug)]
pub struct Installed {
    /// The binary's path in the image, e.g. `/usr/bin/kmod`.
    pub binary: String,
    /// The first line of `modprobe --version`, e.g. `kmod version 34.2`.
    pub version: String,
    /// Paths in the image of the interpreter and libraries.
    pub libraries: Vec<String>,
}

/// Copies kmod from `root` into `image` and links `/sbin/{modprobe,...}` to it.
pub fn install(image: &mut Image, root: &Path) -> Result<Installed, Error> {
    let rel = ["usr/bin/kmod", "bin/kmod"]
        .into_iter()
        .find(|r| resolve_in(root, r).is_ok_and(|p| p.is_file()))
        .ok_or_else(|| Error::new(format!("{}: no usr/bin/kmod or bin/kmod", root.display())))?;
    let binary = resolve_in(root, rel)?;
    let data = fs::read(&binary).map_err(|e| Error::io("read", &binary, e))?;
    let interp = match elf::linking(&data) {
        Ok(Linking::Dynamic(i)) => i,
        Ok(Linking::Static) => String::new(),
        Err(e) => return Err(Error::new(format!("{}: {e}", binary.display()))),
    };
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut version = String::new();
    if !interp.is_empty() {
        let loader = resolve_in(root, &interp)?;
        files.insert(interp.trim_start_matches('/').to_string(), loader.clone());
        let dirs = library_dirs(root);
        let path_arg = dirs.iter().map(|d| d.to_string_lossy()).collect::<Vec<_>>().join(":");
        let mut queue = vec![binary.clone()];
        for name in dlopen_names(&data) {
            if let Some(lib) = dirs.iter().map(|d| d.join(&name)).find(|p| p.exists()) {
                queue.push(lib);
            }
        }
        for object in &queue {
            for lib in list(&loader, &path_arg, object)? {
                let inside = image_path(root, &lib)?;
                files.entry(inside).or_insert(lib);
            }
            if object != &binary {
                files.insert(image_path(root, object)?, object.clone());
            }
        }
        version = first_line(
            arch::command(&loader)?
                .args(["--inhibit-cache", "--library-path", &path_arg])
                .args(["--argv0", "modprobe"])
                .arg(&binary)
                .arg("--version"),
        )?;
    }
    let libraries: Vec<String> = files.keys().map(|k| format!("/{k}")).collect();
    for (inside, src) in &files {
        image.add_host_file(inside, src, 0o755);
    }
    image.add_host_file(rel, &binary, 0o755);
    for tool in TOOLS {
        image.add_symlink(&format!("sbin/{tool}"), &format!("/{rel}"));
    }
    Ok(Installed { binary: format!("/{rel}"), version, libraries })
}

/// Follows `path` inside `root` as if `root` were `/` (absolute link targets stay inside it).
/// Packages of a merged-/usr release extracted without base-files lack its `/lib64 -> usr/lib64`
/// style links, so a top-level `bin`, `sbin` or `lib*` path missing from `root` is looked up
/// under `usr/` too.
pub fn resolve_in(root: &Path, path: &str) -> Result<PathBuf, Error> {
    let found = resolve_links(root, path)?;
    let top = path.trim_start_matches('/').split('/').next().unwrap_or("");
    if !found.exists() && (top == "bin" || top == "sbin" || top.starts_with("lib")) {
        let merged = resolve_links(root, &format!("usr/{}", path.trim_start_matches('/')))?;
        if merged.exists() {
            return Ok(merged);
        }
    }
    Ok(found)
}

fn resolve_links(root: &Path, path: &str) -> Result<PathBuf, Error> {
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut at = root.to_path_buf();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                if at != root {
                    at.pop();
                }
                continue;
            }
            _ => {}
        }
        let next = at.join(&part);
        match fs::read_link(&next) {
            Ok(target) => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::new(format!(
                        "{path}: too many links in {}",
                        root.display()
                    )));
                }
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    at = root.to_path_buf();
                }
                todo.extend(target.split('/').rev().map(str::to_string));
            }
            Err(_) => at = next,
        }
    }
    Ok(at)
}

/// The root's library directories, in the loader's default search order.
fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["lib", "usr/lib"] {
        if let Ok(entries) = fs::read_dir(root.join(base)) {
            let mut triplets: Vec<PathBuf> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains("-linux-"))
                .map(|e| e.path())
                .collect();
            triplets.sort();
            dirs.extend(triplets);
        }
    }
    for base in ["lib", "usr/lib", "lib64", "usr/lib64"] {
        dirs.push(root.join(base));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

/// `ld.so --list`: the libraries `object` loads, as host paths.
fn list(loader: &Path, path_arg: &str, object: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = arch::command(loader)?
        .args(["--inhibit-cache", "--library-path", path_arg, "--list"])
        .arg(object)
        .output()
        .map_err(|e| Error::io("run", loader, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not found") {
        return Err(Error::new(format!(
            "{} --list {}: {}{}",
            loader.display(),
            object.display(),
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // Lines are `name => path (address)` or, for the vDSO and the interpreter, `name (address)`.
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(" => "))
        // The interpreter is listed under its own absolute name; it is installed apart.
        .filter(|(name, _)| !name.trim().starts_with('/'))
        .filter_map(|(_, rest)| rest.split(" (").next())
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect())
}

/// Where a file of `root` goes in the image; an error if it is outside `root`.
fn image_path(root: &Path, host: &Path) -> Result<String, Error> {
    let rel = host.strip_prefix(root).map_err(|_| {
        Error::new(format!(
            "{} is outside {}: the root lacks a library",
            host.display(),
            root.display()
        ))
    })?;
    let parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Ok(parts.join("/"))
}

/// Library names (`libfoo.so.N`) among the strings of a binary: candidates for `dlopen`.
fn dlopen_names(data: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = data
        .split(|&b| b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok())
        .filter(|s| {
            s.starts_with("lib")
                && s.len() < 64
                && s.rsplit_once(".so.").is_some_and(|(stem, v)| {
                    !stem.contains('/') && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
                })
        })
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

fn first_line(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::new(format!("{cmd:?}: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.lines().next() {
        Some(l) if out.status.success() => Ok(l.to_string()),
        _ => Err(Error::new(format!("{cmd:?}: {}", out.status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        let root = std::env::temp_dir().join(format!("initramfs-kmod-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        fs::create_dir_all(root.join("lib64")).unwrap();
        fs::write(root.join("usr/lib/x86_64-linux-gnu/ld.so"), b"").unwrap();
        std::os::unix::fs::symlink("/usr/lib/x86_64-linux-gnu/ld.so", root.join("lib64/ld.so"))
            .unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        let want = root.join("usr/lib/x86_64-linux-gnu/ld.so");
        assert_eq!(resolve_in(&root, "/lib64/ld.so").unwrap(), want);
        assert_eq!(resolve_in(&root, "/lib/x86_64-linux-gnu/ld.so").unwrap(), want);
        assert_eq!(resolve_in(&root, "/../../lib64/ld.so").unwrap(), want);
        assert_eq!(image_path(&root, &want).unwrap(), "usr/lib/x86_64-linux-gnu/ld.so");
        assert!(image_path(&root, Path::new("/etc/passwd")).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dlopen_candidates() {
        let data = b"\0liblzma.so.5\0libzstd.so.1\0/usr/lib/libx.so.1\0libc.so.6x\0lib.so\0";
        assert_eq!(dlopen_names(data), ["liblzma.so.5", "libzstd.so.1"]);
    }
}
