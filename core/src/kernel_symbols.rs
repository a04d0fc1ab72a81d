//! The kernel's own symbols, from `Module.symvers` (`-E`) or `System.map` (`-F`), read as kmod
//! reads them (its line buffers, tokenising and number parsing included).

use crate::bytes::{PATH_MAX, fgets_lines};

/// Something wrong with a line of a symbol file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolFileNotice<'a> {
    /// `Module.symvers`: the CRC field is not entirely a hexadecimal number
    /// (`%s:%u Invalid symbol version %s: %m`); `overflow` when it was too large (ERANGE).
    InvalidVersion { line: u32, text: &'a [u8], overflow: bool },
    /// `Module.symvers`: a CRC too large for 64 bits, accepted as `u64::MAX`. kmod says nothing,
    /// but strtoull leaves ERANGE in errno, which later `InvalidVersion` messages show.
    VersionOverflow { line: u32 },
    /// `System.map`: fewer than two spaces (`%s:%u: invalid line: %s`, the line with its newline).
    InvalidLine { line: u32, text: &'a [u8] },
}

/// kmod's line buffer for `Module.symvers`.
const SYMVERS_LINE: usize = 10240;

/// C `strtok` over spaces and tabs.
fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ' || b == b'\t').filter(|t| !t.is_empty())
}

/// C `strtoull(s, &end, 16)`: the value, whether it overflowed, and whether `end` reached the
/// end of `s`.
fn strtoull_hex(s: &[u8]) -> (u64, bool, bool) {
    let mut i = s.iter().take_while(|c| b" \t\n\x0b\x0c\r".contains(c)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let has_prefix = matches!(s.get(i..i + 2), Some([b'0', b'x' | b'X']))
        && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
    if has_prefix {
        i += 2;
    }
    let digits =
        s.get(i..).unwrap_or_default().iter().take_while(|c| c.is_ascii_hexdigit()).count();
    if digits == 0 {
        // Nothing converted: `end` is the start of the string.
        return (0, false, s.is_empty());
    }
    let mut value = 0u64;
    let mut overflow = false;
    for &c in s.get(i..i + digits).unwrap_or_default() {
        let d = u64::from((c as char).to_digit(16).unwrap_or(0));
        match value.checked_mul(16).and_then(|v| v.checked_add(d)) {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow {
        value = u64::MAX;
    } else if negative {
        value = value.wrapping_neg();
    }
    (value, overflow, i + digits == s.len())
}

/// Reads `Module.symvers`: calls `add(name, crc)` for each symbol of `vmlinux` (the name as
/// written; the caller strips `-P`), in file order.
pub fn parse_symvers<'a>(
    data: &'a [u8],
    mut add: impl FnMut(&'a [u8], u64),
    mut notice: impl FnMut(SymbolFileNotice<'a>),
) {
    for (n, line) in fgets_lines(data, SYMVERS_LINE).enumerate() {
        let mut t = tokens(line);
        let (Some(version), Some(name), Some(owner)) = (t.next(), t.next(), t.next()) else {
            continue;
        };
        // A three-field line keeps its newline on the third field, so it never matches.
        if owner != b"vmlinux" {
            continue;
        }
        let (crc, overflow, whole) = strtoull_hex(version);
        if overflow && whole {
            notice(SymbolFileNotice::VersionOverflow { line: n as u32 + 1 });
        }
        if !whole {
            notice(SymbolFileNotice::InvalidVersion {
                line: n as u32 + 1,
                text: version,
                overflow,
            });
            continue;
        }
        add(name, crc);
    }
}

/// Reads `System.map`: calls `add(name)` for each `__ksymtab_NAME` symbol (the third field, after
/// one `prefix` character is dropped), in file order. Lines with fewer than two spaces are
/// reported.
pub fn parse_system_map<'a>(
    data: &'a [u8],
    prefix: Option<u8>,
    mut add: impl FnMut(&'a [u8]),
    mut notice: impl FnMut(SymbolFileNotice<'a>),
) {
    for (n, line) in fgets_lines(data, PATH_MAX).enumerate() {
        let third =
            line.iter().position(|&b| b == b' ').and_then(|a| line.get(a + 1..)).and_then(|rest| {
                rest.iter().position(|&b| b == b' ').and_then(|b| rest.get(b + 1..))
            });
        let Some(mut symbol) = third else {
            notice(SymbolFileNotice::InvalidLine { line: n as u32 + 1, text: line });
            continue;
        };
        if let (Some(p), Some((&first, rest))) = (prefix, symbol.split_first()) {
            if first == p {
                symbol = rest;
            }
        }
        let Some(name) = symbol.strip_prefix(b"__ksymtab_") else { continue };
        let name = name.split(|&b| b == b'\n').next().unwrap_or(name);
        add(name);
    }
}

/// The symbols kmod adds after a symbol file: names the kernel resolves itself. `TOC.` is only
/// added when absent.
pub const FAKE_SYMBOLS: [&[u8]; 2] = [b"__this_module", b"_GLOBAL_OFFSET_TABLE_"];
/// PowerPC64 ABIv2's `.TOC.`, as kmod names it.
pub const TOC: &[u8] = b"TOC.";

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn symvers_lines() {
        let data = b"0x12345678\tfind_bit\tvmlinux\tEXPORT_SYMBOL\n\
                     0xabc\tmod_sym\tdrivers/x\tEXPORT_SYMBOL_GPL\n\
                     0x1\tthree_fields\tvmlinux\n\
                     zz\tbad_crc\tvmlinux\tEXPORT_SYMBOL\n\
                     0x11111111111111111\thuge\tvmlinux\tX\n\
                     1f  spaced   vmlinux x\n\
                     -1\tneg\tvmlinux\tX\n";
        let mut syms = Vec::new();
        let mut notes = Vec::new();
        parse_symvers(data, |n, c| syms.push((n, c)), |n| notes.push(n));
        // An overflowing CRC saturates without error (strtoull's end pointer is still at the end).
        let expected: [(&[u8], u64); 4] = [
            (b"find_bit", 0x1234_5678),
            (b"huge", u64::MAX),
            (b"spaced", 0x1f),
            (b"neg", u64::MAX),
        ];
        assert_eq!(syms, expected);
        assert_eq!(
            notes,
            [
                SymbolFileNotice::InvalidVersion { line: 4, text: b"zz", overflow: false },
                SymbolFileNotice::VersionOverflow { line: 5 }
            ]
        );
        let mut notes = Vec::new();
        parse_symvers(b"0x1ffffffffffffffffz\tx\tvmlinux\tX\n", |_, _| {}, |n| notes.push(n));
        let text = b"0x1ffffffffffffffffz";
        assert_eq!(notes, [SymbolFileNotice::InvalidVersion { line: 1, text, overflow: true }]);
    }

    #[test]
    fn system_map_lines() {
        let data = b"ffffffff81000000 T _text\n\
                     ffffffff82a0 r __ksymtab_printk\n\
                     ffffffff82a4 r ___ksymtab_prefixed\n\
                     nospace\n\
                     one space\n\
                     c d __ksymtab_last";
        let mut syms = Vec::new();
        let mut notes = Vec::new();
        parse_system_map(data, None, |n| syms.push(n), |n| notes.push(n));
        assert_eq!(syms, [&b"printk"[..], b"last"]);
        assert_eq!(
            notes,
            [
                SymbolFileNotice::InvalidLine { line: 4, text: b"nospace\n" },
                SymbolFileNotice::InvalidLine { line: 5, text: b"one space\n" }
            ]
        );
        // With -P _, one leading '_' of the symbol goes first.
        let mut syms = Vec::new();
        parse_system_map(data, Some(b'_'), |n| syms.push(n), |_| {});
        assert_eq!(syms, [&b"prefixed"[..]]);
    }

    #[test]
    fn strtoull_like_glibc() {
        assert_eq!(strtoull_hex(b"0x1f"), (0x1f, false, true));
        assert_eq!(strtoull_hex(b"0X1F"), (0x1f, false, true));
        assert_eq!(strtoull_hex(b"0x"), (0, false, false));
        assert_eq!(strtoull_hex(b"0xg"), (0, false, false));
        assert_eq!(strtoull_hex(b""), (0, false, true));
        assert_eq!(strtoull_hex(b"+a"), (10, false, true));
        assert_eq!(strtoull_hex(b"12\n"), (0x12, false, false));
    }
}
