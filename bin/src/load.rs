//! Reading module files on all cores and turning each into a [`ModuleInfo`].

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use depmod_core::ModuleInfo;

use crate::decompress::{DecodeError, Decoders, Format};
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
        let mut buf = Vec::new();
        let mut decoders = Decoders::default();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(m) = modules.get(i) else { break };
            done.push((i, load_one(m.path(), &mut buf, &mut decoders)));
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

/// Files smaller than this are read; larger ones are mapped, so that only the pages the parser
/// touches (headers, symbol tables, `.modinfo`) are ever brought in.
const MAP_THRESHOLD: u64 = 32 * 1024;

/// Opens one module file, decompresses it when its magic says so, and parses it. `buf` is reused
/// for small files between calls.
fn load_one(path: &[u8], buf: &mut Vec<u8>, decoders: &mut Decoders) -> Loaded {
    let fail = |f| Loaded { info: ModuleInfo::default(), failure: Some(f) };
    let file = match File::open(OsStr::from_bytes(path)) {
        Ok(f) => f,
        Err(e) => return fail(Failure::Io(e)),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return fail(Failure::Io(e)),
    };
    let map;
    let data: &[u8] = if len >= MAP_THRESHOLD {
        // SAFETY: the mapping is private and read-only. If another process truncated the file
        // while it is mapped, reading past the new end would raise SIGBUS; installers replace
        // module files by renaming new ones into place, which leaves this mapping intact, and
        // kmod maps module files the same way.
        match unsafe { memmap2::MmapOptions::new().map_copy_read_only(&file) } {
            Ok(m) => {
                map = m;
                &map
            }
            Err(_) => match read_all(file, buf) {
                Ok(()) => buf,
                Err(e) => return fail(Failure::Io(e)),
            },
        }
    } else {
        match read_all(file, buf) {
            Ok(()) => buf,
            Err(e) => return fail(Failure::Io(e)),
        }
    };
    match decoders.decode(Format::detect(data), data) {
        Ok(data) => Loaded { info: ModuleInfo::parse(data), failure: None },
        Err(e) => fail(Failure::Decode(e)),
    }
}

fn read_all(mut file: File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    file.read_to_end(buf).map(|_| ())
}
