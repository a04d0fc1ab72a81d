//! Generating the outputs in kmod's order, into files or onto stdout (`-n`).

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use depmod_core::index::IndexError;
use depmod_core::output::{self, BinError, Index, Notice};

use crate::cli::Options;
use crate::log::{Log, log};
use crate::run::Dirs;
use crate::write;

/// Where the outputs go.
pub enum Sink<'l> {
    /// `-n`: the text outputs, one after the other, on stdout.
    Stdout(std::io::StdoutLock<'static>),
    /// Stdout was closed under us (a pipe reader that went away): nothing more is printed.
    Closed,
    /// Files in the output directory, installed together at the end.
    Files(write::Installer<'l>),
}

impl Sink<'_> {
    /// Takes one finished output; `false` if it could not be written (reported).
    pub fn put(&mut self, name: &'static str, data: &[u8]) -> bool {
        match self {
            Sink::Stdout(out) => {
                if out.write_all(data).is_err() {
                    *self = Sink::Closed;
                }
                true
            }
            Sink::Closed => true,
            Sink::Files(installer) => installer.add(name, data).is_ok(),
        }
    }
}

/// Generation of the outputs, in kmod's order, into a sink.
struct Made<'s, 'l> {
    log: &'l Log,
    warn_dups: bool,
    dry_run: bool,
    sink: &'s mut Sink<'l>,
    /// Set once something could not be made or written; nothing more is then made.
    failed: bool,
}

/// A `.bin` writer: fills the buffer, reporting notices.
type BinWriter<'f> = &'f dyn Fn(&mut Vec<u8>, &mut dyn FnMut(Notice<'_>)) -> Result<(), BinError>;

impl Made<'_, '_> {
    fn text(&mut self, name: &'static str, write: &dyn Fn(&mut Vec<u8>)) {
        if self.failed {
            return;
        }
        let mut data = Vec::new();
        write(&mut data);
        self.failed = !self.sink.put(name, &data);
    }

    /// Makes a `.bin` output; like kmod's `-n`, a dry run makes none.
    fn bin(&mut self, name: &'static str, write: BinWriter<'_>) {
        if self.dry_run || self.failed {
            return;
        }
        let mut data = Vec::new();
        let (log, warn_dups) = (self.log, self.warn_dups);
        match write(&mut data, &mut |n| report_notice(log, warn_dups, n)) {
            Ok(()) => self.failed = !self.sink.put(name, &data),
            Err(e) => {
                report_bin_error(log, &e);
                self.failed = true;
            }
        }
    }
}

/// Generates every output, in kmod's order, into `sink`, reporting what the writers notice.
/// `false` when an output could not be made or written (the message has been printed).
pub fn build_outputs<'l>(
    log: &'l Log,
    dirs: &Dirs,
    index: &Index<'_>,
    opts: &Options,
    sink: &mut Sink<'l>,
) -> bool {
    let mut made = Made { log, warn_dups: opts.warn, dry_run: opts.dry_run, sink, failed: false };
    made.text("modules.dep", &|o| output::write_dep(index, o));
    made.bin("modules.dep.bin", &|o, n| output::write_dep_bin(index, o, n));
    made.text("modules.alias", &|o| output::write_alias(index, o));
    made.bin("modules.alias.bin", &|o, n| output::write_alias_bin(index, o, n));
    made.text("modules.softdep", &|o| output::write_softdep(index, o));
    made.text("modules.weakdep", &|o| output::write_weakdep(index, o));
    made.text("modules.symbols", &|o| output::write_symbols(index, o));
    made.bin("modules.symbols.bin", &|o, n| output::write_symbols_bin(index, o, n));
    if !opts.dry_run && !made.failed {
        // A missing input gives kmod's warning and an empty (0-byte) index.
        let builtin = read_input(log, dirs, "modules.builtin");
        made.bin("modules.builtin.bin", &|o, n| match &builtin {
            Some(input) => output::write_builtin_bin(input, o, n),
            None => Ok(()),
        });
        let modinfo = read_input(log, dirs, "modules.builtin.modinfo");
        made.bin("modules.builtin.alias.bin", &|o, n| match &modinfo {
            Some(input) => output::write_builtin_alias_bin(input, o, n),
            None => Ok(()),
        });
    }
    if made.failed {
        return false;
    }
    let mut data = Vec::new();
    for p in output::write_devname(index, &mut data) {
        log!(
            log,
            Error,
            "Module '",
            p.module,
            "' has devname (",
            p.devname,
            ") but lacks major and minor information. Ignoring."
        );
    }
    made.sink.put("modules.devname", &data)
}

/// Reads an input file of the module directory; a missing one gets kmod's warning.
fn read_input(log: &Log, dirs: &Dirs, name: &str) -> Option<Vec<u8>> {
    let mut path = dirs.input.clone();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    match std::fs::read(OsStr::from_bytes(&path)) {
        Ok(data) => Some(data),
        Err(e) => {
            log!(log, Warning, "could not open ", name, " at ", &dirs.input[..], ": ", e);
            None
        }
    }
}

fn report_notice(log: &Log, warn_dups: bool, notice: Notice<'_>) {
    match notice {
        Notice::UnmatchedBracket(alias) => log!(log, Warning, "Unmatched bracket in ", alias),
        Notice::Duplicate { kind, text } if warn_dups => {
            log!(log, Warning, "duplicate module ", kind, ":\n", text);
        }
        Notice::Duplicate { .. } => {}
        Notice::InvalidBuiltinLine(line) => {
            log!(log, Error, "Invalid modules.builtin line: ", line)
        }
    }
}

fn report_bin_error(log: &Log, e: &BinError) {
    match e.error {
        IndexError::BadCharacter { byte, .. } => {
            let mut hex = String::new();
            let _ = std::fmt::Write::write_fmt(&mut hex, format_args!("{byte:x}"));
            log!(
                log,
                Fatal,
                "Module index: bad character '",
                &[byte][..],
                "'=0x",
                hex,
                " - only 7-bit ASCII is supported:\n",
                e.text
            );
        }
        IndexError::TooLarge { .. } => log!(log, Fatal, "Module index: ", e.error.to_string()),
    }
}
