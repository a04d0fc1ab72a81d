//! One depmod run, in kmod's order. [`run`] and [`index`] read as the table of contents: each
//! step is one call into the module that owns it.

use depmod_core::config::Config;
use depmod_core::output::Index;

use crate::cli::{Dirs, Options};
use crate::install::Sink;
use crate::kernel_symbols;
use crate::log::{Failed, Log, log};
use crate::{config, find, load, outputs, par, quick, resolve, usable};

/// Runs depmod with parsed options.
pub fn run(log: &mut Log, opts: &Options) -> Result<(), Failed> {
    log.set_verbosity(opts.verbose);
    let log = &*log;
    let version = opts.version().map_err(|bad| {
        log!(log, Error, "Bad version passed ", bad);
        Failed
    })?;
    let dirs = Dirs::new(opts, &version);
    if opts.quick && (opts.dry_run || quick::up_to_date(log, &dirs.input)) {
        return Ok(());
    }
    // Where kmod creates its library context (and says so at -vv, also when it is released).
    let _context = ContextLog::new(log);
    index(log, opts, &dirs, &version)
}

/// Finds, reads and indexes the modules (all of them, or the files named after the version).
fn index(log: &Log, opts: &Options, dirs: &Dirs, version: &[u8]) -> Result<(), Failed> {
    let phases = Phases::start();
    let threads = par::thread_count();
    let kernel = kernel_symbols::load(log, opts, &dirs.input)?;
    let options = resolve::options(log, opts.errsyms, &kernel);
    let explicit = opts.module_files();
    let config = match explicit {
        None => config::load(log, &opts.config, version),
        Some(_) => Config::default(),
    };
    let (modules, loaded) =
        load::while_finding(threads, |found| find::modules(log, dirs, &config, explicit, found))?;
    phases.mark("walk and load");
    let (modules, infos) = usable::keep(log, modules, loaded);
    phases.mark("keep");
    let symbols = resolve::symbols(&kernel, &infos, opts.symbol_prefix);
    phases.mark("exports");
    let verbose = opts.verbose > 0;
    let graph = resolve::dependencies(log, &modules, &symbols, &infos, options, verbose, threads);
    phases.mark("resolve");
    let order = resolve::order(log, &modules, &graph)?;
    let index = Index {
        modules: &modules,
        infos: &infos,
        symbols: &symbols,
        graph: &graph,
        order: &order,
        warn_duplicates: opts.warn,
    };
    let mut sink = Sink::open(log, opts.dry_run, &dirs.output)?;
    phases.mark("sort");
    outputs::build(log, dirs, &index, opts.dry_run, threads, &mut sink)?;
    phases.mark("outputs");
    sink.finish()?;
    phases.mark("install");
    Ok(())
}

/// libkmod's INFO messages about its context, printed at `-vv` when it is created and released.
struct ContextLog<'l> {
    log: &'l Log,
}

impl<'l> ContextLog<'l> {
    fn new(log: &'l Log) -> Self {
        let emit = Pointer(Log::emit as *const () as usize);
        log!(log, Info, "custom logging function ", emit, " registered");
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

/// `DEPMOD_TIMING=1`: how long each phase took, on stderr (for profiling; not a kmod message).
struct Phases {
    start: Option<std::time::Instant>,
}

impl Phases {
    fn start() -> Self {
        let on = std::env::var_os("DEPMOD_TIMING").is_some_and(|v| v == "1");
        Phases { start: on.then(std::time::Instant::now) }
    }

    fn mark(&self, phase: &str) {
        if let Some(start) = self.start {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            eprintln!("depmod: timing: {phase} done at {ms:.1} ms");
        }
    }
}
