//! Symbol owners and direct dependencies, by kmod's rules.
//!
//! Kernel symbols (from `-E`/`-F`) go in first, then each module's exports in array order, so the
//! later exporter of a name owns it. Then each module's needed symbols, in order, become edges to
//! their owners, each edge once, in the order of first reference.

use alloc::vec::Vec;

use crate::graph::Graph;
use crate::hash::{SYMBOL_BUCKETS, Table};
use crate::module::ModuleInfo;

/// Who provides a symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Array index of the exporting module; `None` for the kernel.
    pub module: Option<u32>,
    /// The symbol's CRC.
    pub crc: u64,
}

/// kmod's symbol table: name to owner, with kmod's iteration order.
#[derive(Clone, Debug)]
pub struct Symbols<'a> {
    table: Table<&'a [u8], Owner>,
    prefix: Option<u8>,
}

impl<'a> Symbols<'a> {
    /// An empty table. `prefix` is `-P`'s character, stripped once from the front of names.
    pub fn new(prefix: Option<u8>) -> Self {
        Self::with_capacity(prefix, 0)
    }

    /// An empty table with room for `count` symbols.
    pub fn with_capacity(prefix: Option<u8>, count: usize) -> Self {
        Symbols { table: Table::with_capacity(SYMBOL_BUCKETS, count), prefix }
    }

    fn strip_prefix<'n>(&self, name: &'n [u8]) -> &'n [u8] {
        match (self.prefix, name.split_first()) {
            (Some(p), Some((&first, rest))) if first == p => rest,
            _ => name,
        }
    }

    /// Adds (or replaces) a kernel symbol whose name has had its prefix removed already.
    pub fn add_kernel(&mut self, name: &'a [u8], crc: u64) {
        self.table.insert(name, Owner { module: None, crc });
    }

    /// Adds (or replaces) a kernel symbol as named in `Module.symvers`: one prefix character is
    /// stripped.
    pub fn add_kernel_raw(&mut self, name: &'a [u8], crc: u64) {
        let name = self.strip_prefix(name);
        self.add_kernel(name, crc);
    }

    /// Adds (or replaces) a module export; one prefix character is stripped.
    pub fn add_export(&mut self, name: &'a [u8], crc: u64, module: u32) {
        let name = self.strip_prefix(name);
        self.table.insert(name, Owner { module: Some(module), crc });
    }

    /// Looks a needed symbol up: one leading `.` (PPC64 function descriptors) and then one prefix
    /// character are ignored.
    pub fn find(&self, name: &'a [u8]) -> Option<(&'a [u8], Owner)> {
        let name = name.strip_prefix(b".").unwrap_or(name);
        let key = self.strip_prefix(name);
        self.table.get(key).map(|o| (key, *o))
    }

    /// The name a module's export `name` is kept under (its prefix stripped).
    pub fn export_key<'n>(&self, name: &'n [u8]) -> &'n [u8] {
        self.strip_prefix(name)
    }

    /// The owner of the symbol kept under `key` (as [`Symbols::export_key`] gives it).
    pub fn owner(&self, key: &[u8]) -> Option<Owner> {
        self.table.get(key).copied()
    }

    /// All symbols in kmod's hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], Owner)> + '_ {
        self.table.iter().map(|(k, o)| (*k, *o))
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Options of the dependency pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResolveOptions {
    /// `-e`: report needed symbols nobody provides, and CRC mismatches.
    pub print_unknown: bool,
    /// `-E` was given: compare CRCs.
    pub check_symvers: bool,
}

/// Something the dependency pass reports, in kmod's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `-e`: nobody provides `symbol` (raw name), needed by `module`.
    Unknown { module: u32, symbol: &'a [u8] },
    /// `-e -E`: `module` needs `symbol` (raw name) with a CRC other than its provider's.
    Disagrees { module: u32, symbol: &'a [u8] },
    /// A new edge: `module` needs `symbol` (the table key) from `owner` (shown with `-v`).
    Needs { module: u32, symbol: &'a [u8], owner: u32 },
}

/// Fills the table with every module's exports, in array order.
pub fn add_exports<'a>(symbols: &mut Symbols<'a>, infos: &'a [ModuleInfo]) {
    for (m, info) in infos.iter().enumerate() {
        for (name, crc) in info.exports() {
            symbols.add_export(name, crc, m as u32);
        }
    }
}

/// The dependency pass over a run of consecutive modules: their direct dependencies and what
/// the pass reports. Runs can be resolved in any order or in parallel; added to a [`Graph`] in
/// array order ([`Resolved::add_to`]), with their events in that order, they give kmod's graph
/// and messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// Direct dependencies, module after module.
    deps: Vec<u32>,
    /// How many of `deps` each module of the run has.
    counts: Vec<u32>,
    /// What the pass reported, in kmod's order.
    pub events: Vec<Event<'a>>,
}

impl Resolved<'_> {
    /// Adds the run's modules to `graph`, which must hold exactly the modules before the run.
    pub fn add_to(&self, graph: &mut Graph) {
        let mut rest = self.deps.as_slice();
        for &n in &self.counts {
            let (mine, later) = rest.split_at_checked(n as usize).unwrap_or((rest, &[]));
            graph.push(mine);
            rest = later;
        }
    }
}

/// What [`Symbols::find`] answers for each of a module cache's symbol names, by number
/// ([`crate::cache::Cache::symbol_names`]): a recalled module's needed symbols are looked up
/// there, each name once for all modules.
pub type Known<'a> = [Option<(&'a [u8], Owner)>];

/// Resolves the needed symbols of `infos`, the modules at array indexes `first..`, into edges
/// to their owners: each owner once per module, in order of first reference. `known` answers
/// for the needed symbols of modules recalled from the module cache it was made from.
pub fn resolve_run<'a>(
    symbols: &Symbols<'a>,
    known: Option<&Known<'a>>,
    infos: &'a [ModuleInfo],
    first: u32,
    options: ResolveOptions,
) -> Resolved<'a> {
    let mut run = Resolved::default();
    for (module, info) in (first..).zip(infos) {
        let before = run.deps.len();
        resolve_one(symbols, known, info, module, options, &mut run);
        run.counts.push((run.deps.len() - before) as u32);
    }
    run
}

/// The dependency pass for one module (`module` is its array index), appended to `run`.
fn resolve_one<'a>(
    symbols: &Symbols<'a>,
    known: Option<&Known<'a>>,
    info: &'a ModuleInfo,
    module: u32,
    options: ResolveOptions,
    run: &mut Resolved<'a>,
) {
    let first = run.deps.len();
    // Without `-e`, only the owners matter: a recalled module's are known by number (the
    // cache's checks keep every number below the count of its names).
    if let (Some(known), Some(ids), false) =
        (known, info.recorded_import_ids(), options.print_unknown)
    {
        for id in ids {
            let Some((key, owner)) = known.get(id as usize).copied().flatten() else { continue };
            let Some(dep) = owner.module else { continue };
            if run.deps.get(first..).is_some_and(|mine| mine.contains(&dep)) {
                continue;
            }
            run.deps.push(dep);
            run.events.push(Event::Needs { module, symbol: key, owner: dep });
        }
        return;
    }
    for need in info.imports() {
        let Some((key, owner)) = symbols.find(need.name) else {
            if options.print_unknown && !need.weak {
                run.events.push(Event::Unknown { module, symbol: need.name });
            }
            continue;
        };
        if options.check_symvers && owner.crc != need.crc && !need.weak && options.print_unknown {
            run.events.push(Event::Disagrees { module, symbol: need.name });
        }
        let Some(dep) = owner.module else { continue };
        if run.deps.get(first..).is_some_and(|mine| mine.contains(&dep)) {
            continue;
        }
        run.deps.push(dep);
        run.events.push(Event::Needs { module, symbol: key, owner: dep });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::writer::ModuleSpec;
    use alloc::vec;

    /// A module exporting `exports` (CRCs 0x100, 0x101, ...) and needing `imports` (`!` before
    /// a name makes it weak), with `__versions` CRCs for `versions`.
    fn module(exports: &[&str], imports: &[&str], versions: &[(&str, u64)]) -> ModuleInfo {
        let mut spec = ModuleSpec::new();
        spec.exports = exports.iter().map(|e| e.as_bytes().to_vec()).collect();
        spec.crcs = Some((0..exports.len() as u32).map(|i| 0x100 + i).collect());
        spec.imports = imports
            .iter()
            .map(|i| (i.trim_start_matches('!').as_bytes().to_vec(), i.starts_with('!')))
            .collect();
        spec.versions = versions.iter().map(|(n, c)| (n.as_bytes().to_vec(), *c)).collect();
        let info = ModuleInfo::parse(&spec.build());
        assert_eq!((info.elf_error, info.exports_error, info.imports_error), (None, None, None));
        info
    }

    fn owner<'a>(symbols: &Symbols<'a>, name: &'a str) -> Option<Owner> {
        symbols.find(name.as_bytes()).map(|(_, o)| o)
    }

    #[test]
    fn the_last_exporter_owns_a_symbol() {
        let infos = [module(&["shared", "only_a"], &[], &[]), module(&["shared"], &[], &[])];
        let mut symbols = Symbols::new(None);
        symbols.add_kernel(b"shared", 7);
        symbols.add_kernel(b"printk", 8);
        add_exports(&mut symbols, &infos);
        // Modules come after the kernel, in array order: the later one wins.
        assert_eq!(owner(&symbols, "shared"), Some(Owner { module: Some(1), crc: 0x100 }));
        assert_eq!(owner(&symbols, "only_a"), Some(Owner { module: Some(0), crc: 0x101 }));
        assert_eq!(owner(&symbols, "printk"), Some(Owner { module: None, crc: 8 }));
        assert_eq!(owner(&symbols, "missing"), None);
        assert_eq!(symbols.len(), 3);
    }

    #[test]
    fn prefixes_and_function_descriptors() {
        let infos = [module(&["_exported"], &[], &[])];
        let mut symbols = Symbols::new(Some(b'_'));
        // A Module.symvers name loses one prefix character; a System.map name is given bare.
        symbols.add_kernel_raw(b"_from_symvers", 1);
        symbols.add_kernel(b"from_map", 2);
        add_exports(&mut symbols, &infos);
        let key = |name: &'static str| symbols.find(name.as_bytes()).map(|(k, _)| k);
        assert_eq!(key("_exported"), Some(&b"exported"[..]));
        assert_eq!(key("exported"), Some(&b"exported"[..]));
        // PPC64: one leading `.`, then the prefix.
        assert_eq!(key("._exported"), Some(&b"exported"[..]));
        assert_eq!(key("..exported"), None);
        assert_eq!(key("from_symvers"), Some(&b"from_symvers"[..]));
        assert_eq!(key("_from_map"), Some(&b"from_map"[..]));
        // Only one prefix character is stripped.
        assert_eq!(key("__exported"), None);
    }

    #[test]
    fn each_owner_once_in_order_of_first_reference() {
        let infos = [
            module(&["a1", "a2"], &[], &[]),
            module(&["b1"], &[], &[]),
            module(&[], &["b1", "a1", "kernel_fn", "a2", "b1", "nobody", "!weak_nobody"], &[]),
        ];
        let mut symbols = Symbols::new(None);
        symbols.add_kernel(b"kernel_fn", 0);
        add_exports(&mut symbols, &infos);
        let quiet = ResolveOptions::default();
        let run = resolve_run(&symbols, None, &infos, 0, quiet);
        let mut graph = Graph::new(infos.len());
        run.add_to(&mut graph);
        assert_eq!(graph.deps(2), [1, 0]);
        assert_eq!((graph.deps(0), graph.deps(1)), (&[][..], &[][..]));
        assert_eq!(graph.users, [1, 1, 0]);
        // One event per new edge, with the symbol that made it; unknown symbols are silent
        // without -e.
        assert_eq!(
            run.events,
            [
                Event::Needs { module: 2, symbol: b"b1", owner: 1 },
                Event::Needs { module: 2, symbol: b"a1", owner: 0 },
            ]
        );
    }

    #[test]
    fn unknown_and_disagreeing_symbols_with_e() {
        let infos = [
            module(&["good", "bad_crc"], &[], &[]),
            module(
                &[],
                &["good", "bad_crc", "nobody", "!weak_nobody", "kernel_fn"],
                &[("good", 0x100), ("bad_crc", 0x999), ("kernel_fn", 5)],
            ),
        ];
        let mut symbols = Symbols::new(None);
        symbols.add_kernel(b"kernel_fn", 6);
        add_exports(&mut symbols, &infos);
        let e = ResolveOptions { print_unknown: true, check_symvers: false };
        let e_symvers = ResolveOptions { print_unknown: true, check_symvers: true };
        let events = |options| resolve_run(&symbols, None, &infos[1..], 1, options).events;
        let needs_good = Event::Needs { module: 1, symbol: b"good", owner: 0 };
        let unknown = Event::Unknown { module: 1, symbol: b"nobody" };
        // The CRC of `good`'s owner is 0x100 (its first export), as its `__versions` says.
        assert_eq!(events(e), [needs_good, unknown]);
        assert_eq!(
            events(e_symvers),
            [
                needs_good,
                Event::Disagrees { module: 1, symbol: b"bad_crc" },
                unknown,
                Event::Disagrees { module: 1, symbol: b"kernel_fn" },
            ]
        );
        // -E without -e compares nothing.
        let symvers_only = ResolveOptions { print_unknown: false, check_symvers: true };
        assert_eq!(events(symvers_only), [needs_good]);
    }

    #[test]
    fn runs_resolved_apart_make_the_same_graph() {
        let infos = [
            module(&["x"], &["y"], &[]),
            module(&["y"], &["z"], &[]),
            module(&["z"], &["x", "y"], &[]),
            module(&[], &["z", "x"], &[]),
        ];
        let mut symbols = Symbols::new(None);
        add_exports(&mut symbols, &infos);
        let options = ResolveOptions::default();
        let whole = resolve_run(&symbols, None, &infos, 0, options);
        let mut one = Graph::new(infos.len());
        whole.add_to(&mut one);
        let mut pieces = Graph::new(infos.len());
        let mut events = vec![];
        for (i, run) in infos.chunks(3).enumerate() {
            let part = resolve_run(&symbols, None, run, i as u32 * 3, options);
            part.add_to(&mut pieces);
            events.extend(part.events);
        }
        assert_eq!(one, pieces);
        assert_eq!(whole.events, events);
        assert_eq!(one.deps(2), [0, 1]);
        assert_eq!(one.deps(3), [2, 0]);
    }
}
