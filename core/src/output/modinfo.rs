//! `modules.alias`, `modules.softdep` and `modules.weakdep`: `.modinfo` values, unchanged.

use alloc::vec::Vec;

use super::{BinError, Index, Notice, finish, insert, key_and_value};
use crate::index::IndexBuilder;
use crate::name::alias_key_into;

/// Appends `modules.alias`: `alias VALUE NAME` per alias.
pub fn write_alias(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# Aliases extracted from modules themselves.\n");
    for (m, info) in index.with_info() {
        for alias in info.aliases() {
            line(out, &[b"alias ", alias, b" ", m.name(), b"\n"]);
        }
    }
}

/// Appends `modules.alias.bin`: each alias (dashes made underscores outside brackets) with the
/// module name as value and its array index as priority. Aliases with unmatched brackets are
/// reported and left out.
pub fn write_alias_bin<'a>(
    index: &Index<'a>,
    out: &mut Vec<u8>,
    notice: &mut dyn FnMut(Notice<'a>),
) -> Result<(), BinError> {
    let mut bin = IndexBuilder::new();
    let mut brackets = Vec::new();
    let mut key = Vec::new();
    for (i, (m, info)) in index.with_info().enumerate() {
        for alias in info.aliases() {
            if !alias_key_into(alias, &mut key) {
                brackets.push((bin.len() as u32, Notice::UnmatchedBracket(alias)));
                continue;
            }
            insert(&mut bin, &key, m.name(), i as u32)?;
        }
    }
    finish(bin, index.warn_duplicates, "alias", key_and_value, brackets, notice, out)
}

/// Appends `modules.softdep`: `softdep NAME VALUE` per softdep.
pub fn write_softdep(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# Soft dependencies extracted from modules themselves.\n");
    for (m, info) in index.with_info() {
        for dep in info.softdeps() {
            line(out, &[b"softdep ", m.name(), b" ", dep, b"\n"]);
        }
    }
}

/// Appends `modules.weakdep`: `weakdep NAME VALUE` per weakdep.
pub fn write_weakdep(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# Weak dependencies extracted from modules themselves.\n");
    for (m, info) in index.with_info() {
        for dep in info.weakdeps() {
            line(out, &[b"weakdep ", m.name(), b" ", dep, b"\n"]);
        }
    }
}

fn line(out: &mut Vec<u8>, parts: &[&[u8]]) {
    parts.iter().for_each(|p| out.extend_from_slice(p));
}
