//! `modules.alias`, `modules.softdep` and `modules.weakdep`: `.modinfo` values, unchanged.

use alloc::vec::Vec;

use super::Index;

/// Appends `modules.alias`: `alias VALUE NAME` per alias.
pub fn write_alias(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"# Aliases extracted from modules themselves.\n");
    for (m, info) in index.with_info() {
        for alias in info.aliases() {
            line(out, &[b"alias ", alias, b" ", m.name(), b"\n"]);
        }
    }
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
