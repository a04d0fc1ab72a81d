//! The kernel's own symbols, from `-E Module.symvers` or `-F System.map`, with kmod 34.2's
//! messages about the file.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use depmod_core::kernel_symbols::{self, SymbolFileNotice};
use depmod_core::resolve::Symbols;

use crate::cli::Options;
use crate::log::{Errno, Failed, Log, log};

/// The kernel's symbol file, as read.
pub enum KernelFile {
    /// Neither `-E` nor `-F`.
    None,
    /// `-E` (which wins over `-F`): names with CRCs, compared with `-e`.
    Symvers(Vec<u8>),
    /// `-F`.
    SystemMap(Vec<u8>),
}

const ERANGE: i32 = 34;

/// Loads `-E` or `-F`, reporting bad lines; fails after kmod's FATAL message when the file
/// cannot be opened. `input` is the module directory.
pub fn load(log: &Log, opts: &Options, input: &[u8]) -> Result<KernelFile, Failed> {
    let (path, symvers) = match (&opts.symvers, &opts.filesyms) {
        (Some(p), _) => (p, true),
        (None, Some(p)) => (p, false),
        (None, None) => return Ok(KernelFile::None),
    };
    let mut file = match std::fs::File::open(OsStr::from_bytes(path)) {
        Ok(f) => f,
        Err(e) => {
            log!(log, Fatal, "could not load ", &path[..], ": ", e);
            return Err(Failed);
        }
    };
    // kmod reads with fgets, which stops silently at a read error: a directory reads as empty.
    let mut data = Vec::new();
    let _ = std::io::Read::read_to_end(&mut file, &mut data);
    // kmod prints errno in this message, which only strtoull sets (ERANGE, on overflow, and it
    // stays set); before that it holds what libkmod's set-up last failed on.
    let mut errno = None;
    let report = |n: SymbolFileNotice<'_>| match n {
        SymbolFileNotice::VersionOverflow { .. } => errno = Some(ERANGE),
        SymbolFileNotice::InvalidVersion { line, text, overflow } => {
            if overflow {
                errno = Some(ERANGE);
            }
            let e = Errno(*errno.get_or_insert_with(|| setup_errno(input)));
            log!(log, Error, &path[..], ":", line, " Invalid symbol version ", text, ": ", e);
        }
        SymbolFileNotice::InvalidLine { line, text } => {
            log!(log, Error, &path[..], ":", line, ": invalid line: ", text);
        }
    };
    if symvers {
        kernel_symbols::parse_symvers(&data, |_, _| {}, report);
        Ok(KernelFile::Symvers(data))
    } else {
        kernel_symbols::parse_system_map(&data, opts.symbol_prefix, |_| {}, report);
        Ok(KernelFile::SystemMap(data))
    }
}

/// The errno kmod 34.2 has when it starts reading `-E`: that of the last file its library
/// context failed to open, in the order `kmod_new` opens them (in `input`, the module
/// directory), or 0.
fn setup_errno(input: &[u8]) -> i32 {
    let tried = [
        b"/sys/module/compression".to_vec(),
        [input, b"/modules.softdep"].concat(),
        [input, b"/modules.weakdep"].concat(),
        b"/proc/cmdline".to_vec(),
    ];
    tried
        .iter()
        .rev()
        .find_map(|p| std::fs::File::open(OsStr::from_bytes(p)).err())
        .and_then(|e| e.raw_os_error())
        .unwrap_or(0)
}

impl KernelFile {
    /// Puts the kernel's symbols in the table, then the names the kernel resolves itself.
    pub fn add_to<'a>(&'a self, symbols: &mut Symbols<'a>, prefix: Option<u8>) {
        match self {
            KernelFile::None => return,
            KernelFile::Symvers(data) => kernel_symbols::parse_symvers(
                data,
                |name, crc| symbols.add_kernel_raw(name, crc),
                |_| {},
            ),
            KernelFile::SystemMap(data) => kernel_symbols::parse_system_map(
                data,
                prefix,
                |name| symbols.add_kernel(name, 0),
                |_| {},
            ),
        }
        for name in kernel_symbols::FAKE_SYMBOLS {
            symbols.add_kernel(name, 0);
        }
        if symbols.find(kernel_symbols::TOC).is_none() {
            symbols.add_kernel(kernel_symbols::TOC, 0);
        }
    }
}
