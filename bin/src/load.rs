//! Loading: a module file's path to its [`ModuleInfo`], or why the file cannot be used. One
//! function, [`load`], does it for one file with its thread's [`Loader`]; [`while_finding`]
//! runs it on every thread for each file as the walk finds it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};

use depmod_core::ModuleInfo;
use depmod_core::elf::LocalSymbols;
use depmod_core::module::Scratch;
use depmod_core::read_plan::StreamPlan;
use depmod_core::tree::Module;

use crate::decompress::{DecodeError, Decoders, Format, Sparse};
use crate::log::Failed;
use crate::par;
use crate::read::{self, MAP, READ_WHOLE};

/// What loading made of one module file.
pub type Loaded = Result<ModuleInfo, Failure>;

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
}

/// Reads the module file at `path`: opens it, reads it (only the parts the parser reads, when
/// it is large and uncompressed), decompresses it when its magic says so, and parses it.
///
/// Before anything is read, [`open`] has the path and the file's `fstat` (device, inode, size,
/// times): a cache of parsed modules would answer between the two steps, from the thread's
/// `Loader`.
pub fn load(loader: &mut Loader, path: &[u8]) -> Loaded {
    let file = open(path).map_err(Failure::Io)?;
    read_and_parse(loader, &file)
}

/// Opens `path` for reading (one system call: musl's open adds an fcntl for `O_CLOEXEC`).
fn open(path: &[u8]) -> io::Result<Opened> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(OsStr::from_bytes(path), flags, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    let len = usize::try_from(st.st_size).map_err(|_| io::ErrorKind::FileTooLarge)?;
    Ok(Opened { fd, len })
}

fn read_and_parse(loader: &mut Loader, file: &Opened) -> Loaded {
    let Loader { file: buf, ranges, decoders, scratch } = loader;
    let len = file.len;
    if len > MAP {
        let mapped = read::map(&file.fd).map_err(Failure::Io)?;
        return parse(&mapped, decoders, scratch);
    }
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let buf = buf.get_mut(..len).unwrap_or_default();
    let head = read::head(&file.fd, len, buf).map_err(Failure::Io)?;
    if Format::detect(head) == Format::Raw && len > READ_WHOLE {
        read::sparse(&file.fd, len, buf, ranges).map_err(Failure::Io)?;
        return Ok(ModuleInfo::parse_with(buf, scratch));
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
                return Ok(info);
            }
        }
    }
    let data = decoders.decode(format, data).map_err(Failure::Decode)?;
    Ok(ModuleInfo::parse_with(data, scratch))
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

/// The loading phase: every module file `find` reports is loaded on `threads` threads while
/// `find` goes on. Returns `find`'s modules with what loading made of each, in their order (a
/// module whose file was not reported, or under another path, is loaded now).
pub fn while_finding(
    threads: usize,
    find: impl FnOnce(&dyn Fn(&[u8])) -> Result<Vec<Module>, Failed>,
) -> Result<(Vec<Module>, Vec<Loaded>), Failed> {
    let (found, loaded) = par::map_with(
        threads,
        Loader::default,
        |loader, _, path: Vec<u8>| {
            let loaded = load(loader, &path);
            (path, loaded)
        },
        |push| find(&|path| push(path.to_vec())),
    );
    let modules = found?;
    let mut by_path: HashMap<Vec<u8>, Loaded> = loaded.into_iter().collect();
    let mut late = None;
    let loaded = modules
        .iter()
        .map(|m| {
            by_path
                .remove(m.path())
                .unwrap_or_else(|| load(late.get_or_insert_with(Loader::default), m.path()))
        })
        .collect();
    Ok((modules, loaded))
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
            match load(&mut loader, path) {
                Ok(info) => assert!(same(&info, &whole), "{name}"),
                Err(Failure::Decode(DecodeError::NotBuiltIn(Format::Xz))) => {
                    assert!(!Format::Xz.is_built_in());
                }
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
        let missing = load(&mut loader, b"/nonexistent/x.ko");
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

    /// The results follow the modules' order, whatever order the files were found in, and a
    /// module whose file was not reported is loaded too.
    #[test]
    fn results_in_module_order() {
        let dir = TempDir::new("while-finding");
        let a = dir.write("a.ko", &module(&[], &["a"], &[]));
        let b = dir.write("b.ko", &module(&[], &["b"], &[]));
        let c = dir.write("c.ko", b"not elf");
        let module_of = |p: &std::path::Path| Module::new(p.as_os_str().as_bytes().to_vec(), b"/");
        let (modules, loaded) = while_finding(2, |found| {
            found(c.as_os_str().as_bytes());
            found(a.as_os_str().as_bytes());
            Ok(vec![module_of(&a), module_of(&b), module_of(&c)])
        })
        .unwrap();
        assert_eq!(modules.len(), 3);
        let exports: Vec<Vec<u8>> = loaded
            .iter()
            .map(|l| {
                l.as_ref().unwrap().exports().map(|(n, _)| n.to_vec()).collect::<Vec<_>>().concat()
            })
            .collect();
        assert_eq!(exports, [b"a".to_vec(), b"b".to_vec(), vec![]]);
        assert!(loaded[2].as_ref().unwrap().elf_error.is_some());
        assert!(while_finding(1, |_| Err(Failed)).is_err());
    }
}
