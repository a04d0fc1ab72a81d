//! Alias matching as modprobe does it: `fnmatch(3)` patterns over normalised names.

/// kmod's module-name form: `-` becomes `_`.
pub fn module_name(name: &str) -> String {
    name.replace('-', "_")
}

/// kmod's `alias_normalize`: `-` becomes `_` except inside `[...]`, where it is a range.
pub fn alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// `fnmatch(pattern, text, 0)` for the patterns found in `modules.alias`: `*`, `?` and bracket
/// classes with ranges and `!`/`^` negation.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // The classic one-backtrack-point walk: linear for the few `*` of real aliases, where the
    // naive recursion would be exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = t.get(ti) {
        if p.get(pi) == Some(&'*') {
            star = Some((pi + 1, ti));
            pi += 1;
            continue;
        }
        if let Some(next) = one(&p, pi, c) {
            pi = next;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Whether the pattern element at `pi` (not `*`) matches `c`; if so, the index after it.
fn one(p: &[char], pi: usize, c: char) -> Option<usize> {
    match p.get(pi)? {
        '?' => Some(pi + 1),
        '[' => match class(&p[pi + 1..], c) {
            Some((hit, len)) => hit.then_some(pi + 1 + len),
            None => (c == '[').then_some(pi + 1),
        },
        &lit => (lit == c).then_some(pi + 1),
    }
}

/// Matches `c` against a bracket class whose `[` was just before `p`: whether it is a member
/// and the class's length up to and including its `]`, or `None` when no `]` closes it (then
/// the `[` is literal).
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let negated = matches!(p.first(), Some('!' | '^'));
    let start = usize::from(negated);
    // A `]` right after the opening (or the negation) is a member, not the end.
    let close = start + 1 + p.get(start + 1..)?.iter().position(|&x| x == ']')?;
    let body = p.get(start..close)?;
    let mut i = 0;
    let mut hit = false;
    while let Some(&first) = body.get(i) {
        match (body.get(i + 1), body.get(i + 2)) {
            (Some('-'), Some(&last)) => {
                hit |= first <= c && c <= last;
                i += 3;
            }
            _ => {
                hit |= first == c;
                i += 1;
            }
        }
    }
    Some((hit != negated, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_subset() {
        let e1000 = "pci:v00008086d0000100Esv*sd*bc*sc*i*";
        assert!(matches(e1000, "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"));
        assert!(!matches(e1000, "pci:v00008086d0000100Fsv00001AF4sd00001100bc02sc00i00"));
        assert!(matches("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(matches("a[0-9]c", "a5c"));
        assert!(!matches("a[!0-9]c", "a5c"));
        assert!(matches("a[]]c", "a]c"));
        assert!(matches("a[x", "a[x"));
        assert!(matches("?*", "x"));
        assert!(!matches("?*", ""));
        assert!(matches("*a*b", "xaxxab"));
        assert!(!matches("*a*b", "xaxxa"));
        assert!(matches("a*", "a"));
    }

    #[test]
    fn normalisation() {
        assert_eq!(module_name("virtio-rng"), "virtio_rng");
        assert_eq!(alias("crypto-crc32c"), "crypto_crc32c");
        assert_eq!(alias("dmi*:pn[A-Z]-x"), "dmi*:pn[A-Z]_x");
    }
}
