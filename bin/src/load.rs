//! Reading module files on all cores and turning each into a [`ModuleInfo`].

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use depmod_core::ModuleInfo;
use depmod_core::module::Scratch;

use depmod_core::read_plan::{self, RangeSet};

use crate::decompress::{DecodeError, Decoders, Format, Range};
use depmod_core::tree::Module;

/// What was read of one module.
#[derive(Debug, Default)]
pub struct Loaded {
    pub info: ModuleInfo,
    /// Why the file could not be used at all: it could not be read or decompressed.
    pub failure: Option<Failure>,
}

/// Why a module file could not be used at all.
#[derive(Debug)]
pub enum Failure {
    Io(io::Error),
    Decode(DecodeError),
}

/// Reads and parses every module, on up to `threads` threads. The result is in `modules`' order
/// whatever the scheduling.
pub fn load_all(modules: &[Module], threads: usize) -> Vec<Loaded> {
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, modules.len().max(1));
    let work = || {
        let mut bufs = Buffers::default();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(m) = modules.get(i) else { break };
            done.push((i, load_one(m.path(), &mut bufs)));
        }
        done
    };
    let mut results: Vec<Option<Loaded>> = Vec::new();
    results.resize_with(modules.len(), || None);
    let batches: Vec<Vec<(usize, Loaded)>> = if threads == 1 {
        vec![work()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        })
    };
    for (i, loaded) in batches.into_iter().flatten() {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(loaded);
        }
    }
    results.into_iter().map(Option::unwrap_or_default).collect()
}

/// Module files handed to loading threads while the directory walk is still finding more, so
/// that reading overlaps the walk.
#[derive(Default)]
pub struct Feed {
    state: Mutex<FeedState>,
    ready: Condvar,
}

#[derive(Default)]
struct FeedState {
    paths: VecDeque<Vec<u8>>,
    /// No more paths will come.
    closed: bool,
    /// Threads waiting for a path (only then is a wake-up worth a system call).
    waiting: usize,
}

impl Feed {
    /// Queues a module file for reading.
    pub fn push(&self, path: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.paths.push_back(path.to_vec());
        if state.waiting > 0 {
            self.ready.notify_one();
        }
    }

    /// No more files: the threads finish the queue and stop.
    pub fn close(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
        self.ready.notify_all();
    }

    /// One loading thread: reads queued files until the feed is closed and empty.
    pub fn work(&self) -> Vec<(Vec<u8>, Loaded)> {
        let mut bufs = Buffers::default();
        let mut done = Vec::new();
        loop {
            let next = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    if let Some(path) = state.paths.pop_front() {
                        break Some(path);
                    }
                    if state.closed {
                        break None;
                    }
                    state.waiting += 1;
                    state = self.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
                    state.waiting -= 1;
                }
            };
            let Some(path) = next else { break };
            let loaded = load_one(&path, &mut bufs);
            done.push((path, loaded));
        }
        done
    }

    /// The loaded modules in `modules`' order, from what the threads read (a module they did not
    /// see is read now).
    pub fn results(modules: &[Module], batches: Vec<Vec<(Vec<u8>, Loaded)>>) -> Vec<Loaded> {
        let mut by_path: HashMap<Vec<u8>, Loaded> = batches.into_iter().flatten().collect();
        let mut bufs = None;
        modules
            .iter()
            .map(|m| {
                by_path.remove(m.path()).unwrap_or_else(|| {
                    load_one(m.path(), bufs.get_or_insert_with(Buffers::default))
                })
            })
            .collect()
    }
}

/// Files up to this size are read whole; of larger uncompressed ones only the parts the parser
/// reads are (typically a fifth of the file).
const READ_WHOLE: usize = 32 * 1024;

/// Files larger than this (a few dozen in a tree) are mapped, so that only the pages the parser
/// touches are brought in; smaller ones are read into a per-thread buffer that only ever grows.
/// (Mapping every file costs more: each unmapping interrupts the other CPUs to flush their TLBs.)
const MAP: usize = 1 << 20;

/// Per-thread buffers, reused from one module to the next.
#[derive(Default)]
pub struct Buffers {
    /// The file (or the parts of it that were read), at its start.
    file: Vec<u8>,
    decoders: Decoders,
    scratch: Scratch,
    ranges: Ranges,
}

impl Buffers {
    /// A buffer of exactly `len` bytes for a file (its contents are whatever was there before),
    /// with the parser's and the reader's working space.
    fn for_file(&mut self, len: usize) -> (&mut [u8], &mut Scratch, &mut Ranges) {
        if self.file.len() < len {
            self.file.resize(len, 0);
        }
        (self.file.get_mut(..len).unwrap_or_default(), &mut self.scratch, &mut self.ranges)
    }
}

/// Maps a file read-only.
fn map(file: &OwnedFd) -> io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is private and read-only. If another process truncated the file while
    // it is mapped, reading past the new end would raise SIGBUS; installers replace module files
    // by renaming new ones into place, which leaves this mapping intact, and kmod maps module
    // files the same way.
    unsafe { memmap2::MmapOptions::new().map_copy_read_only(file.as_raw_fd()) }
}

/// Opens one module file, decompresses it when its magic says so, and parses it.
fn load_one(path: &[u8], bufs: &mut Buffers) -> Loaded {
    let fail = |f| Loaded { info: ModuleInfo::default(), failure: Some(f) };
    // rustix's open is one system call; musl's adds an fcntl for O_CLOEXEC.
    let file = match rustix::fs::open(
        OsStr::from_bytes(path),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(f) => f,
        Err(e) => return fail(Failure::Io(e.into())),
    };
    let len = match rustix::fs::fstat(&file).map(|st| usize::try_from(st.st_size)) {
        Ok(Ok(len)) => len,
        Ok(Err(_)) => return fail(Failure::Io(io::Error::from(io::ErrorKind::FileTooLarge))),
        Err(e) => return fail(Failure::Io(e.into())),
    };
    if len > MAP {
        return match map(&file) {
            Ok(m) => parse(&m, &mut bufs.decoders, &mut bufs.scratch),
            Err(e) => fail(Failure::Io(e)),
        };
    }
    let (buf, scratch, ranges) = bufs.for_file(len);
    let head = match read_head(&file, len, buf) {
        Ok(h) => h,
        Err(e) => return fail(Failure::Io(e)),
    };
    let format = Format::detect(head);
    if format == Format::Raw && len > READ_WHOLE {
        return match read_sparse(&file, len, buf, ranges) {
            Ok(()) => Loaded { info: ModuleInfo::parse_with(buf, scratch), failure: None },
            Err(e) => fail(Failure::Io(e)),
        };
    }
    if let Err(e) = read_rest(&file, len, buf) {
        return fail(Failure::Io(e));
    }
    let data = &bufs.file[..len];
    parse(data, &mut bufs.decoders, &mut bufs.scratch)
}

/// Decompresses (when its magic says so) and parses a whole module file.
fn parse(data: &[u8], decoders: &mut Decoders, scratch: &mut Scratch) -> Loaded {
    let fail = |f| Loaded { info: ModuleInfo::default(), failure: Some(f) };
    let format = Format::detect(data);
    if let Some(size) = Decoders::sparse_size(format, data) {
        // Only a stream the passes could not agree on is decoded in full below; a corrupt one
        // fails the same way there.
        let mut plan = |d: &[u8]| {
            let mut want = Vec::new();
            read_plan::wanted_ranges(d, &|_| true, &mut want);
            want
        };
        if let Ok(sparse) = decoders.decode_sparse(format, data, size, &mut plan) {
            return Loaded { info: ModuleInfo::parse_with(&sparse, scratch), failure: None };
        }
    }
    match decoders.decode(format, data) {
        Ok(data) => Loaded { info: ModuleInfo::parse_with(data, scratch), failure: None },
        Err(e) => fail(Failure::Decode(e)),
    }
}

/// Reads the first bytes of a file (all of a small one) into `buf`; returns them.
fn read_head<'b>(file: &OwnedFd, len: usize, buf: &'b mut [u8]) -> io::Result<&'b [u8]> {
    let n = if len <= READ_WHOLE { len } else { 4096.min(len) };
    read_at(file, buf, 0..n)?;
    Ok(buf.get(..n).unwrap_or_default())
}

/// Reads the rest of a file whose head [`read_head`] read.
fn read_rest(file: &OwnedFd, len: usize, buf: &mut [u8]) -> io::Result<()> {
    if len > READ_WHOLE { read_at(file, buf, 4096..len) } else { Ok(()) }
}

/// Fills `buf[range]` from the same range of the file; a file that shrank is an error.
fn read_at(file: &OwnedFd, buf: &mut [u8], range: Range) -> io::Result<()> {
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

/// Reads the parts of an uncompressed module that the parser reads into `buf` (whose other bytes
/// are left as they were: the parser never looks at them). Each round reads what
/// [`read_plan::wanted_ranges`] asks for given what has been read so far, until it asks for nothing new; a
/// file that keeps asking is read whole.
fn read_sparse(file: &OwnedFd, len: usize, buf: &mut [u8], ranges: &mut Ranges) -> io::Result<()> {
    let Ranges { filled, want, gaps } = ranges;
    let clip = |r: &Range| r.start.min(len)..r.end.min(len);
    // The head was read already; the tail usually holds the section table and names.
    filled.clear();
    filled.insert(0..4096.min(len));
    want.clear();
    want.push(len.saturating_sub(16 * 1024)..len);
    for _ in 0..6 {
        gaps.clear();
        want.iter_mut().for_each(|r| *r = clip(r));
        read_plan::coalesce(want, 4096);
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

/// Range lists [`read_sparse`] reuses from one file to the next.
#[derive(Default)]
pub struct Ranges {
    /// The parts of the file read so far.
    filled: RangeSet,
    want: Vec<Range>,
    gaps: Vec<Range>,
}
