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
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        })
    };
    for (i, loaded) in batches.into_iter().flatten() {
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(loaded);
        }
    }
    results.into_iter().map(Option::unwrap_or_default).collect()
}

/// Reads one module file into `buf` (reused between calls), decompresses it when its magic says
/// so, and parses it.
fn load_one(path: &[u8], buf: &mut Vec<u8>, decoders: &mut Decoders) -> Loaded {
    buf.clear();
    let read = File::open(OsStr::from_bytes(path)).and_then(|mut f| f.read_to_end(buf));
    if let Err(e) = read {
        return Loaded {
            info: ModuleInfo::default(),
            failure: Some(Failure::Io(e)),
        };
    }
    match decoders.decode(Format::detect(buf), buf) {
        Ok(data) => Loaded {
            info: ModuleInfo::parse(data),
            failure: None,
        },
        Err(e) => Loaded {
            info: ModuleInfo::default(),
            failure: Some(Failure::Decode(e)),
        },
    }
}
