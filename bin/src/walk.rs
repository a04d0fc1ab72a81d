//! The directory walk: module files in raw `readdir` order, as kmod finds them.

use std::ffi::CStr;
use std::io;

use depmod_core::tree::ModuleSet;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir};

use crate::log::{Errno, Log, Octal, log};

/// File name endings that make a file a module candidate. kmod recognises only the formats its
/// build enables (Debian's 34.2: no gzip); this depmod reads them all.
pub const EXTENSIONS: [&[u8]; 4] = [b".ko", b".ko.gz", b".ko.xz", b".ko.zst"];

/// Whether `name` (a basename) is a module candidate: it ends in a module extension and is
/// longer than it.
pub fn is_module_name(name: &[u8]) -> bool {
    EXTENSIONS.iter().any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// A module file found: its path, and the directory the walk found it in, open (which makes
/// `fstatat` on it cheaper than `stat` on its path).
#[derive(Clone, Copy, Debug)]
pub struct FoundFile<'a> {
    pub path: &'a [u8],
    pub dir: Option<BorrowedFd<'a>>,
}

impl<'a> FoundFile<'a> {
    /// The file's name in its directory: its path's last component.
    pub fn name(&self) -> &'a [u8] {
        self.path.rsplit(|&c| c == b'/').next().unwrap_or(self.path)
    }
}

/// Bytes of directory entries read per `getdents64` call.
const ENTRIES_BUFFER: usize = 16 * 1024;

/// What the walk tells of each module file it finds.
pub type Found<'a> = &'a dyn Fn(FoundFile<'_>);

/// Walks one directory tree, adding module files to a [`ModuleSet`].
pub struct Walk<'a, 'c> {
    pub log: &'a Log,
    pub excludes: &'a [Vec<u8>],
    pub set: &'a mut ModuleSet<'c>,
    /// Told every module file found, as it is found (to start reading it at once).
    pub found: Option<Found<'a>>,
    /// `(device, inode)` of the directories on the current path, to stop at symlink loops.
    ancestors: Vec<(u64, u64)>,
    /// The descriptor number of the top directory. Messages name a directory by the number kmod
    /// would hold it under: this plus its depth (kmod keeps one descriptor per level open and
    /// nothing else during its walk; ours has module files open on other threads meanwhile).
    root_fd: i32,
}

impl<'a, 'c> Walk<'a, 'c> {
    pub fn new(log: &'a Log, excludes: &'a [Vec<u8>], set: &'a mut ModuleSet<'c>) -> Self {
        Walk { log, excludes, set, found: None, ancestors: Vec::new(), root_fd: 3 }
    }

    /// Walks `root`. Failing to open `root` itself is the only error returned (after kmod's
    /// `could not open directory` message); problems below it are reported and skipped.
    pub fn run(&mut self, root: &[u8]) -> io::Result<()> {
        let fd = match rustix::fs::openat(
            CWD,
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                let e = io::Error::from(e);
                log!(self.log, Error, "could not open directory ", root, ": ", e);
                return Err(e);
            }
        };
        let mut path = root.to_vec();
        path.push(b'/');
        self.ancestors.clear();
        self.root_fd = fd.as_raw_fd();
        let id = id(rustix::fs::fstat(&fd).ok().as_ref());
        self.dir(fd, id, &mut path);
        Ok(())
    }

    /// Walks the open directory `fd`, whose `(device, inode)` is `id` and whose path (with a
    /// final `/`) is `path`.
    fn dir(&mut self, fd: OwnedFd, id: (u64, u64), path: &mut Vec<u8>) {
        let dfd =
            self.root_fd.saturating_add(i32::try_from(self.ancestors.len()).unwrap_or(i32::MAX));
        self.ancestors.push(id);
        let mut buffer: Vec<u8> = Vec::with_capacity(ENTRIES_BUFFER);
        let mut dir = RawDir::new(fd.as_fd(), buffer.spare_capacity_mut());
        let base = path.len();
        while let Some(entry) = dir.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    log!(self.log, Error, "readdir(", &path[..], "): ", io::Error::from(e));
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || name == b"build" || name == b"source" {
                continue;
            }
            if self.excludes.iter().any(|x| x.as_slice() == name) {
                continue;
            }
            path.truncate(base);
            path.extend_from_slice(name);
            let is_dir = match entry.file_type() {
                FileType::RegularFile => false,
                FileType::Directory => true,
                _ => match stat_type(fd.as_fd(), entry.file_name()) {
                    Ok(FileType::RegularFile) => false,
                    Ok(FileType::Directory) => true,
                    Ok(other) => {
                        let mode = other.as_raw_mode();
                        log!(
                            self.log,
                            Error,
                            "unsupported file type ",
                            &path[..],
                            ": ",
                            Octal(mode)
                        );
                        continue;
                    }
                    Err(e) => {
                        log!(self.log, Error, "fstatat(", dfd, ", ", name, "): ", e);
                        continue;
                    }
                },
            };
            if is_dir {
                self.subdir(fd.as_fd(), entry.file_name(), dfd, path);
            } else if is_module_name(name) {
                if let Some(found) = self.found {
                    found(FoundFile { path, dir: Some(fd.as_fd()) });
                }
                self.set.add(path.clone());
            }
        }
        path.truncate(base);
        self.ancestors.pop();
    }

    fn subdir(&mut self, parent: BorrowedFd<'_>, name: &CStr, dfd: i32, path: &mut Vec<u8>) {
        let fd =
            match rustix::fs::openat(parent, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            {
                Ok(fd) => fd,
                Err(e) => {
                    let n = name.to_bytes();
                    log!(
                        self.log,
                        Error,
                        "openat(",
                        dfd,
                        ", ",
                        n,
                        ", O_RDONLY): ",
                        io::Error::from(e)
                    );
                    return;
                }
            };
        let st = rustix::fs::fstat(&fd);
        if let Ok(st) = &st {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                // What kmod's fdopendir says of it (it was replaced since it was listed).
                let e = io::Error::from(rustix::io::Errno::NOTDIR);
                log!(self.log, Error, "fdopendir(", dfd.saturating_add(1), "): ", e);
                return;
            }
            if let Some(depth) = self.ancestors.iter().position(|&a| a == id(Some(st))) {
                // kmod follows such links until it runs out of file descriptors.
                let levels = self.ancestors.len() - depth;
                log!(
                    self.log,
                    Error,
                    "skipping ",
                    &path[..],
                    ": directory loop (it is the directory ",
                    levels,
                    " level(s) up)"
                );
                return;
            }
        }
        path.push(b'/');
        self.dir(fd, id(st.as_ref().ok()), path);
    }
}

/// A directory's `(device, inode)`, from its `fstat`; one no directory has when that failed.
#[allow(clippy::unnecessary_cast)] // the field types differ between targets
fn id(st: Option<&rustix::fs::Stat>) -> (u64, u64) {
    st.map_or((u64::MAX, u64::MAX), |st| (st.st_dev as u64, st.st_ino as u64))
}

/// `fstatat(dir, name, &st, 0)`: the type of what `name` leads to, following symbolic links.
fn stat_type(dir: BorrowedFd<'_>, name: &CStr) -> Result<FileType, Errno> {
    let st =
        rustix::fs::statat(dir, name, AtFlags::empty()).map_err(|e| Errno(e.raw_os_error()))?;
    Ok(FileType::from_raw_mode(st.st_mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        for good in ["a.ko", "a.ko.xz", "a.ko.zst", "a.ko.gz", "a-b.c.ko"] {
            assert!(is_module_name(good.as_bytes()), "{good}");
        }
        for bad in [".ko", ".ko.xz", "a.ko.bz2", "a.o", "ako", "a.ko.xz.bak"] {
            assert!(!is_module_name(bad.as_bytes()), "{bad}");
        }
    }
}
