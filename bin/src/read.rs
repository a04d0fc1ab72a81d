//! Reading a module file from disk: whole into a reused buffer, mapped when it is large, or,
//! for a large uncompressed one, only the parts core's read plan says the parser reads.

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use depmod_core::read_plan::{self, RangeSet};

/// Files up to this size are read whole; of larger uncompressed ones only the parts the parser
/// reads are (typically a fifth of the file).
pub const READ_WHOLE: usize = 32 * 1024;

/// Files larger than this (a few dozen in a tree) are mapped, so that only the pages the parser
/// touches are brought in; smaller ones are read into a per-thread buffer that only ever grows.
/// (Mapping every file costs more: each unmapping interrupts the other CPUs to flush their TLBs.)
pub const MAP: usize = 1 << 20;

/// How much of a large file is read before its format is known.
const HEAD: usize = 4096;

/// The last part of a large file, read first: it usually holds the section table and names.
const TAIL: usize = 16 * 1024;

/// Ranges closer than this are read in one call.
const JOIN: usize = 4096;

/// Maps the first `len` bytes of a file read-only (`len` from the `fstat` the caller made, which
/// spares memmap2 its own); with `populate`, the pages the page cache holds are mapped in one
/// call (`MAP_POPULATE`) instead of a page fault for each.
pub fn map(file: &OwnedFd, len: usize, populate: bool) -> io::Result<memmap2::Mmap> {
    let mut options = memmap2::MmapOptions::new();
    options.len(len);
    if populate {
        options.populate();
    }
    // SAFETY: the mapping is private and read-only. If another process truncated the file while
    // it is mapped, reading past the new end would raise SIGBUS; installers replace module files
    // by renaming new ones into place, which leaves this mapping intact (kmod maps module files
    // the same way), and depmod replaces its module cache by renaming too.
    unsafe { options.map_copy_read_only(file.as_raw_fd()) }
}

/// The file at `path` (not a directory), mapped with its pages (`MAP_POPULATE` maps those the
/// page cache holds in one call): the module cache, and the indexes a re-run patches.
pub fn map_path(path: &[u8]) -> io::Result<memmap2::Mmap> {
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
    let path = std::ffi::OsStr::from_bytes(path);
    let fd = rustix::fs::open(path, flags, rustix::fs::Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
        return Err(rustix::io::Errno::ISDIR.into());
    }
    let len = usize::try_from(st.st_size).map_err(|_| io::ErrorKind::FileTooLarge)?;
    map(&fd, len, true)
}

/// Reads the first bytes of a file of `len` bytes (all of a small one) into `buf`; returns them.
pub fn head<'b>(file: &OwnedFd, len: usize, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let n = if len <= READ_WHOLE { len } else { HEAD.min(len) };
    read_at(file, buf, 0..n)?;
    Ok(buf.get(..n).unwrap_or_default())
}

/// Reads the rest of a file whose [`head`] was read.
pub fn rest(file: &OwnedFd, len: usize, buf: &mut [u8]) -> io::Result<()> {
    if len > READ_WHOLE { read_at(file, buf, HEAD..len) } else { Ok(()) }
}

/// Fills `buf[range]` from the same range of the file; a file that shrank is an error.
fn read_at(file: &OwnedFd, buf: &mut [u8], range: Range<usize>) -> io::Result<()> {
    let mut offset = range.start as u64;
    let Some(mut dst) = buf.get_mut(range) else {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    };
    while !dst.is_empty() {
        match rustix::io::pread(file, &mut *dst, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                dst = dst.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Range lists [`sparse`] reuses from one file to the next.
#[derive(Default)]
pub struct Ranges {
    /// The parts of the file read so far.
    filled: RangeSet,
    want: Vec<Range<usize>>,
    gaps: Vec<Range<usize>>,
}

/// Reads the parts of an uncompressed module of `len` bytes that the parser reads into `buf`,
/// whose [`head`] was read (its other bytes are left as they were: the parser never looks at
/// them). Each round reads what [`read_plan::wanted_ranges`] asks for given what has been read
/// so far, until it asks for nothing new; a file that keeps asking is read whole.
pub fn sparse(file: &OwnedFd, len: usize, buf: &mut [u8], ranges: &mut Ranges) -> io::Result<()> {
    let Ranges { filled, want, gaps } = ranges;
    let clip = |r: &Range<usize>| r.start.min(len)..r.end.min(len);
    filled.clear();
    filled.insert(0..HEAD.min(len));
    want.clear();
    want.push(len.saturating_sub(TAIL)..len);
    for _ in 0..6 {
        gaps.clear();
        want.iter_mut().for_each(|r| *r = clip(r));
        read_plan::coalesce(want, JOIN);
        for r in want.drain(..) {
            filled.missing(r, gaps);
        }
        for gap in gaps.iter() {
            read_at(file, buf, gap.clone())?;
        }
        for gap in gaps.drain(..) {
            filled.insert(gap);
        }
        read_plan::wanted_ranges(buf, &|r| filled.covers(&clip(r)), want);
        want.retain(|r| !filled.covers(&clip(r)));
        if want.is_empty() {
            return Ok(());
        }
    }
    read_at(file, buf, 0..len)
}
