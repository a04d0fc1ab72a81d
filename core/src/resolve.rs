//! Symbol owners and direct dependencies, by kmod's rules.
//!
//! Kernel symbols (from `-E`/`-F`) go in first, then each module's exports in array order, so the
//! later exporter of a name owns it. Then each module's needed symbols, in order, become edges to
//! their owners, each edge once, in the order of first reference.

use alloc::vec::Vec;

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
        Symbols { table: Table::new(SYMBOL_BUCKETS), prefix }
    }

    fn strip_prefix(&self, name: &'a [u8]) -> &'a [u8] {
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

/// Direct dependencies of every module, stored flat.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// Everyone's direct dependencies, module after module.
    edges: Vec<u32>,
    /// `ends[m]`: where module `m`'s dependencies end in `edges`.
    ends: Vec<u32>,
    /// `users[m]`: how many distinct modules need `m`.
    pub users: Vec<u32>,
}

impl Graph {
    /// An empty graph of `modules` modules, to be filled with [`Graph::push`] in module order.
    pub fn new(modules: usize) -> Self {
        Graph {
            edges: Vec::new(),
            ends: Vec::with_capacity(modules),
            users: alloc::vec![0; modules],
        }
    }

    /// Adds the direct dependencies of the next module (each one once).
    pub fn push(&mut self, deps: &[u32]) {
        for &d in deps {
            self.edges.push(d);
            if let Some(u) = self.users.get_mut(d as usize) {
                *u += 1;
            }
        }
        self.ends.push(self.edges.len() as u32);
    }

    /// A graph from each module's direct dependencies (for tests and tools).
    pub fn from_lists(lists: &[&[u32]]) -> Self {
        let mut g = Graph::new(lists.len());
        lists.iter().for_each(|deps| g.push(deps));
        g
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The modules `m` needs directly, in order of first reference.
    pub fn deps(&self, m: u32) -> &[u32] {
        let i = m as usize;
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.edges.get(start as usize..end as usize).unwrap_or_default()
    }
}

/// Fills the table with every module's exports, in array order.
pub fn add_exports<'a>(symbols: &mut Symbols<'a>, infos: &'a [ModuleInfo]) {
    for (m, info) in infos.iter().enumerate() {
        for (name, crc) in info.exports() {
            symbols.add_export(name, crc, m as u32);
        }
    }
}

/// Resolves every module's needed symbols into edges, reporting through `events`.
pub fn resolve<'a>(
    symbols: &Symbols<'a>,
    infos: &'a [ModuleInfo],
    options: ResolveOptions,
    mut events: impl FnMut(Event<'a>),
) -> Graph {
    let mut graph = Graph::new(infos.len());
    let mut deps = Vec::new();
    for (m, info) in infos.iter().enumerate() {
        deps.clear();
        resolve_one(symbols, info, m as u32, options, &mut deps, &mut events);
        graph.push(&deps);
    }
    graph
}

/// The dependency pass for one module (`module` is its array index): appends its direct
/// dependencies to `deps` (which the caller clears), each once, in order of first reference.
/// Modules can be resolved in any order or in parallel; [`Graph::push`] then takes them in
/// array order, and their events in that order are kmod's.
pub fn resolve_one<'a>(
    symbols: &Symbols<'a>,
    info: &'a ModuleInfo,
    module: u32,
    options: ResolveOptions,
    deps: &mut Vec<u32>,
    mut events: impl FnMut(Event<'a>),
) {
    let first = deps.len();
    for need in info.imports() {
        let Some((key, owner)) = symbols.find(need.name) else {
            if options.print_unknown && !need.weak {
                events(Event::Unknown { module, symbol: need.name });
            }
            continue;
        };
        if options.check_symvers && owner.crc != need.crc && !need.weak && options.print_unknown {
            events(Event::Disagrees { module, symbol: need.name });
        }
        let Some(dep) = owner.module else { continue };
        if deps.get(first..).is_some_and(|mine| mine.contains(&dep)) {
            continue;
        }
        deps.push(dep);
        events(Event::Needs { module, symbol: key, owner: dep });
    }
}
