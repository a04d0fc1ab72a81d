//! Reading module files on all cores and turning each into a [`ModuleInfo`].

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use depmod_core::ModuleInfo;

use depmod_core::elf::{self, Elf};

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
    let format = Format::detect(data);
    if let Some(size) = Decoders::sparse_size(format, data) {
        // Only a stream the passes could not agree on is decoded in full below; a corrupt one
        // fails the same way there.
        if let Ok(sparse) = decoders.decode_sparse(format, data, size, &mut wanted_ranges) {
            return Loaded { info: ModuleInfo::parse(&sparse), failure: None };
        }
    }
    match decoders.decode(format, data) {
        Ok(data) => Loaded { info: ModuleInfo::parse(data), failure: None },
        Err(e) => fail(Failure::Decode(e)),
    }
}

/// The parts of a module file depmod reads, as far as `data` (with what is known so far of the
/// file, zeros elsewhere) tells: the section header table, the section names, the sections
/// the parser reads, and those its CRC symbols point into.
fn wanted_ranges(data: &[u8]) -> Vec<Range> {
    let mut want = Vec::new();
    let mut push = |offset: u64, len: u64| {
        if let (Ok(start), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) {
            want.push(start..start.saturating_add(len));
        }
    };
    let Some((offset, len)) = elf::section_table_range(data) else { return want };
    push(offset, len);
    let Ok(elf) = Elf::parse(data) else { return want };
    if let Some(names) = elf.names_section() {
        push(names.offset, names.data.len() as u64);
    }
    const READ: [&[u8]; 5] =
        [b".modinfo", b"__ksymtab_strings", b".symtab", b".strtab", b"__versions"];
    for (name, section) in elf.sections() {
        if READ.contains(&name) || name.starts_with(b"__kcrctab") {
            push(section.offset, section.data.len() as u64);
        }
    }
    for index in elf::crc_sections(&elf) {
        if let Ok(section) = elf.section(index) {
            push(section.offset, section.data.len() as u64);
        }
    }
    want
}

fn read_all(mut file: File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    file.read_to_end(buf).map(|_| ())
}
