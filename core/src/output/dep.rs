//! `modules.dep`: each module's path, a colon, and the paths of everything it needs.

use alloc::vec::Vec;

use super::{BinError, Index, Notice, finish, insert, value_only};
use crate::index::IndexBuilder;
use crate::tree::Module;

/// Appends `modules.dep` to `out`. No header; a module without dependencies ends in `:`.
pub fn write_dep(index: &Index<'_>, out: &mut Vec<u8>) {
    index.for_each_dep_list(|_, m, deps| {
        line(index, m, deps, out);
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
    let mut text = Vec::new();
    let mut result = Ok(());
    index.for_each_dep_list(|i, m, deps| {
        if result.is_err() {
            return;
        }
        text.clear();
        line(index, m, deps, &mut text);
        if let Err(e) = insert(&mut bin, m.name(), &text, i as u32) {
            result = Err(e);
        }
    });
    result?;
    finish(bin, index.warn_duplicates, "deps", value_only, Vec::new(), notice, out)
}

/// Appends module `m`'s line, without its newline: `PATH: DEP DEP...`.
fn line(index: &Index<'_>, m: &Module, deps: &[u32], out: &mut Vec<u8>) {
    out.extend_from_slice(m.output_path());
    out.push(b':');
    for dep in deps.iter().filter_map(|&d| index.module(d)) {
        out.push(b' ');
        out.extend_from_slice(dep.output_path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixture::{entries, with_index};
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn paths_relative_to_the_module_directory_in_dependency_order() {
        with_index(false, |index| {
            let mut out = Vec::new();
            write_dep(index, &mut out);
            // `c` needs `b` (which needs `a`) and `a`: a user comes before what it needs.
            let expected = "kernel/a.ko:\n\
                kernel/fs/b-fs.ko.xz: kernel/a.ko\n\
                kernel/c.ko: kernel/fs/b-fs.ko.xz kernel/a.ko\n\
                /opt/x.ko: kernel/fs/b-fs.ko.xz kernel/a.ko\n";
            assert_eq!(core::str::from_utf8(&out).unwrap(), expected);

            let mut bin = Vec::new();
            write_dep_bin(index, &mut bin, &mut |n| panic!("{n:?}")).unwrap();
            let line = |i: usize| expected.lines().nth(i).unwrap().to_string();
            assert_eq!(
                entries(&bin),
                [
                    ("a".to_string(), vec![(0, line(0))]),
                    ("b_fs".to_string(), vec![(1, line(1))]),
                    ("c".to_string(), vec![(2, line(2))]),
                    ("x".to_string(), vec![(3, line(3))]),
                ]
            );
        });
    }
}
