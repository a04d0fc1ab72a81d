//! `modules.alias`, `modules.softdep` and `modules.weakdep`: `.modinfo` values, unchanged.

use alloc::vec::Vec;

use super::change::touch;
use super::{BinError, Change, Index, Notice, finish, insert, key_and_value};
use crate::index::IndexBuilder;
use crate::index::patch::PatchError;
use crate::module::ModuleInfo;
use crate::name::alias_key_into;
use crate::tree::Module;

/// Appends `modules.alias`: `alias VALUE NAME` per alias.
pub fn write_alias(index: &Index<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(ALIAS_HEADER);
    for (m, info) in index.with_info() {
        alias_lines(out, m, info);
    }
}

/// Appends module `m`'s lines of `modules.alias`: `alias VALUE NAME` per alias.
fn alias_lines(out: &mut Vec<u8>, m: &Module, info: &ModuleInfo) {
    for alias in info.aliases() {
        line(out, &[b"alias ", alias, b" ", m.name(), b"\n"]);
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

/// Appends `modules.alias` as [`write_alias`] would, made from `old`, the one the previous run
/// wrote, and `change`: each module's lines are one block in array order, so the blocks of the
/// modules that stay are copied (runs of them at once) and the new ones' lines written. An
/// error (`old` does not hold the lines `change` says it does) leaves `out` as it was.
pub fn patch_alias(
    index: &Index<'_>,
    change: &Change,
    old: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let base = out.len();
    let result = splice(index, change, old, out);
    if result.is_err() {
        out.truncate(base);
    }
    result
}

fn splice(
    index: &Index<'_>,
    change: &Change,
    old: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let body = old.strip_prefix(ALIAS_HEADER).ok_or(PatchError::Unreadable)?;
    out.reserve(old.len());
    out.extend_from_slice(ALIAS_HEADER);
    // Where each line of the old text ends.
    let mut ends = memchr::memchr_iter(b'\n', body);
    let mut at = 0;
    // Old bytes to copy, not yet copied: a run of blocks of modules that stay.
    let mut run = 0..0;
    let mut gone = change.gone.iter();
    let mut next = 0;
    let infos = index.infos;
    let write_new = |out: &mut Vec<u8>, upto: usize, next: &mut usize| {
        while *next < upto {
            if let (Some(m), Some(info)) = (index.modules.get(*next), infos.get(*next)) {
                alias_lines(out, m, info);
            }
            *next += 1;
        }
    };
    for place in &change.remap {
        let lines = match place {
            Some(j) => infos.get(*j as usize).map(|i| i.aliases().len()),
            None => gone.next().map(|i| i.aliases().len()),
        }
        .ok_or(PatchError::Unreadable)?;
        let start = at;
        if lines > 0 {
            at = ends.nth(lines - 1).ok_or(PatchError::Unreadable)? + 1;
        }
        match place {
            Some(j) => {
                let j = *j as usize;
                if next < j {
                    out.extend_from_slice(body.get(run.clone()).unwrap_or_default());
                    write_new(out, j, &mut next);
                    run = start..start;
                }
                run.end = at;
                next = j + 1;
            }
            None => {
                out.extend_from_slice(body.get(run.clone()).unwrap_or_default());
                run = at..at;
            }
        }
    }
    if ends.next().is_some() || at != body.len() {
        return Err(PatchError::Unreadable);
    }
    out.extend_from_slice(body.get(run).unwrap_or_default());
    write_new(out, index.modules.len(), &mut next);
    Ok(())
}

/// The first line of `modules.alias`.
const ALIAS_HEADER: &[u8] = b"# Aliases extracted from modules themselves.\n";

/// Appends `modules.alias.bin` as [`write_alias_bin`] would, made from `old`, the one the
/// previous run wrote, and `change`: the aliases of its modules that are gone and of this run's
/// new ones are the touched keys, the new ones' aliases the added entries. An error (a new
/// alias with unmatched brackets, which the full writer reports; `-w`, whose report needs every
/// entry; an index that cannot be patched) leaves `out` as it was: the index is then built.
pub fn patch_alias_bin(
    index: &Index<'_>,
    change: &Change,
    old: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PatchError> {
    let mut touched = Vec::new();
    let mut key = Vec::new();
    for alias in change.gone.iter().flat_map(|info| info.aliases()) {
        if alias_key_into(alias, &mut key) {
            touch(&mut touched, &key);
        }
    }
    let mut added = Vec::new();
    for (i, m, info) in change.added(index) {
        for alias in info.aliases() {
            if !alias_key_into(alias, &mut key) {
                return Err(PatchError::Reports);
            }
            touch(&mut touched, &key);
            added.push((key.clone(), m.name(), i));
        }
    }
    let added: Vec<(&[u8], &[u8], u32)> = added.iter().map(|(k, v, p)| (&k[..], *v, *p)).collect();
    change.patch(index, old, &touched, false, &added, out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::fixture::{entries, spec, with_index, with_modules};
    use alloc::string::{String, ToString};
    use alloc::vec;

    fn text(write: fn(&Index<'_>, &mut Vec<u8>), index: &Index<'_>) -> String {
        let mut out = Vec::new();
        write(index, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_files_keep_modinfo_values_as_they_are() {
        with_index(false, |index| {
            assert_eq!(
                text(write_alias, index),
                "# Aliases extracted from modules themselves.\n\
                 alias pci:v-1* a\nalias fs-b b_fs\nalias c-[a-b] c\nalias fs-b c\n"
            );
            assert_eq!(
                text(write_softdep, index),
                "# Soft dependencies extracted from modules themselves.\nsoftdep a pre: b\n"
            );
            assert_eq!(
                text(write_weakdep, index),
                "# Weak dependencies extracted from modules themselves.\nweakdep b_fs c\n"
            );
        });
    }

    #[test]
    fn alias_bin_normalises_keys_outside_brackets() {
        with_index(false, |index| {
            let mut bin = Vec::new();
            write_alias_bin(index, &mut bin, &mut |n| panic!("{n:?}")).unwrap();
            let value = |priority, name: &str| (priority, name.to_string());
            assert_eq!(
                entries(&bin),
                [
                    ("c_[a-b]".to_string(), vec![value(2, "c")]),
                    ("fs_b".to_string(), vec![value(1, "b_fs"), value(2, "c")]),
                    ("pci:v_1*".to_string(), vec![value(0, "a")]),
                ]
            );
        });
    }

    #[test]
    fn alias_bin_reports_brackets_in_order_and_duplicates_with_w() {
        let dup = spec(&["alias=one", "alias=bad]", "alias=one"], &[], &[]);
        for warn_duplicates in [false, true] {
            with_modules(&[("k/dup.ko", dup.clone())], warn_duplicates, |index| {
                let mut notices = Vec::new();
                let mut bin = Vec::new();
                write_alias_bin(index, &mut bin, &mut |n| notices.push(n)).unwrap();
                let mut expected = vec![Notice::UnmatchedBracket(b"bad]")];
                if warn_duplicates {
                    expected.push(Notice::Duplicate { kind: "alias", text: b"one dup".to_vec() });
                }
                assert_eq!(notices, expected);
                // Both values are stored, duplicate or not.
                assert_eq!(entries(&bin)[0].1.len(), 2);
            });
        }
    }
}
