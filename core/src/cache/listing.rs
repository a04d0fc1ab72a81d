//! Directory listings in the cache: what a directory held when it was last listed, so that a
//! run whose directories did not change stats its module files without listing them again.
//!
//! A listing holds the entries the walk takes, in `readdir` order: each module file (a regular
//! file with a module extension, as `readdir` typed it) and each directory. Nothing else is
//! recorded: other regular files are of no interest, and a directory with an entry of any other
//! type (a symbolic link, whose target can change while the directory does not, or an entry
//! `readdir` left untyped) is not recorded at all. The names `build` and `source` are left out,
//! as the walk skips them; exclusions of the configuration are applied when a listing is used.
//!
//! Encoded, each entry is a kind byte (0: module file, 1: directory), a length byte and the name
//! (1 to 255 bytes, never `.` or `..`, without `/` or NUL: a name the cache gives is opened
//! relative to its directory).

use alloc::vec::Vec;

/// What a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// A module file.
    Module,
    /// A directory.
    Directory,
}

/// Whether `name` can be recorded: a name within a directory.
fn good_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= usize::from(u8::MAX)
        && name != b"."
        && name != b".."
        && !name.iter().any(|&c| c == b'/' || c == 0)
}

/// An encoded listing, built entry by entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListingBuf {
    bytes: Vec<u8>,
    /// An entry could not be encoded: the listing cannot be recorded.
    bad: bool,
}

impl ListingBuf {
    /// An empty listing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an entry. A name that cannot be recorded makes the whole listing one that
    /// [`ListingBuf::encoded`] does not give.
    pub fn push(&mut self, kind: Listed, name: &[u8]) {
        if !good_name(name) {
            self.bad = true;
            return;
        }
        self.bytes.push(match kind {
            Listed::Module => 0,
            Listed::Directory => 1,
        });
        self.bytes.push(name.len() as u8);
        self.bytes.extend_from_slice(name);
    }

    /// Marks the listing as one that cannot be recorded (an entry of another type).
    pub fn spoil(&mut self) {
        self.bad = true;
    }

    /// The encoded entries, unless one could not be encoded.
    pub fn encoded(&self) -> Option<&[u8]> {
        (!self.bad).then_some(&self.bytes[..])
    }
}

/// The entries of an encoded listing, in order. Stops at the first malformed entry (which
/// [`check`] rejects, so that a parsed cache never has one).
pub fn entries(encoded: &[u8]) -> Entries<'_> {
    Entries { rest: encoded }
}

/// Iterator over an encoded listing's entries.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Listed, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, rest) = self.rest.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let kind = match kind {
            0 => Listed::Module,
            1 => Listed::Directory,
            _ => return None,
        };
        let name = rest.get(..usize::from(len)).filter(|name| good_name(name))?;
        self.rest = rest.get(usize::from(len)..).unwrap_or_default();
        Some((kind, name))
    }
}

/// Whether `encoded` is a well-formed listing: every entry has a known kind and a name that can
/// be recorded, and nothing is left over. Returns where the first bad entry starts.
pub fn check(encoded: &[u8]) -> Result<(), usize> {
    let mut iter = entries(encoded);
    while iter.next().is_some() {}
    match iter.rest.is_empty() {
        true => Ok(()),
        false => Err(encoded.len() - iter.rest.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_and_refuse_what_cannot_be_opened_in_place() {
        let mut buf = ListingBuf::new();
        buf.push(Listed::Module, b"a.ko");
        buf.push(Listed::Directory, b"net");
        buf.push(Listed::Module, b"b.ko.xz");
        let encoded = buf.encoded().unwrap().to_vec();
        assert_eq!(check(&encoded), Ok(()));
        let got: Vec<_> = entries(&encoded).collect();
        assert_eq!(
            got,
            [
                (Listed::Module, &b"a.ko"[..]),
                (Listed::Directory, &b"net"[..]),
                (Listed::Module, &b"b.ko.xz"[..])
            ]
        );
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            let mut buf = ListingBuf::new();
            buf.push(Listed::Module, b"ok.ko");
            buf.push(Listed::Directory, bad);
            assert_eq!(buf.encoded(), None, "{bad:?}");
        }
        let mut spoilt = ListingBuf::new();
        spoilt.spoil();
        assert_eq!(spoilt.encoded(), None);
        assert_eq!(ListingBuf::new().encoded(), Some(&[][..]));
    }

    #[test]
    fn malformed_listings_are_found() {
        // Kind 2; a name running past the end; a name with a slash; a lone kind byte.
        for (bad, at) in
            [(&[2u8, 1, b'a'][..], 0), (&[0, 5, b'a'][..], 0), (&[1, 3, b'a', b'/', b'b'][..], 0)]
        {
            assert_eq!(check(bad), Err(at), "{bad:?}");
        }
        assert_eq!(check(&[0, 1, b'a', 0]), Err(3));
        assert_eq!(entries(&[0, 1, b'a', 7, 1, b'b']).count(), 1);
    }
}
