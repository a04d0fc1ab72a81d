//! The directory walk: module files in raw `readdir` order, as kmod finds them. When each file's
//! stamp is wanted (a re-run with a module cache, where the walk is most of the run),
//! directories are listed and their module files stamped on several threads ([`par::tree`]).
//! What they hold is taken in kmod's order (depth first, each directory's entries in `readdir`
//! order) on the caller's thread, which tells of each module file and says what could not be
//! listed, as kmod does as it goes.
//!
//! With a module cache, a directory whose stamp is the one its recorded listing has is not
//! listed again: it is opened as a path only, and the recorded entries stand for `readdir`'s
//! (see "Directories" in [`depmod_core::cache`]). The walk tells of each directory's listing
//! that can be recorded, for the next cache.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use depmod_core::cache::listing::{self, Listed, ListingBuf};
use depmod_core::cache::{Cache, Stamp};
use depmod_core::tree::ModuleSet;
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RawDir};

use crate::log::{Errno, Log, Octal, log};
use crate::{load, par};

/// File name endings that make a file a module candidate. kmod recognises only the formats its
/// build enables (Debian's 34.2: no gzip); this depmod reads them all.
pub const EXTENSIONS: [&[u8]; 4] = [b".ko", b".ko.gz", b".ko.xz", b".ko.zst"];

/// Whether `name` (a basename) is a module candidate: it ends in a module extension and is
/// longer than it.
pub fn is_module_name(name: &[u8]) -> bool {
    EXTENSIONS.iter().any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// A module file found: its path, and its stamp when the walk took it (`fstatat` in the
/// directory the walk has open, which is cheaper than `stat` on its path).
#[derive(Clone, Copy, Debug)]
pub struct FoundFile<'a> {
    pub path: &'a [u8],
    pub stamp: Option<Stamp>,
}

/// Bytes of directory entries read per `getdents64` call.
const ENTRIES_BUFFER: usize = 16 * 1024;

/// Room made for the entries of a directory listing, and for their names: enough for most.
const ENTRIES: usize = 64;
const NAMES: usize = 1024;

/// Who the walk tells of each module file it finds, and whether it takes each one's stamp (to
/// check it against a module cache).
#[derive(Clone, Copy)]
pub struct Found<'a> {
    pub tell: &'a dyn Fn(FoundFile<'_>),
    pub stamps: bool,
    /// The module cache, whose directory listings stand for those of unchanged directories.
    pub cache: Option<&'a Cache<'a>>,
    /// Told of each directory listing that can be recorded in a new cache, in walk order.
    pub listed: Option<&'a dyn Fn(DirListing)>,
    /// The directory (device, inode) whose listing is never recorded: the one the indexes and
    /// the cache are written to, which each run changes.
    pub unrecorded: Option<(u64, u64)>,
}

/// A directory's listing, as a module cache records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirListing {
    /// The directory's path, with a final `/`.
    pub path: Vec<u8>,
    /// Its stamp before it was listed.
    pub stamp: Stamp,
    /// Its entries ([`listing`]).
    pub entries: Vec<u8>,
    /// Whether it was listed this run (not taken from the cache).
    pub fresh: bool,
}

/// Module files' paths, in the order found, one after the other in one buffer.
#[derive(Debug, Default)]
pub struct Paths {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Paths {
    fn push(&mut self, path: &[u8]) {
        self.bytes.extend_from_slice(path);
        self.ends.push(self.bytes.len());
    }

    /// The paths, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(start, &end)| self.bytes.get(start..end).unwrap_or_default())
    }
}

/// Where a walk puts the module files it finds.
pub enum Collect<'a, 'c> {
    /// Straight into kmod's module table.
    Set(&'a mut ModuleSet<'c>),
    /// Their paths, for a table made later, if at all (a run that may find its indexes current
    /// from the files alone).
    Paths(&'a mut Paths),
}

/// Walks one directory tree, collecting module files.
pub struct Walk<'a, 'c> {
    pub log: &'a Log,
    pub excludes: &'a [Vec<u8>],
    pub into: Collect<'a, 'c>,
    /// Told every module file found, in order, as soon as it is found (to start reading it).
    pub found: Option<Found<'a>>,
    /// Threads listing directories, the caller's among them.
    threads: usize,
    /// The descriptor number kmod holds the top directory under ([`first_free_fd`]). Messages
    /// name a directory by the number kmod would hold it under: this plus its depth (kmod keeps
    /// one descriptor per level open and nothing else during its walk; ours has module files
    /// open on other threads meanwhile).
    root_fd: i32,
}

/// The number kmod's walk holds a top directory under: the lowest descriptor free when the run
/// began. Asked before any other thread starts, as ours open files while the walk goes on (a
/// reader opening its first file, or `/proc/meminfo`, at the moment the top directory is opened
/// would take that number).
pub fn first_free_fd() -> i32 {
    let fd = rustix::fs::openat(CWD, "/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
    fd.map_or(3, |fd| fd.as_raw_fd())
}

/// A directory to list.
struct Dir {
    /// Its path, with a final `/`.
    path: Vec<u8>,
    /// `(device, inode)` of the directories above it, to stop at symlink loops.
    ancestors: Arc<[(u64, u64)]>,
    /// The top directory comes open, with its stamp; the others are opened by the thread that
    /// lists them.
    open: Option<(OwnedFd, Option<Stamp>)>,
}

/// What the threads listing directories need to know.
#[derive(Clone, Copy)]
struct Lister<'a> {
    excludes: &'a [Vec<u8>],
    /// Module files are stamped.
    stamps: bool,
    /// Recorded listings, for directories whose stamp is unchanged.
    cache: Option<&'a Cache<'a>>,
    /// Listings are recorded.
    record: bool,
    unrecorded: Option<(u64, u64)>,
}

impl Lister<'_> {
    /// Whether the configuration excludes entries named `name` (kmod's `exclude`).
    fn excluded(&self, name: &[u8]) -> bool {
        self.excludes.iter().any(|x| x.as_slice() == name)
    }
}

/// What one directory holds, in `readdir` order, less what the walk skips and files of no
/// interest.
#[derive(Default)]
struct Listing {
    /// The entries' names, one after the other.
    names: Vec<u8>,
    /// Each entry: where its name ends in `names`, and what it is.
    entries: Vec<(usize, Entry)>,
    /// Why the directory was not listed at all.
    unlisted: Option<Unlisted>,
    /// Why reading its entries stopped early.
    error: Option<io::Error>,
    /// The listing as a cache records it, when it can be recorded.
    record: Option<DirListing>,
}

enum Entry {
    /// A module file, with its stamp when one was asked for and `fstatat` gave it.
    Module(Option<Stamp>),
    /// A directory: the next of the listing's children.
    Dir,
    /// Neither a regular file nor a directory (its type, from its mode).
    Unsupported(u32),
    /// `fstatat` failed on an entry whose type `readdir` did not give.
    Unstatable(Errno),
}

enum Unlisted {
    /// It could not be opened.
    Open(io::Error),
    /// What was opened is not a directory (it was replaced since its parent was listed).
    NotDir,
    /// It is the directory this many levels up.
    Loop(usize),
}

impl<'a, 'c> Walk<'a, 'c> {
    /// A walk on `threads` threads whose messages number the top directory `root_fd` (from
    /// [`first_free_fd`]).
    pub fn new(
        log: &'a Log,
        excludes: &'a [Vec<u8>],
        into: Collect<'a, 'c>,
        threads: usize,
        root_fd: i32,
    ) -> Self {
        Walk { log, excludes, into, found: None, threads, root_fd }
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
        let stamp = rustix::fs::fstat(&fd).ok().map(|st| load::stamp(&st));
        let top = Dir { path: path.clone(), ancestors: Arc::new([]), open: Some((fd, stamp)) };
        let found = self.found;
        let stamps = found.is_some_and(|f| f.stamps);
        let lister = Lister {
            excludes: self.excludes,
            stamps,
            cache: found.and_then(|f| f.cache),
            record: found.is_some_and(|f| f.listed.is_some()),
            unrecorded: found.and_then(|f| f.unrecorded),
        };
        // Files that are read keep every thread busy: the walk then stays on the caller's.
        let threads = if stamps { self.threads } else { 1 };
        par::tree(
            threads,
            top,
            || Vec::with_capacity(ENTRIES_BUFFER),
            |buffer, dir| list(dir, lister, buffer),
            |get| {
                if let Some((mut listing, first)) = get(0) {
                    self.take(get, &mut listing, first, 0, &mut path);
                }
            },
        );
        Ok(())
    }

    /// Takes what the directory at `path` (with a final `/`), `depth` levels down, holds: the
    /// `listing`, whose first child is `first` for `get`.
    fn take(
        &mut self,
        get: &mut dyn FnMut(usize) -> Option<(Listing, usize)>,
        listing: &mut Listing,
        mut child: usize,
        depth: usize,
        path: &mut Vec<u8>,
    ) {
        let dfd = self.root_fd.saturating_add(i32::try_from(depth).unwrap_or(i32::MAX));
        let base = path.len();
        let mut start = 0;
        for (end, entry) in &listing.entries {
            let name = listing.names.get(start..*end).unwrap_or_default();
            start = *end;
            path.truncate(base);
            path.extend_from_slice(name);
            match entry {
                Entry::Module(stamp) => {
                    if let Some(found) = self.found {
                        (found.tell)(FoundFile { path, stamp: *stamp });
                    }
                    match &mut self.into {
                        Collect::Set(set) => drop(set.add(path.clone())),
                        Collect::Paths(paths) => paths.push(path),
                    }
                }
                Entry::Dir => {
                    let Some((mut sub, first)) = get(child) else { continue };
                    child += 1;
                    match &sub.unlisted {
                        None => {
                            path.push(b'/');
                            self.take(get, &mut sub, first, depth + 1, path);
                        }
                        Some(Unlisted::Open(e)) => {
                            log!(self.log, Error, "openat(", dfd, ", ", name, ", O_RDONLY): ", e);
                        }
                        Some(Unlisted::NotDir) => {
                            // What kmod's fdopendir says of it.
                            let e = io::Error::from(rustix::io::Errno::NOTDIR);
                            log!(self.log, Error, "fdopendir(", dfd.saturating_add(1), "): ", e);
                        }
                        Some(Unlisted::Loop(levels)) => {
                            // kmod follows such links until it runs out of file descriptors.
                            log!(
                                self.log,
                                Error,
                                "skipping ",
                                &path[..],
                                ": directory loop (it is the directory ",
                                *levels,
                                " level(s) up)"
                            );
                        }
                    }
                }
                Entry::Unsupported(mode) => {
                    log!(self.log, Error, "unsupported file type ", &path[..], ": ", Octal(*mode));
                }
                Entry::Unstatable(e) => {
                    log!(self.log, Error, "fstatat(", dfd, ", ", name, "): ", *e);
                }
            }
        }
        path.truncate(base);
        if let Some(e) = &listing.error {
            log!(self.log, Error, "readdir(", &path[..], "): ", e);
        }
        if let (Some(record), Some(listed)) =
            (listing.record.take(), self.found.and_then(|f| f.listed))
        {
            listed(record);
        }
    }
}

/// Lists `dir` (opening it first, unless it comes open): its entries, and the directories among
/// them to list next. Module files are stamped when `lister.stamps` says so. A directory whose
/// stamp is the one of its listing in the cache is not read: the listing stands for it. `buffer`
/// (empty) takes the entries as they are read.
fn list(mut dir: Dir, lister: Lister<'_>, buffer: &mut Vec<u8>) -> (Listing, Vec<Dir>) {
    let mut listing = Listing::default();
    let mut children = Vec::new();
    let recorded = lister.cache.and_then(|c| c.listing(&dir.path));
    let (opened, path_only) = match dir.open.take() {
        Some(open) => (Ok(open), false),
        // Opened as a path only when its recorded listing may do.
        None => match recorded.and_then(|_| open_path(&dir)) {
            Some(opened) => (opened, true),
            None => (open(&dir), false),
        },
    };
    let (fd, stamp) = match opened {
        Ok(open) => open,
        Err(unlisted) => {
            listing.unlisted = Some(unlisted);
            return (listing, children);
        }
    };
    // Shared by the subdirectories.
    let ancestors: Arc<[(u64, u64)]> =
        dir.ancestors.iter().copied().chain([id(stamp.as_ref())]).collect();
    let recordable =
        lister.record && stamp.is_some() && lister.unrecorded != Some(id(stamp.as_ref()));
    let mut add = |listing: &mut Listing, name: &[u8], what: Entry| {
        if let Entry::Dir = what {
            let path = [&dir.path[..], name, b"/"].concat();
            children.push(Dir { path, ancestors: Arc::clone(&ancestors), open: None });
        }
        listing.names.extend_from_slice(name);
        listing.entries.push((listing.names.len(), what));
    };
    if let (Some((then, entries)), Some(now)) = (recorded, stamp) {
        if then == now {
            // Room for exactly the recorded entries (their names take less than the record).
            listing.entries.reserve_exact(listing::entries(entries).count());
            listing.names.reserve_exact(entries.len());
            for (kind, name) in listing::entries(entries) {
                if lister.excluded(name) {
                    continue;
                }
                let what = match kind {
                    Listed::Module => Entry::Module(match lister.stamps {
                        true => stat(fd.as_fd(), OsStr::from_bytes(name))
                            .ok()
                            .map(|st| load::stamp(&st)),
                        false => None,
                    }),
                    Listed::Directory => Entry::Dir,
                };
                add(&mut listing, name, what);
            }
            if recordable {
                let entries = entries.to_vec();
                listing.record =
                    Some(DirListing { path: dir.path.clone(), stamp: now, entries, fresh: false });
            }
            return (listing, children);
        }
    }
    // Listed: a path-only descriptor is opened again to read.
    let fd = match path_only {
        true => match open(&dir) {
            Ok((fd, _)) => fd,
            Err(unlisted) => {
                listing.unlisted = Some(unlisted);
                return (listing, children);
            }
        },
        false => fd,
    };
    listing.entries.reserve(ENTRIES);
    listing.names.reserve(NAMES);
    let mut record = ListingBuf::new();
    let mut entries = RawDir::new(fd.as_fd(), buffer.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                listing.error = Some(io::Error::from(e));
                break;
            }
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || name == b"build" || name == b"source" {
            continue;
        }
        // What a cache records, before the exclusions (which it applies when used).
        if recordable {
            match entry.file_type() {
                FileType::RegularFile if is_module_name(name) => record.push(Listed::Module, name),
                FileType::RegularFile => {}
                FileType::Directory => record.push(Listed::Directory, name),
                _ => record.spoil(),
            }
        }
        if lister.excluded(name) {
            continue;
        }
        // The type `readdir` gives, or else `fstatat`'s, whose answer then also stamps a module.
        let (file_type, taken) = match entry.file_type() {
            t @ (FileType::RegularFile | FileType::Directory) => (Ok(t), None),
            _ => match stat(fd.as_fd(), entry.file_name()) {
                Ok(st) => (Ok(FileType::from_raw_mode(st.st_mode)), Some(st)),
                Err(e) => (Err(e), None),
            },
        };
        let what = match file_type {
            Ok(FileType::RegularFile) if is_module_name(name) => {
                let st = match lister.stamps {
                    true => taken.or_else(|| stat(fd.as_fd(), entry.file_name()).ok()),
                    false => None,
                };
                Entry::Module(st.map(|st| load::stamp(&st)))
            }
            Ok(FileType::RegularFile) => continue,
            Ok(FileType::Directory) => Entry::Dir,
            Ok(other) => Entry::Unsupported(other.as_raw_mode()),
            Err(e) => Entry::Unstatable(e),
        };
        add(&mut listing, name, what);
    }
    if let (true, None, Some(stamp), Some(entries)) =
        (recordable, &listing.error, stamp, record.encoded())
    {
        let entries = entries.to_vec();
        listing.record = Some(DirListing { path: dir.path.clone(), stamp, entries, fresh: true });
    }
    (listing, children)
}

/// Opens the directory `dir` (not the top one) as a path only, to compare its stamp with its
/// recorded listing's, and checks it as [`open`] does. `None` when it cannot be opened so:
/// [`open`] then says why.
fn open_path(dir: &Dir) -> Option<Result<(OwnedFd, Option<Stamp>), Unlisted>> {
    let path = dir.path.strip_suffix(b"/").unwrap_or(&dir.path);
    let flags = OFlags::PATH | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(CWD, path, flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    Some(checked(dir, fd, &st))
}

/// Opens the directory `dir` (not the top one) and checks that it is one, and not one above it.
fn open(dir: &Dir) -> Result<(OwnedFd, Option<Stamp>), Unlisted> {
    let path = dir.path.strip_suffix(b"/").unwrap_or(&dir.path);
    let fd = rustix::fs::openat(CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Unlisted::Open(io::Error::from(e)))?;
    match rustix::fs::fstat(&fd) {
        Ok(st) => checked(dir, fd, &st),
        Err(_) => Ok((fd, None)),
    }
}

/// `fd` of `dir`, with its stamp from `st`, unless `st` is not a directory's or is that of one
/// above it.
fn checked(
    dir: &Dir,
    fd: OwnedFd,
    st: &rustix::fs::Stat,
) -> Result<(OwnedFd, Option<Stamp>), Unlisted> {
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Unlisted::NotDir);
    }
    let stamp = load::stamp(st);
    if let Some(depth) = dir.ancestors.iter().position(|&a| a == id(Some(&stamp))) {
        return Err(Unlisted::Loop(dir.ancestors.len() - depth));
    }
    Ok((fd, Some(stamp)))
}

/// A directory's `(device, inode)`, from its stamp; one no directory has without one.
pub fn id(stamp: Option<&Stamp>) -> (u64, u64) {
    stamp.map_or((u64::MAX, u64::MAX), |s| (s.dev, s.ino))
}

/// `fstatat(dir, name, &st, 0)`: what `name` leads to, following symbolic links.
fn stat(dir: BorrowedFd<'_>, name: impl rustix::path::Arg) -> Result<rustix::fs::Stat, Errno> {
    rustix::fs::statat(dir, name, AtFlags::empty()).map_err(|e| Errno(e.raw_os_error()))
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

    /// Messages number a directory as kmod's walk holds it, whatever else the process has open
    /// meanwhile: a reader thread that opened a file just before the top directory made every
    /// number one too high (`fstatat(5, ...)` against kmod's 4, seen once in CI).
    #[test]
    fn messages_number_directories_from_the_first_free_descriptor() {
        let tree = crate::testing::TempDir::new("walk-fd-numbers");
        tree.write("kernel/a.ko", b"");
        std::os::unix::fs::symlink("nowhere", tree.path().join("kernel/dangling")).unwrap();
        let root_fd = first_free_fd();
        // Another thread's file, open while the walk opens its directories.
        let held = std::fs::File::open("/").unwrap();
        let mut paths = Paths::default();
        let log = Log::capturing();
        Walk::new(&log, &[], Collect::Paths(&mut paths), 1, root_fd).run(&tree.bytes()).unwrap();
        drop(held);
        let messages = String::from_utf8(log.take_bytes()).unwrap();
        let expected = format!("fstatat({}, dangling): No such file or directory", root_fd + 1);
        assert!(messages.contains(&expected), "{messages:?} lacks {expected:?}");
    }
}
