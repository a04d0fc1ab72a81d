//! `modules.devname`: device nodes that load a module on first open.

use alloc::vec::Vec;

use super::{Index, push_decimal};

/// A module with a `devname:` alias but no `char-major-`/`block-major-` alias; kmod reports it
/// (`Module '%s' has devname (%s) but lacks major and minor information. Ignoring.`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevnameProblem<'a> {
    /// Module name.
    pub module: &'a [u8],
    /// The devname.
    pub devname: &'a [u8],
}

/// Appends `modules.devname` (nothing at all when no module qualifies) and returns the modules
/// that have a devname without a device number.
pub fn write_devname<'a>(index: &Index<'a>, out: &mut Vec<u8>) -> Vec<DevnameProblem<'a>> {
    let mut problems = Vec::new();
    let mut empty = true;
    for (m, info) in index.with_info() {
        let mut devname = None;
        let mut node = None;
        for alias in info.aliases() {
            if let Some(name) = alias.strip_prefix(b"devname:") {
                devname = Some(name);
            } else if let Some(n) = scan_major_minor(alias, b"char-major-") {
                node = Some((b'c', n));
            } else if let Some(n) = scan_major_minor(alias, b"block-major-") {
                node = Some((b'b', n));
            }
            if devname.is_some() && node.is_some() {
                break;
            }
        }
        match (devname, node) {
            (Some(devname), Some((kind, (major, minor)))) => {
                if empty {
                    out.extend_from_slice(b"# Device nodes to trigger on-demand module loading.\n");
                    empty = false;
                }
                out.extend_from_slice(m.name());
                out.push(b' ');
                out.extend_from_slice(devname);
                out.push(b' ');
                out.push(kind);
                push_decimal(out, major);
                out.push(b':');
                push_decimal(out, minor);
                out.push(b'\n');
            }
            (Some(devname), None) => problems.push(DevnameProblem { module: m.name(), devname }),
            _ => {}
        }
    }
    problems
}

/// C `sscanf(s, "<prefix>%u-%u", ...) == 2`: the two numbers, with `%u`'s leniency (leading
/// white space, a sign, wrap-around of negative and oversized values); trailing text is ignored.
fn scan_major_minor(s: &[u8], prefix: &[u8]) -> Option<(u32, u32)> {
    let rest = s.strip_prefix(prefix)?;
    let (major, rest) = scan_u32(rest)?;
    let rest = rest.strip_prefix(b"-")?;
    let (minor, _) = scan_u32(rest)?;
    Some((major, minor))
}

/// One `%u` conversion: glibc parses an unsigned long (saturating on overflow), negates it for a
/// leading `-`, and stores the low 32 bits.
fn scan_u32(s: &[u8]) -> Option<(u32, &[u8])> {
    let start = s.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)).unwrap_or(s.len());
    let mut rest = s.get(start..)?;
    let negative = match rest.first() {
        Some(b'-') => true,
        Some(b'+') => false,
        _ => return digits(rest).map(|(v, r)| (v as u32, r)),
    };
    rest = rest.get(1..)?;
    let (value, rest) = digits(rest)?;
    let value = if negative { value.wrapping_neg() } else { value };
    Some((value as u32, rest))
}

fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let value = s.get(..n)?.iter().fold(0u64, |acc, &d| {
        acc.checked_mul(10).and_then(|a| a.checked_add(u64::from(d - b'0'))).unwrap_or(u64::MAX)
    });
    Some((value, s.get(n..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanf_leniency() {
        assert_eq!(scan_major_minor(b"char-major-10-229", b"char-major-"), Some((10, 229)));
        assert_eq!(scan_major_minor(b"char-major- 10- +2x", b"char-major-"), Some((10, 2)));
        assert_eq!(scan_major_minor(b"char-major-1--1", b"char-major-"), Some((1, u32::MAX)));
        assert_eq!(scan_major_minor(b"char-major-4294967296-1", b"char-major-"), Some((0, 1)));
        assert_eq!(
            scan_major_minor(b"char-major-99999999999999999999999-1", b"char-major-"),
            Some((u32::MAX, 1))
        );
        assert_eq!(scan_major_minor(b"char-major-10", b"char-major-"), None);
        assert_eq!(scan_major_minor(b"char-major-10-*", b"char-major-"), None);
        assert_eq!(scan_major_minor(b"char-major-x-1", b"char-major-"), None);
    }
}
