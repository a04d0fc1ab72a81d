//! `modules.symbols`: which module provides each exported symbol, in kmod's hash order.

use alloc::vec::Vec;

use super::change::touch;
use super::{BinError, Change, Index, Notice, finish, insert, key_and_value};
use crate::index::IndexBuilder;
use crate::index::patch::PatchError;

/// Appends `modules.symbols`: `alias symbol:NAME MODULE` for each module-owned symbol.
pub fn write_symbols(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# Aliases for symbols, used by symbol_request().\n");
    for (name, owner) in index.symbols.iter() {
        let Some(m) = owner.module.and_then(|m| index.module(m)) else {
            continue;
        };
        out.extend_from_slice(b"alias symbol:");
        out.extend_from_slice(name);
        out.push(b' ');
        out.extend_from_slice(m.name());
        out.push(b'\n');
    }
}

/// Appends `modules.symbols.bin`: `symbol:NAME` with the owner's name, priority its array index.
pub fn write_symbols_bin<'a>(
    index: &Index<'a>,
    out: &mut Vec<u8>,
    notice: &mut dyn FnMut(Notice<'a>),
) -> Result<(), BinError> {
    let mut bin = IndexBuilder::new();
    let mut key = Vec::new();
    for (name, owner) in index.symbols.iter() {
        let Some(m) = owner.module else { continue };
        let Some(module) = index.module(m) else {
            continue;
        };
        key.clear();
        key.extend_from_slice(b"symbol:");
        key.extend_from_slice(name);
        insert(&mut bin, &key, module.name(), m)?;
    }
    finish(bin, index.warn_duplicates, "syms", key_and_value, Vec::new(), notice, out)
}

/// Appends `modules.symbols.bin` as [`write_symbols_bin`] would, made from `old`, the one the
/// previous run wrote, and `change`: the exports of its modules that are gone and of this
/// run's new ones are the touched keys, each written again with its owner in this run's table.
/// An error (`-w`; an index that cannot be patched) leaves `out` as it was: the index is then
/// built.
pub fn patch_symbols_bin(
    index: &Index<'_>,
    change: &Change,
    old: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let new = change.added(index).map(|(_, _, info)| info);
    let exports = change.gone.iter().chain(new).flat_map(|i| i.exports());
    let mut touched = Vec::new();
    let mut key = Vec::new();
    for (name, _) in exports {
        key.clear();
        key.extend_from_slice(b"symbol:");
        key.extend_from_slice(index.symbols.export_key(name));
        touch(&mut touched, &key);
    }
    // Each touched key with its owner now, if a module owns it.
    let mut added = Vec::new();
    for key in &touched {
        let name = key.get(b"symbol:".len()..).unwrap_or_default();
        let owner = index.symbols.owner(name).and_then(|o| o.module);
        if let Some((m, module)) = owner.and_then(|m| Some((m, index.module(m)?))) {
            added.push((&key[..], module.name(), m));
        }
    }
    change.patch(index, old, &touched, true, &added, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixture::{entries, with_index};
    use alloc::string::{String, ToString};
    use alloc::vec;

    #[test]
    fn module_owned_symbols_in_table_order() {
        with_index(false, |index| {
            let mut out = Vec::new();
            write_symbols(index, &mut out);
            // The kernel's `printk` is left out; `shared` belongs to its last exporter.
            let owners = [("fa", "a"), ("shared", "b_fs"), ("fb", "b_fs")];
            let mut expected = String::from("# Aliases for symbols, used by symbol_request().\n");
            for (name, _) in index.symbols.iter() {
                if let Some((_, m)) = owners.iter().find(|(n, _)| n.as_bytes() == name) {
                    let name = core::str::from_utf8(name).unwrap();
                    expected += &alloc::format!("alias symbol:{name} {m}\n");
                }
            }
            assert_eq!(expected.lines().count(), 4);
            assert_eq!(String::from_utf8(out).unwrap(), expected);

            let mut bin = Vec::new();
            write_symbols_bin(index, &mut bin, &mut |n| panic!("{n:?}")).unwrap();
            let entry = |key: &str, priority, m: &str| {
                (alloc::format!("symbol:{key}"), vec![(priority, m.to_string())])
            };
            assert_eq!(
                entries(&bin),
                [entry("fa", 0, "a"), entry("fb", 1, "b_fs"), entry("shared", 1, "b_fs")]
            );
        });
    }
}
