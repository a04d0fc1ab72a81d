//! `modules.dep`: each module's path, a colon, and the paths of everything it needs.

use alloc::vec::Vec;

use super::change::touch;
use super::{BinError, Change, Index, Notice, finish, insert, value_only};
use crate::index::IndexBuilder;
use crate::index::patch::PatchError;
use crate::name::module_name;
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

/// The lines of a `modules.dep` (written by this program or by kmod), one per module of its
/// array in order, each with its module's path (the text before the colon); `None` for a line
/// without a colon.
pub fn dep_lines(text: &[u8]) -> impl Iterator<Item = Option<(&[u8], &[u8])>> {
    let lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    lines.map(|line| Some((line.get(..line.iter().position(|&b| b == b':')?)?, line)))
}

/// Appends `modules.dep.bin` as [`write_dep_bin`] would, made from `old`, the one the previous
/// run wrote, its `modules.dep` (`old_dep`: one line per module of its array, in order) and
/// `change`: the touched keys are the names of the modules gone, new, or whose line is not the
/// one they had; each of these is written again with its line now. An error (`-w`; an index
/// that cannot be patched) leaves `out` as it was: the index is then built.
pub fn patch_dep_bin(
    index: &Index<'_>,
    change: &Change,
    old: &[u8],
    old_dep: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    // The old line of each of this run's modules that was in the previous run's array.
    let mut old_lines: Vec<Option<&[u8]>> = alloc::vec![None; index.modules.len()];
    let mut touched = Vec::new();
    let mut lines = dep_lines(old_dep);
    for place in &change.remap {
        let (path, line) = lines.next().flatten().ok_or(PatchError::Unreadable)?;
        match place {
            Some(i) => *old_lines.get_mut(*i as usize).ok_or(PatchError::Unreadable)? = Some(line),
            None => touch(&mut touched, &module_name(path)),
        }
    }
    // The lines now that are not the old ones, one after the other, and where each ends.
    let mut text = Vec::new();
    let mut changed: Vec<(u32, usize)> = Vec::new();
    index.for_each_dep_list(|i, m, deps| {
        let start = text.len();
        line(index, m, deps, &mut text);
        if old_lines.get(i).copied().flatten() == text.get(start..) {
            text.truncate(start);
        } else {
            touch(&mut touched, m.name());
            changed.push((i as u32, text.len()));
        }
    });
    let mut added = Vec::with_capacity(changed.len());
    let mut start = 0;
    for &(i, end) in &changed {
        let m = index.module(i).ok_or(PatchError::Unreadable)?;
        added.push((m.name(), text.get(start..end).unwrap_or_default(), i));
        start = end;
    }
    change.patch(index, old, &touched, true, &added, out)
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
    use crate::module::ModuleInfo;
    use crate::output::fixture::{entries, spec, with_index, with_modules};
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

    /// A module removed, then put back: the patched `modules.dep.bin` is the one built in full,
    /// the lines of the modules that needed it (their dependencies changed) written again.
    #[test]
    fn patched_as_built_when_a_module_goes_and_comes_back() {
        let b = || spec(&[], &["fb"], &["fa"]);
        // Names under two first letters, each shared by more than one module whatever changes:
        // no change reaches the root node (see `patch`).
        let all = [
            ("kernel/snd-a.ko", spec(&[], &["fa"], &[])),
            ("kernel/snd-b.ko", b()),
            ("kernel/snd-e.ko", spec(&[], &[], &[])),
            ("kernel/usb-c.ko", spec(&[], &[], &["fb"])),
            ("kernel/usb-d.ko", spec(&[], &[], &["fa"])),
        ];
        let without_b: Vec<_> = all.iter().filter(|(p, _)| !p.contains("-b")).cloned().collect();
        // (modules.dep, modules.dep.bin) of a tree.
        let built = |modules: &[(&str, _)]| {
            let mut made = (Vec::new(), Vec::new());
            with_modules(modules, false, |index| {
                write_dep(index, &mut made.0);
                write_dep_bin(index, &mut made.1, &mut |n| panic!("{n:?}")).unwrap();
            });
            made
        };
        let (with, without) = (built(&all), built(&without_b));
        let gone = Change {
            remap: vec![Some(0), None, Some(1), Some(2), Some(3)],
            kept: vec![true; 4],
            gone: vec![ModuleInfo::parse(&b().build())],
        };
        let back = Change {
            remap: vec![Some(0), Some(2), Some(3), Some(4)],
            kept: vec![true, false, true, true, true],
            gone: vec![],
        };
        for (modules, change, old, new) in
            [(&without_b[..], gone, &with, &without), (&all[..], back, &without, &with)]
        {
            assert!(change.is_consistent(modules.len()));
            // The change reaches a line of a module that stays: usb-c needs snd-b, then not.
            let c = entries(&new.1).into_iter().find(|(k, _)| k == "usb_c").unwrap();
            assert_eq!(c.1[0].1.contains("snd-b.ko"), modules.len() == all.len());
            with_modules(modules, false, |index| {
                // Appended after what `out` holds.
                let mut out = vec![0xAA];
                patch_dep_bin(index, &change, &old.1, &old.0, &mut out).unwrap();
                assert_eq!(&out[1..], &new.1[..]);
            });
        }
    }
}
