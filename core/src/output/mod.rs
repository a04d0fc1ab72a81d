//! The output files, one module per format. Each writes into a byte buffer.
//!
//! Every per-module output walks the modules in array order ([`crate::tree::sort_by_order`]);
//! `modules.symbols` walks the symbol table in kmod's hash order.

mod builtin;
mod change;
mod dep;
mod devname;
mod modinfo;
mod symbols;

pub use builtin::{write_builtin_alias_bin, write_builtin_bin};
pub use change::{Change, Entries};
pub use dep::{dep_lines, patch_dep_bin, write_dep, write_dep_bin};
pub use devname::{DevnameProblem, write_devname};
pub use modinfo::{
    patch_alias, patch_alias_bin, write_alias, write_alias_bin, write_softdep, write_weakdep,
};
pub use symbols::{patch_symbols_bin, write_symbols, write_symbols_bin};

use alloc::vec::Vec;

use crate::graph::{Closure, Graph};
use crate::index::{IndexBuilder, IndexError};
use crate::module::ModuleInfo;
use crate::resolve::Symbols;
use crate::tree::Module;

/// Everything the writers read: the modules in array order with their metadata, the symbol
/// table, the dependency graph and its topological order.
#[derive(Clone, Copy, Debug)]
pub struct Index<'a> {
    /// Modules in array order.
    pub modules: &'a [Module],
    /// `infos[i]` belongs to `modules[i]`.
    pub infos: &'a [ModuleInfo],
    /// Symbol owners.
    pub symbols: &'a Symbols<'a>,
    /// Direct dependencies.
    pub graph: &'a Graph,
    /// `dep_sort_idx` of each module.
    pub order: &'a [u32],
    /// `-w`: the `.bin` writers report duplicate values (finding them costs a sort).
    pub warn_duplicates: bool,
}

impl<'a> Index<'a> {
    /// Calls `f` with each module and its full dependency list (as array indexes, in
    /// `modules.dep` order).
    pub fn for_each_dep_list(&self, mut f: impl FnMut(usize, &Module, &[u32])) {
        let mut closure = Closure::default();
        for (i, m) in self.modules.iter().enumerate() {
            let deps = closure.of(self.graph, self.order, i as u32);
            f(i, m, deps);
        }
    }

    /// The module at array index `i`.
    pub fn module(&self, i: u32) -> Option<&'a Module> {
        self.modules.get(i as usize)
    }

    /// Module and metadata pairs in array order.
    pub fn with_info(&self) -> impl Iterator<Item = (&'a Module, &'a ModuleInfo)> {
        self.modules.iter().zip(self.infos)
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_decimal(out: &mut alloc::vec::Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
}

/// Something a `.bin` writer reports while it builds an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// An alias with an unmatched `[` or `]` is left out of the index (`Unmatched bracket in`).
    UnmatchedBracket(&'a [u8]),
    /// A value stored again under the same key (reported with `-w`): the file kind
    /// (`deps`, `alias`, `syms`) and kmod's text (`line`, or `key value`).
    Duplicate { kind: &'static str, text: Vec<u8> },
    /// A `modules.builtin` line not starting with a letter (`Invalid modules.builtin line:`),
    /// with its newline.
    InvalidBuiltinLine(&'a [u8]),
}

/// A `.bin` index that cannot be written: the error and the key or value it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinError {
    /// What is wrong.
    pub error: IndexError,
    /// The offending key or value.
    pub text: Vec<u8>,
}

/// Inserts into `index`, turning a bad character into a [`BinError`] that names the string.
pub(crate) fn insert(
    index: &mut IndexBuilder,
    key: &[u8],
    value: &[u8],
    priority: u32,
) -> Result<u32, BinError> {
    index.insert(key, value, priority).map_err(|error| {
        let text = match error {
            IndexError::BadCharacter { in_key: false, .. } => value.to_vec(),
            _ => key.to_vec(),
        };
        BinError { error, text }
    })
}

/// Reports `index`'s duplicate values as `kind` notices, `text` making each one's message,
/// merged in insertion order with `earlier` notices (each tagged with the number of entries
/// inserted before it), then serialises the index into `out`.
pub(crate) fn finish<'a>(
    mut index: IndexBuilder,
    warn_duplicates: bool,
    kind: &'static str,
    text: fn(&[u8], &[u8]) -> Vec<u8>,
    earlier: Vec<(u32, Notice<'a>)>,
    notice: &mut dyn FnMut(Notice<'a>),
    out: &mut Vec<u8>,
) -> Result<(), BinError> {
    let dups = if warn_duplicates { index.duplicates() } else { Vec::new() };
    let mut dups = dups.into_iter().peekable();
    for (before, n) in earlier {
        while let Some((_, k, v)) = dups.next_if(|d| d.0 < before) {
            notice(Notice::Duplicate { kind, text: text(k, v) });
        }
        notice(n);
    }
    for (_, k, v) in dups {
        notice(Notice::Duplicate { kind, text: text(k, v) });
    }
    index.write(out).map_err(|error| BinError { error, text: Vec::new() })
}

/// Duplicate text `key value` (alias and symbol indexes).
pub(crate) fn key_and_value(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut t = key.to_vec();
    t.push(b' ');
    t.extend_from_slice(value);
    t
}

/// Duplicate text: the value alone (the dependency index, whose value is the whole line).
pub(crate) fn value_only(_key: &[u8], value: &[u8]) -> Vec<u8> {
    value.to_vec()
}

/// Module trees for the writers' tests, here and in the program (with the `elf-writer`
/// feature).
#[cfg(any(test, feature = "elf-writer"))]
pub mod fixture {
    use super::*;
    use crate::elf::writer::ModuleSpec;
    use crate::graph::topo_order;
    use crate::resolve::{ResolveOptions, add_exports, resolve_run};

    /// The module directory of the trees.
    pub const DIR: &[u8] = b"/lib/modules/6.1";

    /// A module with `.modinfo` strings `modinfo`, exporting `exports`, needing `imports`.
    pub fn spec(modinfo: &[&str], exports: &[&str], imports: &[&str]) -> ModuleSpec {
        let bytes = |list: &[&str]| list.iter().map(|s| s.as_bytes().to_vec()).collect();
        let mut m = ModuleSpec::new();
        m.modinfo = bytes(modinfo);
        m.exports = bytes(exports);
        m.imports = imports.iter().map(|i| (i.as_bytes().to_vec(), false)).collect();
        m
    }

    /// Calls `f` with the index of `modules` (paths under [`DIR`], or absolute), in that array
    /// order, with the kernel's `printk` (`-w` as `warn_duplicates`).
    pub fn with_modules(
        modules: &[(&str, ModuleSpec)],
        warn_duplicates: bool,
        f: impl FnOnce(&Index<'_>),
    ) {
        let path = |p: &str| match p.starts_with('/') {
            true => p.as_bytes().to_vec(),
            false => [DIR, b"/", p.as_bytes()].concat(),
        };
        let infos: Vec<ModuleInfo> =
            modules.iter().map(|(_, s)| ModuleInfo::parse(&s.build())).collect();
        let modules: Vec<Module> = modules.iter().map(|(p, _)| Module::new(path(p), DIR)).collect();
        let mut symbols = Symbols::new(None);
        symbols.add_kernel(b"printk", 0);
        add_exports(&mut symbols, &infos);
        let mut graph = Graph::new(infos.len());
        resolve_run(&symbols, None, &infos, 0, ResolveOptions::default()).add_to(&mut graph);
        let order = topo_order(&graph).unwrap_or_default();
        f(&Index {
            modules: &modules,
            infos: &infos,
            symbols: &symbols,
            graph: &graph,
            order: &order,
            warn_duplicates,
        });
    }

    /// Calls `f` with the index of a small tree: `a` exports `fa` (and `shared`), `b` needs
    /// `fa` and exports `fb` (and `shared`, so `b` owns it), `c` needs `fb`, `fa` and the
    /// kernel's `printk`; `x`, outside the module directory, needs `fb`.
    pub fn with_index(warn_duplicates: bool, f: impl FnOnce(&Index<'_>)) {
        let modules = [
            ("kernel/a.ko", spec(&["alias=pci:v-1*", "softdep=pre: b"], &["fa", "shared"], &[])),
            (
                "kernel/fs/b-fs.ko.xz",
                spec(&["alias=fs-b", "weakdep=c"], &["fb", "shared"], &["fa"]),
            ),
            ("kernel/c.ko", spec(&["alias=c-[a-b]", "alias=fs-b"], &[], &["fb", "fa", "printk"])),
            ("/opt/x.ko", spec(&[], &[], &["fb"])),
        ];
        with_modules(&modules, warn_duplicates, f);
    }

    /// The entries of a written `.bin` index: key, then `(priority, value)` pairs.
    #[cfg(test)]
    pub fn entries(bin: &[u8]) -> Vec<(alloc::string::String, Vec<(u32, alloc::string::String)>)> {
        let text = |b: &[u8]| alloc::string::String::from_utf8(b.to_vec()).unwrap();
        let index = crate::index::reader::Index::parse(bin).unwrap();
        index
            .entries()
            .unwrap()
            .into_iter()
            .map(|(k, vs)| {
                (text(&k), vs.into_iter().map(|v| (v.priority, text(&v.text))).collect())
            })
            .collect()
    }
}
