//! Generating the outputs: all of them at once on the available threads, then, in kmod's order,
//! their messages, each handed to the [`Sink`] (files, or stdout with `-n`). What the user sees
//! is what a one-at-a-time generation would show.
//!
//! After a change of modules only ([`Prior`]), an output the change cannot reach is not made:
//! the file in place is kept ([`Sink::unchanged`]). That is the builtin indexes, and the text
//! indexes that list one kind of entry of each module, naming it but not its place
//! (`modules.alias`, `.softdep`, `.weakdep`, `.symbols`, `.devname`), when neither the modules
//! gone nor those added have any such entry. After one module without aliases or exports is
//! removed from Debian 12's amd64 tree, that is seven of the eleven: 11% fewer instructions and
//! page faults in the run.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;

use depmod_core::index::IndexError;
use depmod_core::output::{self, BinError, DevnameProblem, Entries, Index, Notice};

use crate::cli::Dirs;
use crate::install::Sink;
use crate::log::{Failed, Log, log};
use crate::par;
use crate::prior::Prior;

/// The outputs, in kmod's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dep,
    DepBin,
    Alias,
    AliasBin,
    Softdep,
    Weakdep,
    Symbols,
    SymbolsBin,
    BuiltinBin,
    BuiltinAliasBin,
    Devname,
}

const ALL: [Kind; 11] = [
    Kind::Dep,
    Kind::DepBin,
    Kind::Alias,
    Kind::AliasBin,
    Kind::Softdep,
    Kind::Weakdep,
    Kind::Symbols,
    Kind::SymbolsBin,
    Kind::BuiltinBin,
    Kind::BuiltinAliasBin,
    Kind::Devname,
];

/// The names of the outputs, in kmod's order.
pub fn names() -> [&'static str; 11] {
    ALL.map(Kind::name)
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Dep => "modules.dep",
            Kind::DepBin => "modules.dep.bin",
            Kind::Alias => "modules.alias",
            Kind::AliasBin => "modules.alias.bin",
            Kind::Softdep => "modules.softdep",
            Kind::Weakdep => "modules.weakdep",
            Kind::Symbols => "modules.symbols",
            Kind::SymbolsBin => "modules.symbols.bin",
            Kind::BuiltinBin => "modules.builtin.bin",
            Kind::BuiltinAliasBin => "modules.builtin.alias.bin",
            Kind::Devname => "modules.devname",
        }
    }

    /// Whether the output is the one in place after the change `prior` tells of: it is made of
    /// the builtin inputs only (which `prior` vouches are unchanged), or lists only entries
    /// that neither the modules gone nor those added have ([`output::Change::leaves`]).
    fn stays(self, index: &Index<'_>, prior: &Prior<'_>) -> bool {
        let entries = match self {
            Kind::BuiltinBin | Kind::BuiltinAliasBin => return true,
            Kind::Alias | Kind::Devname => Entries::Aliases,
            Kind::Softdep => Entries::Softdeps,
            Kind::Weakdep => Entries::Weakdeps,
            Kind::Symbols => Entries::Exports,
            Kind::Dep | Kind::DepBin | Kind::AliasBin | Kind::SymbolsBin => return false,
        };
        prior.change.leaves(index, entries)
    }

    /// kmod's `-n` prints only the text outputs (its `.bin` writers do nothing then).
    fn is_text(self) -> bool {
        matches!(
            self,
            Kind::Dep | Kind::Alias | Kind::Softdep | Kind::Weakdep | Kind::Symbols | Kind::Devname
        )
    }
}

/// Something generating one output has to say, replayed in order afterwards.
enum Message<'a> {
    Notice(Notice<'a>),
    /// An input file of the module directory could not be read (the output is then empty).
    MissingInput(&'static str, &'a io::Error),
    Devname(DevnameProblem<'a>),
}

/// One generated output.
enum Output<'a> {
    Made(Made<'a>),
    /// The file in place, which the output would equal (not made).
    InPlace,
}

/// One output made.
struct Made<'a> {
    data: Vec<u8>,
    messages: Vec<Message<'a>>,
    /// The index could not be written (a FATAL in kmod; nothing is installed).
    error: Option<BinError>,
    /// It was patched from the previous run's.
    patched: bool,
}

/// What making the outputs did.
#[derive(Debug, PartialEq, Eq)]
pub struct Built {
    /// Something was reported (shown or not at this verbosity).
    pub said: bool,
    /// How many indexes were patched from the previous run's.
    pub patched: usize,
    /// How many indexes were known to be the ones in place, and left there.
    pub in_place: usize,
    /// The indexes built in full, in kmod's order.
    pub built: Vec<&'static str>,
}

/// The inputs of the builtin indexes, read before the outputs are made.
struct Inputs {
    builtin: Result<Vec<u8>, (&'static str, io::Error)>,
    modinfo: Result<Vec<u8>, (&'static str, io::Error)>,
}

impl Inputs {
    fn read(dirs: &Dirs) -> Self {
        let read = |name: &'static str| {
            let path = [&dirs.input[..], b"/", name.as_bytes()].concat();
            std::fs::read(OsStr::from_bytes(&path)).map_err(|e| (name, e))
        };
        Inputs { builtin: read("modules.builtin"), modinfo: read("modules.builtin.modinfo") }
    }
}

/// Generates one output: the one in place when `prior` tells it stays, and `in_place` allows
/// that (the outputs go to files); else patched from the previous run's, where `prior` allows
/// it, or built.
fn make<'a>(
    kind: Kind,
    index: &Index<'a>,
    inputs: &'a Inputs,
    prior: Option<&Prior<'_>>,
    in_place: bool,
) -> Output<'a> {
    if in_place && prior.is_some_and(|p| kind.stays(index, p)) {
        return Output::InPlace;
    }
    Output::Made(build_one(kind, index, inputs, prior))
}

/// Generates one output: patched from the previous run's, where `prior` allows it, or built.
fn build_one<'a>(
    kind: Kind,
    index: &Index<'a>,
    inputs: &'a Inputs,
    prior: Option<&Prior<'_>>,
) -> Made<'a> {
    let mut data = Vec::new();
    if let Some((prior, old)) = prior.and_then(|p| Some((p, p.old(kind.name())?))) {
        let patched = match kind {
            Kind::DepBin => {
                Some(output::patch_dep_bin(index, &prior.change, old, prior.dep, &mut data))
            }
            Kind::Alias => Some(output::patch_alias(index, &prior.change, old, &mut data)),
            Kind::AliasBin => Some(output::patch_alias_bin(index, &prior.change, old, &mut data)),
            Kind::SymbolsBin => {
                Some(output::patch_symbols_bin(index, &prior.change, old, &mut data))
            }
            _ => None,
        };
        if let Some(Ok(())) = patched {
            return Made { data, messages: Vec::new(), error: None, patched: true };
        }
        data.clear();
    }
    let mut messages = Vec::new();
    let mut notice = |n: Notice<'a>| messages.push(Message::Notice(n));
    let result = match kind {
        Kind::Dep => {
            output::write_dep(index, &mut data);
            Ok(())
        }
        Kind::DepBin => output::write_dep_bin(index, &mut data, &mut notice),
        Kind::Alias => {
            output::write_alias(index, &mut data);
            Ok(())
        }
        Kind::AliasBin => output::write_alias_bin(index, &mut data, &mut notice),
        Kind::Softdep => {
            output::write_softdep(index, &mut data);
            Ok(())
        }
        Kind::Weakdep => {
            output::write_weakdep(index, &mut data);
            Ok(())
        }
        Kind::Symbols => {
            output::write_symbols(index, &mut data);
            Ok(())
        }
        Kind::SymbolsBin => output::write_symbols_bin(index, &mut data, &mut notice),
        // A missing input gives kmod's warning and an empty (0-byte) index.
        Kind::BuiltinBin => match &inputs.builtin {
            Ok(text) => output::write_builtin_bin(text, &mut data, &mut notice),
            Err((name, e)) => {
                messages.push(Message::MissingInput(name, e));
                Ok(())
            }
        },
        Kind::BuiltinAliasBin => match &inputs.modinfo {
            Ok(text) => output::write_builtin_alias_bin(text, &mut data, &mut notice),
            Err((name, e)) => {
                messages.push(Message::MissingInput(name, e));
                Ok(())
            }
        },
        Kind::Devname => {
            let problems = output::write_devname(index, &mut data);
            messages.extend(problems.into_iter().map(Message::Devname));
            Ok(())
        }
    };
    Made { data, messages, error: result.err(), patched: false }
}

/// Generates every output (the text ones only, for `-n`) on up to `threads` threads, patching
/// those of the previous run that `prior` allows; as each one and every one before it are made,
/// reports its messages and hands it to `sink`, in kmod's order, and lets it go (the run never
/// holds all of them at once: [`par::for_each_in_order`]). Fails when an output could not be
/// made or written.
pub fn build(
    log: &Log,
    dirs: &Dirs,
    index: &Index<'_>,
    prior: Option<&Prior<'_>>,
    dry_run: bool,
    threads: usize,
    sink: &mut Sink<'_>,
) -> Result<Built, Failed> {
    let kinds: Vec<Kind> = ALL.into_iter().filter(|k| !dry_run || k.is_text()).collect();
    let inputs = if dry_run {
        Inputs { builtin: Ok(Vec::new()), modinfo: Ok(Vec::new()) }
    } else {
        Inputs::read(dirs)
    };
    let mut said = false;
    let (mut patched, mut in_place, mut built) = (0, 0, Vec::new());
    par::for_each_in_order(
        &kinds,
        threads,
        |&kind| make(kind, index, &inputs, prior, !dry_run),
        |kind, output| {
            let made = match output {
                Output::Made(made) => made,
                Output::InPlace => {
                    in_place += 1;
                    sink.unchanged(&[kind.name()]);
                    return Ok(());
                }
            };
            match made.patched {
                true => patched += 1,
                false => built.push(kind.name()),
            }
            for m in made.messages {
                said |= report(log, dirs, index.warn_duplicates, m);
            }
            if let Some(e) = made.error {
                report_bin_error(log, &e);
                return Err(Failed);
            }
            sink.put(kind.name(), &made.data)
        },
    )?;
    Ok(Built { said, patched, in_place, built })
}

/// Reports one message; whether it is one (a duplicate is one only with `-w`).
fn report(log: &Log, dirs: &Dirs, warn_dups: bool, message: Message<'_>) -> bool {
    match message {
        Message::Notice(Notice::UnmatchedBracket(alias)) => {
            log!(log, Warning, "Unmatched bracket in ", alias);
        }
        Message::Notice(Notice::Duplicate { kind, text }) if warn_dups => {
            log!(log, Warning, "duplicate module ", kind, ":\n", text);
        }
        Message::Notice(Notice::Duplicate { .. }) => return false,
        Message::Notice(Notice::InvalidBuiltinLine(line)) => {
            log!(log, Error, "Invalid modules.builtin line: ", line);
        }
        Message::MissingInput(name, e) => {
            log!(log, Warning, "could not open ", name, " at ", &dirs.input[..], ": ", e);
        }
        Message::Devname(p) => log!(
            log,
            Error,
            "Module '",
            p.module,
            "' has devname (",
            p.devname,
            ") but lacks major and minor information. Ignoring."
        ),
    }
    true
}

fn report_bin_error(log: &Log, e: &BinError) {
    match e.error {
        IndexError::BadCharacter { byte, .. } => {
            let hex = format!("{byte:x}");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;
    use depmod_core::output::fixture::{spec, with_index, with_modules};

    #[test]
    fn every_output_in_kmods_order() {
        let dir = TempDir::new("outputs");
        dir.write("modules.builtin", b"kernel/fs/ext4.ko\n");
        let dirs = Dirs { input: dir.bytes(), output: dir.bytes() };
        let log = Log::capturing();
        with_index(false, |index| {
            let mut sink = Sink::open(&log, false, &dirs.output).unwrap();
            build(&log, &dirs, index, None, false, 3, &mut sink).unwrap();
            sink.finish().unwrap();
        });
        let mut expected: Vec<String> = ALL.iter().map(|k| k.name().to_string()).collect();
        expected.push("modules.builtin".into());
        expected.sort();
        assert_eq!(dir.names(), expected);
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(
            read("modules.dep"),
            "kernel/a.ko:\nkernel/fs/b-fs.ko.xz: kernel/a.ko\n\
             kernel/c.ko: kernel/fs/b-fs.ko.xz kernel/a.ko\n/opt/x.ko: kernel/fs/b-fs.ko.xz kernel/a.ko\n"
        );
        assert_eq!(read("modules.softdep").lines().nth(1), Some("softdep a pre: b"));
        // The missing input gives kmod's warning and an empty index.
        assert_eq!(read("modules.builtin.alias.bin"), "");
        assert_eq!(
            log.take(),
            format!(
                "depmod: WARNING: could not open modules.builtin.modinfo at {}: No such file or \
                 directory\n",
                dir.path().display()
            )
        );
    }

    /// kmod writes the indexes before the bad one and then stops; here nothing is installed.
    #[test]
    fn a_key_that_is_not_ascii_installs_nothing() {
        let dir = TempDir::new("non-ascii");
        dir.write("modules.builtin", b"");
        dir.write("modules.builtin.modinfo", b"");
        let dirs = Dirs { input: dir.bytes(), output: dir.bytes() };
        let log = Log::capturing();
        let modules = [("kernel/a.ko", spec(&["alias=caf\u{e9}"], &[], &[]))];
        with_modules(&modules, false, |index| {
            let mut sink = Sink::open(&log, false, &dirs.output).unwrap();
            assert_eq!(build(&log, &dirs, index, None, false, 2, &mut sink), Err(Failed));
        });
        assert_eq!(dir.names(), ["modules.builtin", "modules.builtin.modinfo"]);
        assert_eq!(
            log.take_bytes(),
            b"depmod: FATAL: Module index: bad character '\xc3'=0xc3 - only 7-bit ASCII is \
              supported:\ncaf\xc3\xa9\n"
        );
    }
}
