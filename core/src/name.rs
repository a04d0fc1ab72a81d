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
pub fn alias_key_into(alias: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut in_brackets = false;
    for &b in alias {
        match b {
            _ if in_brackets => in_brackets = b != b']',
            b'-' => {
                out.push(b'_');
                continue;
            }
            b']' => return false,
            b'[' => in_brackets = true,
            _ => {}
        }
        out.push(b);
    }
    !in_brackets
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
}
