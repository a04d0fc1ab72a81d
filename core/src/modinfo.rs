//! `.modinfo`: NUL-separated `key=value` strings.

/// One `.modinfo` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Text before the first `=`, or the whole string when it has none.
    pub key: &'a [u8],
    /// Text after the first `=`, or empty.
    pub value: &'a [u8],
}

/// The records of a `.modinfo` section, in order, as libkmod splits them: leading NULs skipped,
/// runs of NULs separate strings, a final string without its NUL still counts, and a section
/// with at most one byte after the leading NULs has no records.
pub fn records(section: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let start = section.iter().position(|&b| b != 0).unwrap_or(section.len());
    let body = if section.len().saturating_sub(start) <= 1 {
        &[][..]
    } else {
        section.get(start..).unwrap_or_default()
    };
    body.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| {
        match s.iter().position(|&b| b == b'=') {
            Some(eq) => Record {
                key: s.get(..eq).unwrap_or_default(),
                value: s.get(eq + 1..).unwrap_or_default(),
            },
            None => Record { key: s, value: &[] },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn pairs(section: &[u8]) -> Vec<(&[u8], &[u8])> {
        records(section).map(|r| (r.key, r.value)).collect()
    }

    #[test]
    fn splits_like_libkmod() {
        assert_eq!(
            pairs(b"\0\0alias=a:b=c\0\0\0flag\0softdep=pre: x"),
            [(&b"alias"[..], &b"a:b=c"[..]), (b"flag", b""), (b"softdep", b"pre: x")]
        );
        assert_eq!(pairs(b"=v\0"), [(&b""[..], &b"v"[..])]);
    }

    #[test]
    fn tiny_sections_have_no_records() {
        assert!(pairs(b"").is_empty());
        assert!(pairs(b"\0\0\0").is_empty());
        assert!(pairs(b"\0\0a").is_empty());
        assert_eq!(pairs(b"\0ab"), [(&b"ab"[..], &b""[..])]);
    }
}
