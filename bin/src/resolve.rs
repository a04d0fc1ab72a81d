//! The dependency pass: the symbol table, each module's direct dependencies (on every thread,
//! with kmod's `-e` warnings and `-v` lines), and kmod's order over them, or its cycle report.

use std::io::Write;

use depmod_core::ModuleInfo;
use depmod_core::cache::Cache;
use depmod_core::graph::{self, CycleReport, Graph};
use depmod_core::resolve::{self, Event, Owner, ResolveOptions, Symbols};
use depmod_core::tree::Module;

use crate::kernel_symbols::KernelFile;
use crate::log::{Failed, Log, log};
use crate::par;

/// Modules per piece of work of the dependency pass: enough to make handing it out cheap.
const RUN: usize = 128;

/// The options of the pass: `-e` (which needs `-E` or `-F`, or is dropped with kmod's warning)
/// and whether CRCs are compared (`-E`).
pub fn options(log: &Log, errsyms: bool, kernel: &KernelFile) -> ResolveOptions {
    let no_file = matches!(kernel, KernelFile::None);
    if errsyms && no_file {
        log!(log, Warning, "-e needs -E or -F");
    }
    ResolveOptions {
        print_unknown: errsyms && !no_file,
        check_symvers: matches!(kernel, KernelFile::Symvers(_)),
    }
}

/// The symbol table: the kernel's symbols, then every module's exports in array order.
pub fn symbols<'a>(
    kernel: &'a KernelFile,
    infos: &'a [ModuleInfo],
    prefix: Option<u8>,
) -> Symbols<'a> {
    // Room for every export (the kernel's symbols, if any, make the table grow).
    let exports = infos.iter().map(|i| i.exports().len()).sum();
    let mut symbols = Symbols::with_capacity(prefix, exports);
    kernel.add_to(&mut symbols, prefix);
    resolve::add_exports(&mut symbols, infos);
    symbols
}

/// Each module's direct dependencies, resolved on `threads` threads in runs of modules; the
/// graph, the warnings and the `-v` lines come out in module order, as from one thread. The
/// modules recalled from `cache` have their needed symbols looked up by the cache's numbers:
/// each of its symbol names is looked up once, where a tree's modules need each symbol many
/// times.
#[allow(clippy::too_many_arguments)]
pub fn dependencies<'a>(
    log: &Log,
    modules: &[Module],
    symbols: &Symbols<'a>,
    cache: Option<&Cache<'a>>,
    infos: &'a [ModuleInfo],
    options: ResolveOptions,
    verbose: bool,
    threads: usize,
) -> Graph {
    let known = cache.map(|c| known(symbols, c));
    let runs: Vec<&'a [ModuleInfo]> = infos.chunks(RUN).collect();
    let resolved = par::map_slice_with(
        &runs,
        threads,
        || (),
        |_, r, run| resolve::resolve_run(symbols, known.as_deref(), run, (r * RUN) as u32, options),
    );
    let path = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.path());
    let mut stdout = std::io::stdout().lock();
    let mut graph = Graph::new(infos.len());
    for part in resolved {
        part.add_to(&mut graph);
        for event in part.events {
            match event {
                Event::Unknown { module, symbol } => {
                    log!(log, Warning, path(module), " needs unknown symbol ", symbol);
                }
                Event::Disagrees { module, symbol } => {
                    let m = path(module);
                    log!(log, Warning, m, " disagrees about version of symbol ", symbol);
                }
                Event::Needs { module, symbol, owner } if verbose => {
                    let line =
                        [path(module), b" needs \"", symbol, b"\": ", path(owner), b"\n"].concat();
                    let _ = stdout.write_all(&line);
                }
                Event::Needs { .. } => {}
            }
        }
    }
    let _ = stdout.flush();
    graph
}

/// What `symbols` answers for each of `cache`'s symbol names, by number.
fn known<'a>(symbols: &Symbols<'a>, cache: &Cache<'a>) -> Vec<Option<(&'a [u8], Owner)>> {
    cache.symbol_names().map(|n| symbols.find(n)).collect()
}

/// kmod's topological order of the modules (`dep_sort_idx`), or its cycle report.
pub fn order(log: &Log, modules: &[Module], graph: &Graph) -> Result<Vec<u32>, Failed> {
    graph::topo_order(graph).map_err(|users| {
        report_cycles(log, modules, &graph::cycle_report(graph, &users));
        Failed
    })
}

/// kmod's cycle report.
fn report_cycles(log: &Log, modules: &[Module], report: &CycleReport) {
    let name = |i: u32| modules.get(i as usize).map_or(&[][..], |m| m.name());
    for cycle in &report.cycles {
        let names: Vec<&[u8]> = cycle.iter().map(|&m| name(m)).collect();
        log!(log, Error, "Cycle detected: ", names.join(&b" -> "[..]));
    }
    log!(log, Error, "Found ", report.modules, " modules in dependency cycles!");
}
