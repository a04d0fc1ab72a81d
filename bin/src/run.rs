//! One depmod run, in kmod's order: command-line checks, `-A`, kernel symbols, configuration,
//! the modules, their order, reading them, resolving, writing.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use depmod_core::ModuleInfo;
use depmod_core::config::Config;
use depmod_core::graph::{self, Graph};
use depmod_core::kernel_symbols::{self, SymbolFileNotice};
use depmod_core::output::Index;
use depmod_core::resolve::{self, Event, ResolveOptions, Symbols};
use depmod_core::tree::{self, Module, ModuleSet};

use crate::cli::{self, Options};
use crate::config;
use crate::load;
use crate::log::{Errno, Log, log};
use crate::outputs::{Sink, build_outputs};
use crate::quick;
use crate::report::{self, ContextLog};
use crate::walk::Walk;
use crate::write;

/// Exit statuses.
pub const SUCCESS: u8 = 0;
pub const FAILURE: u8 = 1;

/// Directories of one run, as kmod spells them.
pub struct Dirs {
    /// `<basedir>/<moduledir>/<version>`: where modules and `modules.order` are read.
    pub input: Vec<u8>,
    /// `<outdir or basedir>/<moduledir>/<version>`: where indexes are written.
    pub output: Vec<u8>,
}

fn join3(root: &[u8], moduledir: &[u8], version: &[u8]) -> Vec<u8> {
    [root, b"/", moduledir, b"/", version].concat()
}

/// Runs depmod with parsed options; returns the exit status.
pub fn run(log: &mut Log, opts: &Options) -> u8 {
    log.set_verbosity(opts.verbose);
    let log = &*log;
    let version = match opts.positional.first() {
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
    // Module files named after the version are used only without -a (and -A).
    let files = opts.positional.get(1..).unwrap_or_default();
    let mut all = opts.all || files.is_empty();
    if opts.quick {
        if opts.dry_run || quick::up_to_date(log, &dirs.input) {
            return SUCCESS;
        }
        all = true;
    }
    // Where kmod creates its library context (and says so at -vv, also when it is released).
    let _context = ContextLog::new(log);
    let explicit = if all { None } else { Some(files) };
    index(log, opts, &dirs, &version, explicit)
}

/// The kernel's symbols from `-E` or `-F`, as read from the file.
enum KernelFile {
    None,
    Symvers(Vec<u8>),
    SystemMap(Vec<u8>),
}

const ERANGE: i32 = 34;

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

/// Loads `-E` (which wins) or `-F`, reporting bad lines; `Err` after kmod's FATAL message.
/// `input` is the module directory.
fn load_kernel_file(log: &Log, opts: &Options, input: &[u8]) -> Result<KernelFile, ()> {
    let (path, symvers) = match (&opts.symvers, &opts.filesyms) {
        (Some(p), _) => (p, true),
        (None, Some(p)) => (p, false),
        (None, None) => return Ok(KernelFile::None),
    };
    let mut file = match std::fs::File::open(OsStr::from_bytes(path)) {
        Ok(f) => f,
        Err(e) => {
            log!(log, Fatal, "could not load ", &path[..], ": ", e);
            return Err(());
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

/// Puts the kernel's symbols in the table, then the names the kernel resolves itself.
fn add_kernel_symbols<'a>(symbols: &mut Symbols<'a>, file: &'a KernelFile, prefix: Option<u8>) {
    match file {
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

/// Finds, reads and indexes the modules (all of them, or the `explicit` files); returns the exit
/// status.
fn index(
    log: &Log,
    opts: &Options,
    dirs: &Dirs,
    version: &[u8],
    explicit: Option<&[Vec<u8>]>,
) -> u8 {
    let phases = Phases::start();
    let Ok(kernel) = load_kernel_file(log, opts, &dirs.input) else { return FAILURE };
    let mut print_unknown = opts.errsyms;
    if matches!(kernel, KernelFile::None) && opts.errsyms {
        log!(log, Warning, "-e needs -E or -F");
        print_unknown = false;
    }
    let config = match explicit {
        None => config::load(log, &opts.config, version),
        Some(_) => Config::default(),
    };
    let mut set = ModuleSet::new(&dirs.input, &config);
    set.set_cwd(cli::current_dir_name());
    let (modules, loaded) = match explicit {
        None => {
            // Module files are read on all CPUs as the walk finds them.
            let feed = load::Feed::default();
            let (found, batches) = std::thread::scope(|s| {
                let workers: Vec<_> =
                    (0..thread_count()).map(|_| s.spawn(|| feed.work())).collect();
                let found = walk_all(log, dirs, &config, &mut set, &|path| feed.push(path));
                feed.close();
                let batches: Vec<_> =
                    workers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
                (found, batches)
            });
            if found.is_err() {
                return FAILURE;
            }
            let mut modules = set.into_modules();
            apply_order(log, dirs, &mut modules);
            let loaded = load::Feed::results(&modules, batches);
            (modules, loaded)
        }
        Some(files) => {
            if add_files(log, files, &mut set).is_err() {
                return FAILURE;
            }
            let mut modules = set.into_modules();
            apply_order(log, dirs, &mut modules);
            let loaded = load::load_all(&modules, thread_count());
            (modules, loaded)
        }
    };
    phases.mark("walk and load");
    let (modules, infos) = report::keep_usable(log, modules, loaded);
    phases.mark("keep");

    let mut symbols = Symbols::new(opts.symbol_prefix);
    add_kernel_symbols(&mut symbols, &kernel, opts.symbol_prefix);
    resolve::add_exports(&mut symbols, &infos);
    phases.mark("exports");
    let options =
        ResolveOptions { print_unknown, check_symvers: matches!(kernel, KernelFile::Symvers(_)) };
    let path = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.path());
    let mut stdout = std::io::stdout().lock();
    let graph = resolve_all(&symbols, &infos, options, thread_count(), |event| match event {
        Event::Unknown { module, symbol } => {
            log!(log, Warning, path(module), " needs unknown symbol ", symbol);
        }
        Event::Disagrees { module, symbol } => {
            log!(log, Warning, path(module), " disagrees about version of symbol ", symbol);
        }
        Event::Needs { module, symbol, owner } if opts.verbose > 0 => {
            let line = [path(module), b" needs \"", symbol, b"\": ", path(owner), b"\n"].concat();
            let _ = stdout.write_all(&line);
        }
        Event::Needs { .. } => {}
    });
    let _ = stdout.flush();
    drop(stdout);
    phases.mark("resolve");
    let order = match graph::topo_order(&graph) {
        Ok(order) => order,
        Err(users) => {
            report::report_cycles(log, &modules, &graph::cycle_report(&graph, &users));
            return FAILURE;
        }
    };

    let index = Index {
        modules: &modules,
        infos: &infos,
        symbols: &symbols,
        graph: &graph,
        order: &order,
        warn_duplicates: opts.warn,
    };
    let mut sink = if opts.dry_run {
        Sink::Stdout(std::io::stdout().lock())
    } else {
        if let Err(e) = write::create_dir(&dirs.output) {
            log!(log, Fatal, "could not create directory ", &dirs.output[..], ": ", e);
            return FAILURE;
        }
        Sink::Files(write::Installer::new(log, &dirs.output))
    };
    phases.mark("sort");
    if !build_outputs(log, dirs, &index, opts.dry_run, thread_count(), &mut sink) {
        return FAILURE;
    }
    phases.mark("outputs");
    match sink {
        Sink::Stdout(_) | Sink::Closed => SUCCESS,
        Sink::Files(installer) => match installer.commit() {
            Ok(()) => {
                phases.mark("install");
                SUCCESS
            }
            Err(_) => FAILURE,
        },
    }
}

/// kmod's dependency pass on `threads` threads, in runs of modules; the graph and the events
/// come out in module order, as from one thread.
fn resolve_all<'a>(
    symbols: &Symbols<'a>,
    infos: &'a [ModuleInfo],
    options: ResolveOptions,
    threads: usize,
    mut events: impl FnMut(Event<'a>),
) -> Graph {
    /// Modules per piece of work: enough to make handing it out cheap.
    const RUN: usize = 128;
    let runs: Vec<&'a [ModuleInfo]> = infos.chunks(RUN).collect();
    let parts = crate::par::map(&runs, threads, |r, run| {
        resolve::resolve_run(symbols, run, (r * RUN) as u32, options)
    });
    let mut graph = Graph::new(infos.len());
    for part in parts {
        part.add_to(&mut graph);
        part.events.into_iter().for_each(&mut events);
    }
    graph
}

/// The module directory, then the external directories (the last configured first; a missing
/// one is only reported).
fn walk_all(
    log: &Log,
    dirs: &Dirs,
    config: &Config,
    set: &mut ModuleSet<'_>,
    found: &dyn Fn(&[u8]),
) -> Result<(), ()> {
    let mut walk = Walk::new(log, &config.excludes, set);
    walk.found = Some(found);
    if let Err(e) = walk.run(&dirs.input) {
        log!(log, Fatal, "could not search modules: ", e);
        return Err(());
    }
    for dir in config.externals.iter().rev() {
        if let Err(e) = walk.run(dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log!(log, Fatal, "could not search modules: ", e);
                return Err(());
            }
        }
    }
    Ok(())
}

/// Module files named on the command line: absolute paths of existing files, one per name.
fn add_files(log: &Log, files: &[Vec<u8>], set: &mut ModuleSet<'_>) -> Result<(), ()> {
    for path in files {
        if path.first() != Some(&b'/') {
            log!(log, Fatal, &path[..], ": not absolute path.");
            return Err(());
        }
        if let Err(e) = std::fs::metadata(OsStr::from_bytes(path)) {
            log!(log, Fatal, "could not create module ", &path[..], ": ", e);
            return Err(());
        }
        // libkmod refuses a second path for a module name, depmod the same path twice.
        const EEXIST: Errno = Errno(17);
        match set.add_unique(path.clone()) {
            Ok(()) => {}
            Err((name, old)) if old == *path => {
                log!(log, Error, "hash_add_unique ", name, ": ", EEXIST);
                log!(log, Fatal, "could not add module ", &path[..], ": ", EEXIST);
                return Err(());
            }
            Err((name, old)) => {
                log!(
                    log,
                    Error,
                    "kmod_module '",
                    name,
                    "' already exists with different path: new-path='",
                    &path[..],
                    "' old-path='",
                    old,
                    "'"
                );
                log!(log, Fatal, "could not create module ", &path[..], ": ", EEXIST);
                return Err(());
            }
        }
    }
    Ok(())
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

/// Applies `modules.order`, with kmod's messages when it is missing or corrupted.
fn apply_order(log: &Log, dirs: &Dirs, modules: &mut Vec<Module>) {
    let path = [&dirs.input[..], b"/modules.order"].concat();
    match std::fs::read(OsStr::from_bytes(&path)) {
        Ok(data) => {
            if let Err(e) = tree::sort_by_order(modules, &data) {
                log!(log, Error, &path[..], ":", e.line, " corrupted line misses '\\n'");
            }
        }
        Err(e) => log!(log, Warning, "could not open modules.order at ", &dirs.input[..], ": ", e),
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
            eprintln!(
                "depmod: timing: {phase} done at {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
