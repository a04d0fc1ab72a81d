//! `-A`: is any module newer than `modules.dep`? kmod's walk and messages, including its quirks
//! (exclude rules and external directories are not looked at). Unlike kmod, which compares whole
//! seconds and so misses a module replaced in the same second as the last run, times are
//! compared to the nanosecond.

use std::ffi::CStr;

use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};

use crate::log::{Errno, Log, Octal, log};
use crate::walk::is_module_name;

/// A modification time: seconds and nanoseconds.
type Stamp = (i64, i64);

fn stamp(st: &rustix::fs::Stat) -> Stamp {
    (st.st_mtime, st.st_mtime_nsec as i64)
}

/// Whether the indexes in `dir` are up to date: `modules.dep` exists and no module file under
/// `dir` has a later modification time. Problems are reported; they make the
/// answer "not up to date" only where kmod's do.
pub fn up_to_date(log: &Log, dir: &[u8]) -> bool {
    let fd = match rustix::fs::openat(
        CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => {
            log!(log, Error, "could not open directory ", dir, ": ", Errno(e.raw_os_error()));
            return false;
        }
    };
    let dep = match rustix::fs::statat(&fd, "modules.dep", AtFlags::empty()) {
        Ok(st) => stamp(&st),
        Err(e) => {
            log!(
                log,
                Error,
                "could not fstatat(",
                dir,
                ", modules.dep): ",
                Errno(e.raw_os_error())
            );
            return false;
        }
    };
    let mut path = dir.to_vec();
    path.push(b'/');
    let mut ancestors = Vec::new();
    walk(log, fd, &mut path, dep, &mut ancestors) != Some(false)
}

/// Walks one directory; `Some(false)` as soon as a newer module is found, otherwise the result
/// of the last entry looked at (kmod's `err`: `None` stands for its ignored errors).
fn walk(
    log: &Log,
    fd: OwnedFd,
    path: &mut Vec<u8>,
    dep_mtime: Stamp,
    ancestors: &mut Vec<(u64, u64)>,
) -> Option<bool> {
    let dfd = fd.as_raw_fd();
    let id = rustix::fs::fstat(&fd).map_or((u64::MAX, u64::MAX), |st| (st.st_dev, st.st_ino));
    if ancestors.contains(&id) {
        // A symbolic link back up the tree: kmod follows it until it runs out of descriptors.
        return Some(true);
    }
    ancestors.push(id);
    let result = walk_entries(log, fd, dfd, path, dep_mtime, ancestors);
    ancestors.pop();
    result
}

fn walk_entries(
    log: &Log,
    fd: OwnedFd,
    dfd: i32,
    path: &mut Vec<u8>,
    dep_mtime: Stamp,
    ancestors: &mut Vec<(u64, u64)>,
) -> Option<bool> {
    let Ok(mut dir) = Dir::new(fd) else { return Some(true) };
    let base = path.len();
    let mut result = Some(true);
    while let Some(Ok(entry)) = dir.read() {
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || name == b"build" || name == b"source" {
            continue;
        }
        let Ok(parent) = dir.fd() else { break };
        let st = match rustix::fs::statat(parent.as_fd(), entry.file_name(), AtFlags::empty()) {
            Ok(st) => st,
            Err(e) => {
                log!(log, Error, "fstatat(", dfd, ", ", name, "): ", Errno(e.raw_os_error()));
                continue;
            }
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                path.truncate(base);
                path.extend_from_slice(name);
                result = subdir(
                    log,
                    (parent.as_fd(), dfd),
                    entry.file_name(),
                    path,
                    dep_mtime,
                    ancestors,
                );
            }
            FileType::RegularFile => {
                if !is_module_name(name) {
                    continue;
                }
                path.truncate(base);
                path.extend_from_slice(name);
                result = Some(stamp(&st) <= dep_mtime);
            }
            other => {
                // kmod prints its path buffer here, which still holds the previous entry's name.
                log!(
                    log,
                    Error,
                    "unsupported file type ",
                    &path[..],
                    ": ",
                    Octal(other.as_raw_mode())
                );
            }
        }
        if result == Some(false) {
            break;
        }
        if result.is_none() {
            result = Some(true);
        }
    }
    // Like kmod's buffer, the path keeps what the last entry below wrote: an unsupported file
    // met later in a parent directory is reported under that name.
    result
}

/// Walks subdirectory `name` of `parent` (whose descriptor number is shown in messages).
fn subdir(
    log: &Log,
    (parent, dfd): (rustix::fd::BorrowedFd<'_>, i32),
    name: &CStr,
    path: &mut Vec<u8>,
    dep_mtime: Stamp,
    ancestors: &mut Vec<(u64, u64)>,
) -> Option<bool> {
    match rustix::fs::openat(parent, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => {
            path.push(b'/');
            walk(log, fd, path, dep_mtime, ancestors)
        }
        Err(e) => {
            let n = name.to_bytes();
            log!(log, Error, "openat(", dfd, ", ", n, ", O_RDONLY): ", Errno(e.raw_os_error()));
            None
        }
    }
}
