//! `modules.dep`: each module's path, a colon, and the paths of everything it needs.

use alloc::vec::Vec;

use super::{BinError, Index, Notice, finish, insert, value_only};
use crate::index::IndexBuilder;

/// Appends `modules.dep` to `out`. No header; a module without dependencies ends in `:`.
pub fn write_dep(index: &Index<'_>, out: &mut Vec<u8>) {
    index.for_each_dep_list(|_, m, deps| {
        out.extend_from_slice(m.output_path());
        out.push(b':');
        for &d in deps {
            if let Some(dep) = index.module(d) {
                out.push(b' ');
                out.extend_from_slice(dep.output_path());
            }
        }
        out.push(b'\n');
    });
}

/// Appends `modules.dep.bin`: each module's `modules.dep` line (without newline) under its
/// name, with its array index as priority.
pub fn write_dep_bin<'a>(
    index: &Index<'a>,
    out: &mut Vec<u8>,
    notice: &mut dyn FnMut(Notice<'a>),
) -> Result<(), BinError> {
    let mut bin = IndexBuilder::new();
    let mut line = Vec::new();
    let mut result = Ok(());
    index.for_each_dep_list(|i, m, deps| {
        if result.is_err() {
            return;
        }
        line.clear();
        line.extend_from_slice(m.output_path());
        line.push(b':');
        for &d in deps {
            if let Some(dep) = index.module(d) {
                line.push(b' ');
                line.extend_from_slice(dep.output_path());
            }
        }
        if let Err(e) = insert(&mut bin, m.name(), &line, i as u32) {
            result = Err(e);
        }
    });
    result?;
    finish(bin, index.warn_duplicates, "deps", value_only, Vec::new(), notice, out)
}
