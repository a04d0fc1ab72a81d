//! `modules.builtin.bin` and `modules.builtin.alias.bin`, from the kernel build's lists of
//! built-in modules.

use alloc::vec::Vec;

use super::{BinError, Notice, insert};
use crate::index::IndexBuilder;
use crate::name::{alias_key, module_name};

/// kmod reads `modules.builtin` with `fgets` into a `PATH_MAX` buffer.
const FGETS_MAX: usize = 4095;

/// Appends `modules.builtin.bin` built from the contents of `modules.builtin`: each line's module
/// name (its basename up to the first `.`, so a line without a dot keeps its newline) with an
/// empty value. Lines not starting with a letter are reported and skipped.
pub fn write_builtin_bin<'a>(
    modules_builtin: &'a [u8],
    out: &mut Vec<u8>,
    notice: &mut dyn FnMut(Notice<'a>),
) -> Result<(), BinError> {
    let mut bin = IndexBuilder::new();
    let mut rest = modules_builtin;
    while !rest.is_empty() {
        let window = rest.get(..rest.len().min(FGETS_MAX)).unwrap_or_default();
        let len = window.iter().position(|&b| b == b'\n').map_or(window.len(), |i| i + 1);
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let line = chunk.get(..chunk.iter().position(|&b| b == 0).unwrap_or(chunk.len()));
        let line = line.unwrap_or_default();
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            notice(Notice::InvalidBuiltinLine(line));
            continue;
        }
        insert(&mut bin, &module_name(line), b"", 0)?;
    }
    write(bin, out)
}

/// Appends `modules.builtin.alias.bin` built from `modules.builtin.modinfo` (NUL-terminated
/// `module.key=value` records): each non-empty `alias` value, normalised like module aliases, with
/// the module name as value and priority 0. kmod's reader skips a record without a `.`, and a
/// record with a `.` but no `=` makes it skip the following record too.
pub fn write_builtin_alias_bin<'a>(
    modinfo: &'a [u8],
    out: &mut Vec<u8>,
    notice: &mut dyn FnMut(Notice<'a>),
) -> Result<(), BinError> {
    let mut bin = IndexBuilder::new();
    // The final NUL terminates the last record; it does not start an empty one.
    let body = modinfo.strip_suffix(b"\0").unwrap_or(modinfo);
    let mut records = body.split(|&b| b == 0);
    while let Some(record) = records.next() {
        let Some(dot) = record.iter().position(|&b| b == b'.') else {
            continue;
        };
        let Some(eq) = record.iter().skip(dot).position(|&b| b == b'=').map(|p| p + dot) else {
            records.next();
            continue;
        };
        let (Some(module), Some(key), Some(value)) =
            (record.get(..dot), record.get(dot + 1..eq), record.get(eq + 1..))
        else {
            continue;
        };
        if key != b"alias" || value.is_empty() {
            continue;
        }
        let Some(alias) = alias_key(value) else {
            notice(Notice::UnmatchedBracket(value));
            continue;
        };
        insert(&mut bin, &alias, module, 0)?;
    }
    write(bin, out)
}

/// Serialises a builtin index; kmod reports no duplicates in these.
fn write(mut bin: IndexBuilder, out: &mut Vec<u8>) -> Result<(), BinError> {
    bin.write(out).map_err(|error| BinError { error, text: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::reader::Index;
    use alloc::vec;

    fn dump(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        Index::parse(bytes)
            .unwrap()
            .entries()
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|v| v.text).collect()))
            .collect()
    }

    #[test]
    fn builtin_lines() {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        let input = b"kernel/fs/ext4/ext4.ko\n/bad\nkernel/a-b.ko\nkernel/nodot\nkernel/a-b.ko\n";
        write_builtin_bin(input, &mut out, &mut |n| bad.push(n)).unwrap();
        assert_eq!(bad, [Notice::InvalidBuiltinLine(b"/bad\n")]);
        assert_eq!(
            dump(&out),
            [
                (b"a_b".to_vec(), vec![b"".to_vec(), b"".to_vec()]),
                (b"ext4".to_vec(), vec![b"".to_vec()]),
                (b"nodot\n".to_vec(), vec![b"".to_vec()]),
            ]
        );
    }

    #[test]
    fn builtin_aliases_reverse_and_swallow() {
        let mut out = Vec::new();
        let input = b"a.alias=x-y\0b.alias=x-y\0c.alias=x-y\0nodot\0d.flag\0e.alias=swallowed\0\
                      f.alias=\0g.license=GPL\0h.alias=[a-b]\0";
        write_builtin_alias_bin(input, &mut out, &mut |_| {}).unwrap();
        assert_eq!(
            dump(&out),
            [
                (b"[a-b]".to_vec(), vec![b"h".to_vec()]),
                (b"x_y".to_vec(), vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]),
            ]
        );
    }
}
