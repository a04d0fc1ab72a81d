//! One depmod run: find the modules, read them, resolve, write.

use std::io::Write;

use depmod_core::graph::{self, CycleReport};
use depmod_core::index::IndexError;
use depmod_core::output::{self, BinError, Index, Notice};
use depmod_core::resolve::{self, Event, ResolveOptions, Symbols};
use depmod_core::tree::{self, Module, ModuleSet};

use crate::cli::{self, Options};
use crate::config;
use crate::load;
use crate::log::{Log, log};
use crate::walk::Walk;
use crate::write::{self, Output};

/// Exit statuses.
pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;

/// Directories of one run, as kmod spells them.
struct Dirs {
    /// `<basedir>/<moduledir>/<version>`: where modules and `modules.order` are read.
    input: Vec<u8>,
    /// `<outdir or basedir>/<moduledir>/<version>`: where indexes are written.
    output: Vec<u8>,
}

fn join3(root: &[u8], moduledir: &[u8], version: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(root.len() + moduledir.len() + version.len() + 2);
    v.extend_from_slice(root);
    v.push(b'/');
    v.extend_from_slice(moduledir);
    v.push(b'/');
    v.extend_from_slice(version);
    v
}

/// Runs depmod with parsed options; returns the exit status.
pub fn run(log: &mut Log, opts: &Options) -> u8 {
    log.set_verbosity(opts.verbose);
    let log = &*log;
    let mut positional = opts.positional.iter();
    let version = match positional.next() {
        Some(v) if cli::version_is_valid(v) => v.clone(),
        Some(v) => {
            log!(log, Error, "Bad version passed ", v);
            return FAILURE;
        }
        None => rustix::system::uname().release().to_bytes().to_vec(),
    };
    let moduledir = opts.moduledir.clone().unwrap_or_else(|| b"lib/modules".to_vec());
    let root = opts.basedir.clone().unwrap_or_default();
    let dirs = Dirs {
        input: join3(&root, &moduledir, &version),
        output: join3(opts.outdir.as_ref().unwrap_or(&root), &moduledir, &version),
    };

    // Where kmod creates its library context (and says so at -vv, also when it is released).
    let _context = ContextLog::new(log);
    index(log, opts, &dirs, &version)
}

/// Finds, reads and indexes the modules; returns the exit status.
fn index(log: &Log, opts: &Options, dirs: &Dirs, version: &[u8]) -> u8 {
    let config = config::load(log, &opts.config, version);
    let mut set = ModuleSet::new(&dirs.input, &config);
    {
        let mut walk = Walk::new(log, &config.excludes, &mut set);
        if let Err(e) = walk.run(&dirs.input) {
            log!(log, Fatal, "could not search modules: ", e);
            return FAILURE;
        }
        // External directories, the last configured first; a missing one is only reported.
        for dir in config.externals.iter().rev() {
            if let Err(e) = walk.run(dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log!(log, Fatal, "could not search modules: ", e);
                    return FAILURE;
                }
            }
        }
    }
    let mut modules = set.into_modules();
    apply_order(log, dirs, &mut modules);

    let threads = thread_count();
    let loaded = load::load_all(&modules, threads);
    let (modules, infos) = keep_usable(log, modules, loaded);

    let mut symbols = Symbols::new(opts.symbol_prefix);
    resolve::add_exports(&mut symbols, &infos);
    let options = ResolveOptions { print_unknown: false, check_symvers: false };
    let graph = resolve::resolve(&symbols, &infos, options, |event| {
        if let Event::Needs { module, symbol, owner } = event {
            if opts.verbose > 0 {
                let path = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.path());
                let mut line = Vec::new();
                line.extend_from_slice(path(module));
                line.extend_from_slice(b" needs \"");
                line.extend_from_slice(symbol);
                line.extend_from_slice(b"\": ");
                line.extend_from_slice(path(owner));
                line.push(b'\n');
                let _ = std::io::stdout().write_all(&line);
            }
        }
    });
    let order = match graph::topo_order(&graph) {
        Ok(order) => order,
        Err(users) => {
            report_cycles(log, &modules, &graph::cycle_report(&graph, &users));
            return FAILURE;
        }
    };

    let index =
        Index { modules: &modules, infos: &infos, symbols: &symbols, graph: &graph, order: &order };
    let Some(outputs) = build_outputs(log, dirs, &index, opts) else {
        return FAILURE;
    };
    if opts.dry_run {
        let mut stdout = std::io::stdout().lock();
        for o in &outputs {
            if stdout.write_all(&o.data).is_err() {
                break;
            }
        }
        return SUCCESS;
    }
    if let Err(e) = write::create_dir(&dirs.output) {
        log!(log, Fatal, "could not create directory ", &dirs.output[..], ": ", e);
        return FAILURE;
    }
    match write::install(log, &dirs.output, &outputs) {
        Ok(()) => SUCCESS,
        Err(_) => FAILURE,
    }
}

/// Threads for reading modules: `DEPMOD_THREADS` when set to a positive number, otherwise one per
/// available CPU.
fn thread_count() -> usize {
    std::env::var("DEPMOD_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Reports what loading found wrong, in array order, and drops the modules whose files cannot be
/// used at all (unreadable, undecompressable, not ELF): kmod would list them with nothing in them
/// and modprobe could not load them anyway. Partial problems are reported and the module is
/// indexed as kmod indexes it.
fn keep_usable(
    log: &Log,
    modules: Vec<Module>,
    loaded: Vec<load::Loaded>,
) -> (Vec<Module>, Vec<depmod_core::ModuleInfo>) {
    let mut kept = (Vec::with_capacity(modules.len()), Vec::with_capacity(modules.len()));
    for (m, l) in modules.into_iter().zip(loaded) {
        let path = m.path();
        let unusable = match (&l.failure, l.info.elf_error) {
            (Some(load::Failure::Io(e)), _) => Some(format!("cannot be read: {}", strerror(e))),
            (Some(load::Failure::Decode(e)), _) => Some(e.to_string()),
            (None, Some(e)) => Some(e.to_string()),
            (None, None) => None,
        };
        if let Some(what) = unusable {
            log!(log, Error, path, ": ", what, "; the module is not indexed");
            continue;
        }
        if let Some(e) = l.info.exports_error {
            let detail = e.to_string();
            log!(
                log,
                Error,
                "failed to load symbols from ",
                path,
                ": ",
                e.errno().message(),
                " (",
                detail,
                ")"
            );
        }
        if let Some(e) = l.info.imports_error {
            let detail = e.to_string();
            log!(
                log,
                Warning,
                path,
                ": its needed symbols cannot be read (",
                detail,
                "); no dependencies are recorded for it"
            );
        }
        kept.0.push(m);
        kept.1.push(l.info);
    }
    kept
}

/// glibc's text for an I/O error.
fn strerror(e: &std::io::Error) -> String {
    let mut v = Vec::new();
    crate::log::Part::put(e, &mut v);
    String::from_utf8_lossy(&v).into_owned()
}

/// Applies `modules.order`, with kmod's messages when it is missing or corrupted.
fn apply_order(log: &Log, dirs: &Dirs, modules: &mut Vec<Module>) {
    let mut path = dirs.input.clone();
    path.extend_from_slice(b"/modules.order");
    match std::fs::read(std::ffi::OsStr::from_bytes(&path)) {
        Ok(data) => {
            if let Err(e) = tree::sort_by_order(modules, &data) {
                log!(log, Error, &path[..], ":", e.line, " corrupted line misses '\\n'");
            }
        }
        Err(e) => log!(log, Warning, "could not open modules.order at ", &dirs.input[..], ": ", e),
    }
}

use std::os::unix::ffi::OsStrExt;

/// kmod's cycle report.
fn report_cycles(log: &Log, modules: &[Module], report: &CycleReport) {
    let name = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.name());
    for cycle in &report.cycles {
        let mut line = Vec::new();
        for (k, &m) in cycle.iter().enumerate() {
            if k > 0 {
                line.extend_from_slice(b" -> ");
            }
            line.extend_from_slice(name(m));
        }
        log!(log, Error, "Cycle detected: ", line);
    }
    log!(log, Error, "Found ", report.modules, " modules in dependency cycles!");
}

/// The outputs made so far, in kmod's order.
struct Made<'l> {
    log: &'l Log,
    warn_dups: bool,
    dry_run: bool,
    list: Vec<Output>,
    failed: Option<BinError>,
}

/// A `.bin` writer: fills the buffer, reporting notices.
type BinWriter<'f> = &'f dyn Fn(&mut Vec<u8>, &mut dyn FnMut(Notice<'_>)) -> Result<(), BinError>;

impl Made<'_> {
    fn text(&mut self, name: &'static str, write: &dyn Fn(&mut Vec<u8>)) {
        let mut data = Vec::new();
        write(&mut data);
        self.list.push(Output { name, data });
    }

    /// Makes a `.bin` output; like kmod's `-n`, a dry run makes none.
    fn bin(&mut self, name: &'static str, write: BinWriter<'_>) {
        if self.dry_run || self.failed.is_some() {
            return;
        }
        let mut data = Vec::new();
        let (log, warn_dups) = (self.log, self.warn_dups);
        match write(&mut data, &mut |n| report_notice(log, warn_dups, n)) {
            Ok(()) => self.list.push(Output { name, data }),
            Err(e) => self.failed = Some(e),
        }
    }
}

/// Generates every output, in kmod's order, reporting what the writers notice. `None` when an
/// index cannot be written (a FATAL message has been printed).
fn build_outputs(log: &Log, dirs: &Dirs, index: &Index<'_>, opts: &Options) -> Option<Vec<Output>> {
    let mut made =
        Made { log, warn_dups: opts.warn, dry_run: opts.dry_run, list: Vec::new(), failed: None };
    made.text("modules.dep", &|o| output::write_dep(index, o));
    made.bin("modules.dep.bin", &|o, n| output::write_dep_bin(index, o, n));
    made.text("modules.alias", &|o| output::write_alias(index, o));
    made.bin("modules.alias.bin", &|o, n| output::write_alias_bin(index, o, n));
    made.text("modules.softdep", &|o| output::write_softdep(index, o));
    made.text("modules.weakdep", &|o| output::write_weakdep(index, o));
    made.text("modules.symbols", &|o| output::write_symbols(index, o));
    made.bin("modules.symbols.bin", &|o, n| output::write_symbols_bin(index, o, n));
    if !opts.dry_run {
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
    if let Some(e) = made.failed {
        report_bin_error(log, &e);
        return None;
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
    made.list.push(Output { name: "modules.devname", data });
    Some(made.list)
}

/// Reads an input file of the module directory; a missing one gets kmod's warning.
fn read_input(log: &Log, dirs: &Dirs, name: &str) -> Option<Vec<u8>> {
    let mut path = dirs.input.clone();
    path.push(b'/');
    path.extend_from_slice(name.as_bytes());
    match std::fs::read(std::ffi::OsStr::from_bytes(&path)) {
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

/// libkmod's INFO messages about its context, printed at `-vv` when it is created and released.
struct ContextLog<'l> {
    log: &'l Log,
}

impl<'l> ContextLog<'l> {
    fn new(log: &'l Log) -> Self {
        log!(
            log,
            Info,
            "custom logging function ",
            Pointer(Log::emit as *const () as usize),
            " registered"
        );
        ContextLog { log }
    }
}

impl Drop for ContextLog<'_> {
    fn drop(&mut self) {
        let here: *const Self = self;
        log!(self.log, Info, "context ", Pointer(here as usize), " released");
    }
}

/// A pointer shown as C's `%p` does.
struct Pointer(usize);

impl crate::log::Part for Pointer {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{:#x}", self.0).as_bytes());
    }
}
