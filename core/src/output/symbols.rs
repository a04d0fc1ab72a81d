//! `modules.symbols`: which module provides each exported symbol, in kmod's hash order.

use alloc::vec::Vec;

use super::Index;

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
