//! The "newc" cpio format the kernel unpacks into its initial root file system.
//!
//! Each entry is a 110-byte ASCII header, the NUL-terminated name padded to four bytes, then the
//! data padded to four bytes; a `TRAILER!!!` entry ends the archive. Owners are root and times
//! are zero, so the same inputs always give the same bytes.

use std::io::{self, Write};

/// File type bits of `st_mode`, as the header stores them.
pub const S_IFDIR: u32 = 0o040_000;
/// A regular file.
pub const S_IFREG: u32 = 0o100_000;
/// A symbolic link (its data is the target).
pub const S_IFLNK: u32 = 0o120_000;
/// A character device.
pub const S_IFCHR: u32 = 0o020_000;

/// One archive member, without its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Path inside the archive, without a leading `/`.
    pub name: &'a str,
    /// File type and permission bits.
    pub mode: u32,
    /// Device number, for device nodes.
    pub rdev: (u32, u32),
}

/// Writes entries to `W`, numbering inodes itself.
pub struct Writer<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts an archive.
    pub fn new(out: W) -> Self {
        Writer { out, next_ino: 1, written: 0 }
    }

    /// Appends one entry with its data (a link target for symlinks, nothing for directories).
    pub fn entry(&mut self, h: &Header<'_>, data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: {} bytes is too large for cpio", h.name, data.len()),
            )
        })?;
        let nlink = if h.mode & 0o170_000 == S_IFDIR { 2 } else { 1 };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.raw(h.name, ino, h.mode, nlink, size, h.rdev)?;
        self.put(data)?;
        self.pad()
    }

    /// Writes the trailer and returns the sink and the archive's size in bytes.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.raw("TRAILER!!!", 0, 0, 1, 0, (0, 0))?;
        self.pad()?;
        Ok((self.out, self.written))
    }

    fn raw(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let namesize = name.len() + 1;
        // Fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check.
        let header = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
            0, 0, 0, 0, 0, rdev.0, rdev.1, 0
        );
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_then_trailer() {
        let mut w = Writer::new(Vec::new());
        let h = Header { name: "init", mode: S_IFREG | 0o755, rdev: (0, 0) };
        w.entry(&h, b"#!/bin/sh\n").unwrap();
        let (bytes, size) = w.finish().unwrap();
        assert_eq!(size, bytes.len() as u64);
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [1, 0o100_755, 0, 0, 1, 0, 10, 0, 0, 0, 0, 5, 0];
        let mut want: String = "070701".into();
        for f in fields {
            want.push_str(&format!("{f:08x}"));
        }
        assert_eq!(&bytes[..110], want.as_bytes());
        // Name "init\0" ends at 115, padded to 116; data ends at 126, padded to 128.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(&bytes[126..128], b"\0\0");
        assert_eq!(&bytes[128..134], b"070701");
        assert!(bytes[128..].windows(11).any(|w| w == b"TRAILER!!!\0"));
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn device_numbers_and_symlinks() {
        let mut w = Writer::new(Vec::new());
        let dev = Header { name: "dev/console", mode: S_IFCHR | 0o600, rdev: (5, 1) };
        w.entry(&dev, b"").unwrap();
        let (bytes, _) = w.finish().unwrap();
        let field = |i: usize| &bytes[6 + 8 * i..14 + 8 * i];
        assert_eq!(field(9), b"00000005");
        assert_eq!(field(10), b"00000001");
        assert_eq!(field(1), b"00002180");
    }
}
