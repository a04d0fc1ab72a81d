//! Reading module files on all cores and turning each into a [`ModuleInfo`].

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use depmod_core::ModuleInfo;
use depmod_core::tree::Module;

/// What was read of one module.
#[derive(Debug, Default)]
pub struct Loaded {
    pub info: ModuleInfo,
    /// The file could not be read at all.
    pub io_error: Option<io::Error>,
}

/// Reads and parses every module, on up to `threads` threads. The result is in `modules`' order
/// whatever the scheduling.
pub fn load_all(modules: &[Module], threads: usize) -> Vec<Loaded> {
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, modules.len().max(1));
    let work = || {
        let mut buf = Vec::new();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(m) = modules.get(i) else { break };
            done.push((i, load_one(m.path(), &mut buf)));
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

/// Reads one module file into `buf` (reused between calls) and parses it.
fn load_one(path: &[u8], buf: &mut Vec<u8>) -> Loaded {
    buf.clear();
    let read = File::open(OsStr::from_bytes(path)).and_then(|mut f| f.read_to_end(buf));
    match read {
        Ok(_) => Loaded {
            info: ModuleInfo::parse(buf),
            io_error: None,
        },
        Err(e) => Loaded {
            info: ModuleInfo::default(),
            io_error: Some(e),
        },
    }
}
