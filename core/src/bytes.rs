//! Bounds-checked reads from byte slices, in the byte order the input declares; and [`Shared`],
//! bytes with several owners.

/// Byte order of multi-byte fields, taken from the input (an ELF file's `e_ident`), never the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    /// Least significant byte first (`ELFDATA2LSB`).
    Little,
    /// Most significant byte first (`ELFDATA2MSB`).
    Big,
}

impl Endian {
    /// Reads an unsigned integer of `N` bytes (at most 8) from the front of `bytes`.
    fn read<const N: usize>(self, bytes: &[u8], offset: usize) -> Option<u64> {
        let raw: [u8; N] = bytes.get(offset..offset.checked_add(N)?)?.try_into().ok()?;
        let mut value = 0u64;
        match self {
            Endian::Big => raw.iter().for_each(|&b| value = (value << 8) | u64::from(b)),
            Endian::Little => raw.iter().rev().for_each(|&b| value = (value << 8) | u64::from(b)),
        }
        Some(value)
    }

    /// The `u16` at `offset`, or `None` past the end.
    pub fn u16(self, bytes: &[u8], offset: usize) -> Option<u16> {
        self.read::<2>(bytes, offset).map(|v| v as u16)
    }

    /// The `u32` at `offset`, or `None` past the end.
    pub fn u32(self, bytes: &[u8], offset: usize) -> Option<u32> {
        self.read::<4>(bytes, offset).map(|v| v as u32)
    }

    /// The `u64` at `offset`, or `None` past the end.
    pub fn u64(self, bytes: &[u8], offset: usize) -> Option<u64> {
        self.read::<8>(bytes, offset)
    }

    /// A word of the file's class: 4 bytes for ELF32, 8 for ELF64.
    pub fn word(self, bytes: &[u8], offset: usize, wide: bool) -> Option<u64> {
        if wide { self.u64(bytes, offset) } else { self.u32(bytes, offset).map(u64::from) }
    }
}

/// The NUL-terminated string starting at `offset` (without its NUL), or `None` when `offset` is
/// out of range or no NUL follows it inside `bytes`.
pub fn cstr_at(bytes: &[u8], offset: usize) -> Option<&[u8]> {
    let tail = bytes.get(offset..)?;
    let len = memchr0(tail)?;
    tail.get(..len)
}

/// Position of the first NUL byte.
pub fn memchr0(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(0, bytes)
}

/// The lines C's `fgets(buf, size, fp)` loop reads from `data`: at most `size - 1` bytes each,
/// up to and including a newline, each seen as a C string (cut at its first NUL). A line longer
/// than the buffer comes in several pieces, each counted as a line.
pub fn fgets_lines(data: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let max = size.saturating_sub(1).max(1);
    let mut rest = data;
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let window = rest.get(..rest.len().min(max)).unwrap_or_default();
        let len = memchr::memchr(b'\n', window).map_or(window.len(), |i| i + 1);
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        chunk.get(..memchr0(chunk).unwrap_or(chunk.len()))
    })
}

/// Byte-string order (as `memcmp`, then length), eight bytes at a time. The hot comparisons go
/// through this rather than the C library's `memcmp`: musl's compares a byte at a time (the
/// static builds replace it, `bin/native/memcmp.c`, but other users of this library may link
/// it), and this loop is inlined where the short names and keys compared here would pay for a
/// call. With slice comparisons at its 13 call sites instead, a first run of Debian's amd64 tree
/// took 2.4% more instructions (callgrind, 596.0 M against 610.1 M, with the replaced memcmp).
#[inline]
pub fn cmp(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let x = u64::from_be_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_be_bytes(y.try_into().unwrap_or_default());
        if x != y {
            return x.cmp(&y);
        }
    }
    let done = a.len().min(b.len()) / 8 * 8;
    let (ra, rb) = (a.get(done..).unwrap_or_default(), b.get(done..).unwrap_or_default());
    for (x, y) in ra.iter().zip(rb) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Byte-string equality, eight bytes at a time (see [`cmp`]).
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && cmp(a, b) == core::cmp::Ordering::Equal
}

/// Whether `a` starts with `prefix` (see [`cmp`]).
#[inline]
pub fn starts_with(a: &[u8], prefix: &[u8]) -> bool {
    a.get(..prefix.len()).is_some_and(|head| eq(head, prefix))
}

/// `PATH_MAX`, the buffer size of most of kmod's line reads.
pub const PATH_MAX: usize = 4096;

/// Converts a file offset or size to `usize`, failing on hosts where it does not fit.
pub fn to_usize(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

/// Bytes many owners share: a cache file, read into memory or mapped, which the modules recalled
/// from it read in place. Cloning it takes another reference.
#[derive(Clone)]
pub struct Shared(alloc::sync::Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Shared {
    /// Shares `owner`'s bytes (a `Vec<u8>`, a file mapping).
    pub fn new(owner: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        Shared(alloc::sync::Arc::new(owner))
    }
}

impl From<alloc::vec::Vec<u8>> for Shared {
    fn from(bytes: alloc::vec::Vec<u8>) -> Self {
        Shared::new(bytes)
    }
}

impl core::ops::Deref for Shared {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl core::fmt::Debug for Shared {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Shared({} bytes)", self.len())
    }
}

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Endian::Little.u16(&b, 0), Some(0x0201));
        assert_eq!(Endian::Big.u16(&b, 0), Some(0x0102));
        assert_eq!(Endian::Little.u32(&b, 4), Some(0x0807_0605));
        assert_eq!(Endian::Big.u64(&b, 0), Some(0x0102_0304_0506_0708));
        assert_eq!(Endian::Big.word(&b, 4, false), Some(0x0506_0708));
    }

    #[test]
    fn reads_past_the_end_fail() {
        let b = [1, 2, 3];
        assert_eq!(Endian::Little.u32(&b, 0), None);
        assert_eq!(Endian::Little.u16(&b, 2), None);
        assert_eq!(Endian::Little.u16(&b, usize::MAX), None);
    }

    #[test]
    fn compares_like_slices() {
        let words: [&[u8]; 10] = [
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefghi",
            b"abcdefgi",
            b"abcdefgh\x80",
            b"b",
            b"abcdefghabcdefgh",
            b"\xff",
        ];
        for a in words {
            for b in words {
                assert_eq!(cmp(a, b), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(eq(a, b), a == b);
                assert_eq!(starts_with(a, b), a.starts_with(b));
            }
        }
    }

    #[test]
    fn fgets_pieces() {
        let lines: alloc::vec::Vec<&[u8]> = fgets_lines(b"ab\ncdefg\nh\0i\n\nj", 4).collect();
        // "h\0i" fills the buffer; its string ends at the NUL; then the two newlines.
        assert_eq!(lines, [&b"ab\n"[..], b"cde", b"fg\n", b"h", b"\n", b"\n", b"j"]);
    }

    #[test]
    fn cstr_needs_a_nul() {
        assert_eq!(cstr_at(b"ab\0cd", 0), Some(&b"ab"[..]));
        assert_eq!(cstr_at(b"ab\0cd", 2), Some(&b""[..]));
        assert_eq!(cstr_at(b"ab\0cd", 3), None);
        assert_eq!(cstr_at(b"ab\0cd", 9), None);
    }
}
