//! Loading: a module file's path to its [`ModuleInfo`], or why the file cannot be used. One
//! function, [`load`], does it for one file with its thread's [`Loader`]; [`while_finding`]
//! runs it on every thread for each file as the walk finds it, unless [`recall`] finds the
//! module cache's record of the file still good.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};

use depmod_core::ModuleInfo;
use depmod_core::cache::{Cache, Record, Stamp, Time};
use depmod_core::elf::LocalSymbols;
use depmod_core::module::Scratch;
use depmod_core::read_plan::StreamPlan;
use depmod_core::tree::Module;

use crate::decompress::{DecodeError, Decoders, Format, Sparse};
use crate::log::Failed;
use crate::par;
use crate::read::{self, MAP, READ_WHOLE};
use crate::walk::{self, FoundFile};

/// What loading made of one module file.
pub type Loaded = Result<Box<ModuleInfo>, Failure>;

/// Why a module file could not be used at all.
#[derive(Debug)]
pub enum Failure {
    /// It could not be opened or read.
    Io(io::Error),
    /// It could not be decompressed.
    Decode(DecodeError),
}

/// A thread's working space, reused from one module to the next.
#[derive(Default)]
pub struct Loader {
    /// The file (or the parts of it that were read), at its start.
    file: Vec<u8>,
    ranges: read::Ranges,
    decoders: Decoders,
    scratch: Scratch,
}

/// An open module file and what `fstat` says of it.
struct Opened {
    fd: OwnedFd,
    len: usize,
    stamp: Stamp,
}

/// What a module file gave this run: the cache's record, or what reading it gave.
#[derive(Debug)]
pub enum Got<'c> {
    /// The cache's record: the file's stamp is the one recorded ([`Record::info`] reads it in
    /// place).
    Recalled(Record<'c>),
    /// The file was read: what it gave, and its stamp (`fstat` before it was read).
    Read { loaded: Loaded, stamp: Option<Stamp> },
}

/// Reads the module file at `path`: opens it, reads it (only the parts the parser reads, when
/// it is large and uncompressed), decompresses it when its magic says so, and parses it. With
/// the file's stamp (`fstat` before it was read).
pub fn load(loader: &mut Loader, path: &[u8]) -> (Loaded, Option<Stamp>) {
    match open(path) {
        Ok(file) => (read_and_parse(loader, &file), Some(file.stamp)),
        Err(e) => (Err(Failure::Io(e)), None),
    }
}

/// The record `cache` holds for `file` when the file's stamp (`stat`, before anything is read)
/// is the one recorded.
pub fn recall<'c>(cache: Option<&Cache<'c>>, file: FoundFile<'_>) -> Option<Record<'c>> {
    cache?.get(file.path).filter(|record| still_good(record, file))
}

/// Whether `file`'s stamp (the walk's, or else `stat` now, before anything is read) is the one
/// `record` holds.
fn still_good(record: &Record<'_>, file: FoundFile<'_>) -> bool {
    let now = file
        .stamp
        .or_else(|| rustix::fs::stat(OsStr::from_bytes(file.path)).ok().map(|st| stamp(&st)));
    now == Some(record.stamp())
}

/// The record `cache` holds for `path` if it is still good (see [`recall`]), otherwise what
/// reading the file gives.
pub fn load_or_recall<'c>(loader: &mut Loader, cache: Option<&Cache<'c>>, path: &[u8]) -> Got<'c> {
    if let Some(record) = recall(cache, FoundFile { path, stamp: None }) {
        return Got::Recalled(record);
    }
    let (loaded, stamp) = load(loader, path);
    Got::Read { loaded, stamp }
}

/// The module cache's stamp of a file: device, inode, size, modification and change times.
#[allow(clippy::unnecessary_cast)] // the field types differ between targets
pub fn stamp(st: &rustix::fs::Stat) -> Stamp {
    Stamp {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        mtime: Time { sec: st.st_mtime as i64, nsec: st.st_mtime_nsec as u32 },
        ctime: Time { sec: st.st_ctime as i64, nsec: st.st_ctime_nsec as u32 },
    }
}

/// Opens `path` for reading (one system call: musl's open adds an fcntl for `O_CLOEXEC`).
fn open(path: &[u8]) -> io::Result<Opened> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(OsStr::from_bytes(path), flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    let len = usize::try_from(st.st_size).map_err(|_| io::ErrorKind::FileTooLarge)?;
    Ok(Opened { fd, len, stamp: stamp(&st) })
}

fn read_and_parse(loader: &mut Loader, file: &Opened) -> Loaded {
    let Loader { file: buf, ranges, decoders, scratch } = loader;
    let len = file.len;
    if len > MAP {
        let mapped = read::map(&file.fd, len, false).map_err(Failure::Io)?;
        return parse(&mapped, decoders, scratch);
    }
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let buf = buf.get_mut(..len).unwrap_or_default();
    let head = read::head(&file.fd, len, buf).map_err(Failure::Io)?;
    if Format::detect(head) == Format::Raw && len > READ_WHOLE {
        read::sparse(&file.fd, len, buf, ranges).map_err(Failure::Io)?;
        return Ok(Box::new(ModuleInfo::parse_with(buf, scratch)));
    }
    read::rest(&file.fd, len, buf).map_err(Failure::Io)?;
    parse(buf, decoders, scratch)
}

/// Decompresses (when its magic says so) and parses a whole module file.
fn parse(data: &[u8], decoders: &mut Decoders, scratch: &mut Scratch) -> Loaded {
    let format = Format::detect(data);
    if let Some(size) = decoders.sparse_size(format, data) {
        // Only a stream the passes could not agree on is decoded in full below; a corrupt one
        // fails the same way there.
        let mut plan = StreamPlan::new(decoders.limits().scan_locals);
        if let Ok(sparse) = decoders.decode_sparse(format, data, size, &mut plan) {
            let info = match plan.locals() {
                Some(locals) => ModuleInfo::parse_lean(&sparse.data, locals, scratch),
                None => Some(ModuleInfo::parse_with(&sparse.data, scratch)),
            };
            if let Some(info) = info {
                report_sparse(&sparse, plan.locals());
                return Ok(Box::new(info));
            }
        }
    }
    let data = decoders.decode(format, data).map_err(Failure::Decode)?;
    Ok(Box::new(ModuleInfo::parse_with(data, scratch)))
}

/// `DEPMOD_TIMING=1`: what a sparse decode kept, on stderr (not a kmod message).
fn report_sparse(sparse: &Sparse, locals: Option<&LocalSymbols>) {
    if std::env::var_os("DEPMOD_TIMING").is_some_and(|v| v == "1") {
        let symbols = match locals {
            Some(l) => {
                format!("scanned, not kept ({} bytes; {} entries read)", l.range().len(), l.kept())
            }
            None => "kept".into(),
        };
        eprintln!(
            "depmod: timing: sparse decode of a {}-byte module: {} passes, {} bytes kept; \
             local symbols {symbols}",
            sparse.data.len(),
            sparse.passes,
            sparse.kept,
        );
    }
}

/// What the walk found and what loading made of each file, before the modules are made from
/// the files ([`Walked::place`]): `listed` is what the walk returned.
#[derive(Debug)]
pub struct Walked<'c, L> {
    pub listed: L,
    /// The directory listings a new cache records, in walk order (only when one is written).
    pub listings: Vec<walk::DirListing>,
    /// Every file loaded, in the order the walk found them, with what it gave.
    pub files: Vec<FileFound<'c>>,
}

/// What the loading phase found: the modules to index, and every file it loaded.
#[derive(Debug)]
pub struct Found<'c> {
    /// The modules, in kmod's array order.
    pub modules: Vec<Module>,
    /// The directory listings a new cache records, in walk order (only when one is written).
    pub listings: Vec<walk::DirListing>,
    /// Each module's file in `files`.
    pub slots: Vec<usize>,
    /// Every file loaded, with what it gave: in the order the walk found them, then the
    /// modules whose file it did not report (or under another path), loaded after it. A file
    /// no module has lost to another of the same name.
    pub files: Vec<FileFound<'c>>,
}

/// One file found: its path (a recalled file's is its record's) and what it gave.
pub type FileFound<'c> = (Cow<'c, [u8]>, Got<'c>);

/// A file found: its record when it was recalled, which holds its path (`None`: handed over to
/// be read, with its path).
type FoundSoFar<'c> = Option<Record<'c>>;

/// The loading phase: each module file `find` reports is recalled from `cache` on the spot
/// (its stamp taken where the walk is, which is cheap) or else loaded on `threads` threads
/// while `find` goes on. The walk takes the listings of unchanged directories from `cache`, and
/// keeps those a new cache records when `record` says so (never that of the directory
/// `unrecorded`).
pub fn while_finding<'c, L>(
    threads: usize,
    cache: Option<&Cache<'c>>,
    (record, unrecorded): (bool, Option<(u64, u64)>),
    find: impl FnOnce(walk::Found<'_>) -> Result<L, Failed>,
) -> Result<Walked<'c, L>, Failed> {
    let listings: RefCell<Vec<walk::DirListing>> = RefCell::default();
    let listed = |listing: walk::DirListing| listings.borrow_mut().push(listing);
    let listed: Option<&dyn Fn(walk::DirListing)> = record.then_some(&listed);
    // Each file found, in order: its record when it was recalled (`None`: handed over to be
    // read, with its path).
    let found: RefCell<Vec<FoundSoFar<'c>>> = RefCell::default();
    let (walked, reads) = par::map_with(
        threads,
        Loader::default,
        |loader, _, (i, path): (usize, Vec<u8>)| {
            let (loaded, stamp) = load(loader, &path);
            (i, path, Got::Read { loaded, stamp })
        },
        |push| {
            let tell = |file: FoundFile<'_>| {
                let mut found = found.borrow_mut();
                let n = found.len();
                match recall(cache, file) {
                    Some(record) => found.push(Some(record)),
                    None => {
                        push((n, file.path.to_vec()));
                        found.push(None);
                    }
                }
            };
            let stamps = cache.is_some();
            find(walk::Found { tell: &tell, stamps, cache, listed, unrecorded })
        },
    );
    let listed = walked?;
    // Every file handed over came back, in the order it was handed over: each found file,
    // recalled (its path is its record's) or read.
    let mut reads = reads.into_iter().peekable();
    let mut files: Vec<FileFound<'c>> = Vec::with_capacity(found.borrow().len());
    for (i, f) in found.into_inner().into_iter().enumerate() {
        match f {
            Some(record) => files.push((Cow::Borrowed(record.path()), Got::Recalled(record))),
            None => {
                if let Some((_, path, got)) = reads.next_if(|r| r.0 == i) {
                    files.push((Cow::Owned(path), got));
                }
            }
        }
    }
    debug_assert!(reads.next().is_none(), "all merged");
    Ok(Walked { listed, listings: listings.into_inner(), files })
}

impl<'c, L> Walked<'c, L> {
    /// Gives each of the modules `make` makes of what the walk returned its file: a module
    /// whose file the walk did not report, or under another path, is loaded now (recalled from
    /// `cache` when its record is still good).
    pub fn place(
        self,
        make: impl FnOnce(L) -> Vec<Module>,
        cache: Option<&Cache<'c>>,
    ) -> Found<'c> {
        let Walked { listed, listings, mut files } = self;
        let modules = make(listed);
        let mut slots = Vec::with_capacity(modules.len());
        let mut late = Vec::new();
        {
            let by_path: HashMap<&[u8], usize, BuildHasherDefault<PathHasher>> =
                files.iter().enumerate().map(|(i, (path, _))| (&path[..], i)).collect();
            for m in &modules {
                match by_path.get(m.path()) {
                    Some(&i) => slots.push(i),
                    None => {
                        slots.push(files.len() + late.len());
                        late.push(m.path().to_vec());
                    }
                }
            }
        }
        let mut loader = Loader::default();
        for path in late {
            let got = load_or_recall(&mut loader, cache, &path);
            files.push((Cow::Owned(path), got));
        }
        Found { modules, listings, slots, files }
    }
}

/// The hash of the map from the files' paths to their places: kmod's SuperFastHash, spread over
/// 64 bits. The paths are the tree's own, so std's SipHash, which defends a map against keys
/// chosen to collide, only cost time: 6.6% of the instructions of a re-run of an unchanged tree.
#[derive(Default)]
pub struct PathHasher(u64);

impl Hasher for PathHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mixed = self.0.rotate_left(29) ^ u64::from(depmod_core::hash::superfast(bytes));
        self.0 = mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    /// A key's length, which `[u8]`'s `Hash` writes before its bytes.
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TempDir, module, xz};
    use depmod_core::elf::writer::ModuleSpec;

    /// A module of about `size` bytes, most of it code depmod never reads.
    fn big_module(size: usize) -> Vec<u8> {
        let mut m = ModuleSpec::new();
        m.modinfo = vec![b"alias=big".to_vec()];
        m.exports = vec![b"big_fn".to_vec()];
        m.crcs = Some(vec![0x1234]);
        m.imports = vec![(b"printk".to_vec(), false)];
        m.extra_sections = vec![(".text.big".into(), vec![0x90; size])];
        m.build()
    }

    fn same(a: &ModuleInfo, b: &ModuleInfo) -> bool {
        a.aliases().eq(b.aliases())
            && a.exports().eq(b.exports())
            && a.imports().eq(b.imports())
            && (a.elf_error, a.exports_error, a.imports_error, a.anomaly)
                == (b.elf_error, b.exports_error, b.imports_error, b.anomaly)
    }

    /// Small files are read whole, large ones in part (or mapped), compressed ones decoded:
    /// each gives what the whole file gives.
    #[test]
    fn every_way_of_reading_gives_the_whole_file() {
        let dir = TempDir::new("load");
        let small = module(&["alias=small"], &["s"], &["x"]);
        let cases = [
            ("small.ko", small.clone(), small.clone()),
            ("sparse.ko", big_module(200_000), big_module(200_000)),
            ("mapped.ko", big_module(1_500_000), big_module(1_500_000)),
            ("small.ko.xz", xz(&small), small),
        ];
        let mut loader = Loader::default();
        for (name, file, plain) in cases {
            let path = dir.write(name, &file);
            let path = path.as_os_str().as_bytes();
            let whole = ModuleInfo::parse(&plain);
            match load(&mut loader, path).0 {
                Ok(info) => assert!(same(&info, &whole), "{name}"),
                Err(Failure::Decode(DecodeError::NotBuiltIn(Format::Xz))) => {
                    assert!(!Format::Xz.is_built_in());
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
        let missing = load(&mut loader, b"/nonexistent/x.ko").0;
        assert!(matches!(missing, Err(Failure::Io(e)) if e.kind() == io::ErrorKind::NotFound));
    }

    /// A big module decoded in passes whose symbol table has a large local part: its local
    /// entries are scanned as they stream past, the `__crc_` ones found by a third pass (its
    /// `.strtab` is not in the tail the first pass keeps), and none of the part is kept (but
    /// what the first pass keeps, the last 64 KiB); the buffer parses with the scan's summary
    /// as the whole file does.
    #[test]
    fn sparse_decoding_scans_the_local_symbols() {
        if !Format::Xz.is_built_in() {
            return;
        }
        let mut m = ModuleSpec::new();
        m.modinfo = vec![b"alias=big".to_vec()];
        m.exports = (0..3000).map(|i| format!("exported_function_{i:05}").into()).collect();
        m.crcs = Some((0..3000).collect());
        m.imports = vec![(b"printk".to_vec(), false)];
        m.plain_locals = 100_000;
        m.local_imports = vec![b"needed_locally".to_vec()];
        let plain = m.build();
        let mut decoders = Decoders::with_limits(crate::decompress::Limits::DEFAULT);
        let mut plan = StreamPlan::new(1 << 20);
        let sparse = decoders.decode_sparse(Format::Xz, &xz(&plain), plain.len(), &mut plan);
        let sparse = sparse.unwrap();
        assert_eq!(sparse.passes, 3);
        let locals = plan.locals().expect("scanned");
        assert_eq!(locals.kept(), 3001);
        let part = locals.range();
        assert!(part.len() > 100_000 * 24);
        assert!(sparse.kept <= plain.len() - part.len() + 64 * 1024);
        let tail = plain.len() - 64 * 1024;
        assert!(sparse.data[part.start..part.end.min(tail)].iter().all(|&b| b == 0));
        let lean = ModuleInfo::parse_lean(&sparse.data, locals, &mut Scratch::default()).unwrap();
        let whole = ModuleInfo::parse(&plain);
        assert!(same(&lean, &whole));
        assert_eq!(whole.exports().len(), 3000);
        assert_eq!(whole.imports().next().map(|i| i.name), Some(&b"needed_locally"[..]));
    }

    /// Each module finds its file, whatever order the files were found in, and a module whose
    /// file was not reported is loaded too.
    #[test]
    fn every_module_finds_its_file() {
        let dir = TempDir::new("while-finding");
        let a = dir.write("a.ko", &module(&[], &["a"], &[]));
        let b = dir.write("b.ko", &module(&[], &["b"], &[]));
        let c = dir.write("c.ko", b"not elf");
        let module_of = |p: &std::path::Path| Module::new(p.as_os_str().as_bytes().to_vec(), b"/");
        let walked = while_finding(2, None, (false, None), |found| {
            (found.tell)(FoundFile { path: c.as_os_str().as_bytes(), stamp: None });
            (found.tell)(FoundFile { path: a.as_os_str().as_bytes(), stamp: None });
            Ok(())
        })
        .unwrap();
        let found = walked.place(|()| vec![module_of(&a), module_of(&b), module_of(&c)], None);
        assert_eq!(found.modules.len(), 3);
        assert_eq!(found.slots, [1, 2, 0]);
        let loaded: Vec<&ModuleInfo> = found
            .slots
            .iter()
            .map(|&i| match &found.files[i].1 {
                Got::Read { loaded: Ok(info), stamp: Some(_) } => &**info,
                other => panic!("{other:?}"),
            })
            .collect();
        let exports: Vec<Vec<u8>> = loaded
            .iter()
            .map(|l| l.exports().map(|(n, _)| n.to_vec()).collect::<Vec<_>>().concat())
            .collect();
        assert_eq!(exports, [b"a".to_vec(), b"b".to_vec(), vec![]]);
        assert!(loaded[2].elf_error.is_some());
        assert!(while_finding(1, None, (false, None), |_| Err::<(), _>(Failed)).is_err());
    }
}
