//! Bounds-checked reads from byte slices, in the byte order the input declares.

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

/// Converts a file offset or size to `usize`, failing on hosts where it does not fit.
pub fn to_usize(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
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
    fn cstr_needs_a_nul() {
        assert_eq!(cstr_at(b"ab\0cd", 0), Some(&b"ab"[..]));
        assert_eq!(cstr_at(b"ab\0cd", 2), Some(&b""[..]));
        assert_eq!(cstr_at(b"ab\0cd", 3), None);
        assert_eq!(cstr_at(b"ab\0cd", 9), None);
    }
}
