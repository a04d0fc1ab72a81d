//! `fnmatch(pattern, string, 0)` as glibc does it for ASCII: `*`, `?`, bracket expressions
//! (ranges, `!`/`^` negation, `[:class:]`), and backslash escapes. `*` also matches `/`.

/// Whether `text` matches the shell pattern `pattern`.
pub fn fnmatch(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*` (sufficient for `*`, since
    // later stars subsume earlier ones).
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        match pattern.get(p) {
            Some(b'*') => {
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                star = Some((p, t));
                continue;
            }
            Some(&pc) => {
                if let Some(&tc) = text.get(t) {
                    let step = match pc {
                        b'?' => Some(1),
                        b'[' => match bracket(pattern, p + 1, tc) {
                            Some((true, len)) => Some(len + 1),
                            Some((false, _)) => None,
                            // No closing bracket: `[` is an ordinary character.
                            None => (tc == b'[').then_some(1),
                        },
                        b'\\' => match pattern.get(p + 1) {
                            Some(&esc) => (esc == tc).then_some(2),
                            None => (tc == b'\\').then_some(1),
                        },
                        _ => (pc == tc).then_some(1),
                    };
                    if let Some(len) = step {
                        p += len;
                        t += 1;
                        continue;
                    }
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        // Mismatch: let the last star eat one more character.
        match star {
            Some((sp, st)) if st < text.len() => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
}

/// Matches `c` against the bracket expression starting after `[` at `start`. Returns whether it
/// matched and the expression's length up to and including `]`, or `None` if it never closes.
fn bracket(pattern: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start;
    let negate = matches!(pattern.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &b = pattern.get(i)?;
        if b == b']' && !first {
            return Some((matched != negate, i + 1 - start));
        }
        first = false;
        if b == b'[' && pattern.get(i + 1) == Some(&b':') {
            let name_start = i + 2;
            let rest = pattern.get(name_start..)?;
            if let Some(end) = rest.windows(2).position(|w| w == b":]") {
                let name = rest.get(..end)?;
                matched |= class(name, c);
                i = name_start + end + 2;
                continue;
            }
        }
        let (lo, next) = if b == b'\\' { (*pattern.get(i + 1)?, i + 2) } else { (b, i + 1) };
        if pattern.get(next) == Some(&b'-') && pattern.get(next + 1).is_some_and(|&x| x != b']') {
            let hi_at = next + 1;
            let (hi, after) = match pattern.get(hi_at) {
                Some(b'\\') => (*pattern.get(hi_at + 1)?, hi_at + 2),
                Some(&h) => (h, hi_at + 1),
                None => return None,
            };
            matched |= lo <= c && c <= hi;
            i = after;
        } else {
            matched |= lo == c;
            i = next;
        }
    }
}

fn class(name: &[u8], c: u8) -> bool {
    match name {
        b"alpha" => c.is_ascii_alphabetic(),
        b"digit" => c.is_ascii_digit(),
        b"alnum" => c.is_ascii_alphanumeric(),
        b"upper" => c.is_ascii_uppercase(),
        b"lower" => c.is_ascii_lowercase(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'),
        b"xdigit" => c.is_ascii_hexdigit(),
        b"punct" => c.is_ascii_punctuation(),
        b"print" => (0x20..0x7f).contains(&c),
        b"graph" => c.is_ascii_graphic(),
        b"cntrl" => c.is_ascii_control(),
        b"blank" => c == b' ' || c == b'\t',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn like_glibc() {
        let yes: &[(&str, &str)] = &[
            (
                "pci:v00008086d*sv*sd*bc*sc*i*",
                "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00",
            ),
            ("*", ""),
            ("a*b*c", "axxbyyc"),
            ("a?c", "abc"),
            ("[a-c]x", "bx"),
            ("[!a-c]x", "dx"),
            ("[^a]", "b"),
            ("[]]", "]"),
            ("[a-]", "-"),
            ("[[:digit:]]z", "7z"),
            ("\\*", "*"),
            ("[", "["),
            ("a/*", "a/b/c"),
            (
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
                "usb:v1234p5678d0100dc00dsc00dp00ic08isc06ip50in00",
            ),
        ];
        for (p, t) in yes {
            assert!(fnmatch(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        let no: &[(&str, &str)] = &[
            ("a?c", "ac"),
            ("[a-c]x", "dx"),
            ("[!a]", "a"),
            ("abc", "abcd"),
            ("*d", "abc"),
            ("\\*", "a"),
            ("[[:alpha:]]", "1"),
        ];
        for (p, t) in no {
            assert!(!fnmatch(p.as_bytes(), t.as_bytes()), "{p} should not match {t}");
        }
    }
}
