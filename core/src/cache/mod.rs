//! A cache of what depmod keeps of each module file, so that a run on a tree that barely changed
//! reads only the files that changed.
//!
//! The cache maps a module file, identified by its path and its [`Stamp`] (device, inode, size,
//! modification and change times to the nanosecond), to its [`ModuleInfo`]. Only records read
//! without any error or anomaly are kept ([`ModuleInfo::is_clean`]); the others are read again
//! on every run, which also repeats their messages. A record is a function of the file's bytes
//! alone: everything the options and the configuration decide (priorities, `modules.order`,
//! `-E`/`-F`, `-P`, exclusions) is computed again on each run from the records.
//!
//! [`CacheWriter`] encodes records; [`Cache::parse`] checks a whole file once (header, checksum,
//! then every part, without trusting any count or offset) and then reads records in place:
//! [`Cache::get`] finds a path, [`Record::info`] makes its [`ModuleInfo`] (the record, read in
//! place).
//!
//! The cache also keeps the listings of the module tree's directories, each with the stamp the
//! directory had when it was listed ([`listing`], [`Cache::listing`]): a directory whose stamp
//! is unchanged holds the entries it held (adding, removing or renaming an entry changes its
//! change time), so the walk stats its module files without listing it.
//!
//! # Format (version [`FORMAT`])
//!
//! Integers are little-endian whatever the host; the header records the writer's byte order
//! anyway (stamps hold host-specific device numbers), and a file from a host of the other order is
//! rejected.
//!
//! ```text
//! header   magic "DMRSCACH", format u32, byte-order mark u32 (0x01020304 in the writer's order),
//!          file length u64, CRC-32 u32 of every other byte of the file, tail offset u32
//! program  u32 length + bytes: the writing program's identity (version and build)
//! tree     u32 length + bytes: the module directory the cache was written for
//! records  u32 count, each: u16 path length, path, stamp, u32 counts of aliases, softdeps,
//!          weakdeps, exports and imports; then each alias, softdep and weakdep as u16 length +
//!          bytes; each export as u32 symbol number; each import as u32 symbol number, the top
//!          bit set for a weak one
//! tail:
//! options  u32 length + bytes: the caller's own summary of its options (opaque here)
//! files    u32 count, each: u16 path length, path, stamp (other inputs and outputs, see below)
//! dirs     u32 count, each: u16 path length, path, stamp, u32 length + the encoded entries of
//!          the directory's listing ([`listing`])
//! symbols  u32 count, each: u32 end of its name in the pool, u32 CRC; then the pool: u32
//!          length + the names, each starting where the previous one ends
//! stamp    dev u64, ino u64, size u64, mtime seconds i64, ctime seconds i64, mtime nanoseconds
//!          u32, ctime nanoseconds u32 (48 bytes)
//! ```
//!
//! The records come before the symbols they use so that a writer appends them straight into
//! the file it builds; the header says where the tail starts.
//!
//! Symbols (a name with a CRC) are shared: most of a tree's needed symbols are a few thousand
//! kernel and module exports, each imported by many modules. Aliases are nearly all unique and
//! are stored inline. On Debian 12's amd64 tree (4,023 modules) the cache takes 3.1 MB, 0.60
//! times the eleven indexes together (0.59 on its 6.12 kernel's); checking it takes 0.65 ms,
//! checking it and making every record's `ModuleInfo` 1.2 ms (3.1 ms when records were rebuilt
//! into lists of their own rather than read in place; `core/examples/cache_timing.rs`).
//!
//! # Plugging it into the program
//!
//! - **Where.** In the output directory, beside the indexes (so that `-o` and read-only module
//!   trees work), written like them: a temporary file created exclusively there, renamed over the
//!   old cache. No flush is needed: a cache cut short by a crash fails its length or checksum and
//!   is ignored; concurrent runs each rename a complete file. A cache that cannot be written
//!   (full disk, read-only directory) is reported at `-v` and never fails the run; `-n` writes
//!   none. The name should match `modules.*.bin` (Debian's purge removes exactly those and the
//!   named indexes; mkinitcpio deletes every other `modules.*` file but keeps `*.bin`) without
//!   being one libkmod opens: `modules.cache.bin`, say. initramfs generators (dracut,
//!   initramfs-tools, mkinitcpio) run `depmod -b` on a fresh copy of the tree inside the image,
//!   without its indexes: a run whose output directory had no `modules.dep` before it writes no
//!   cache, so that none lands in an image (a cache pays off from the second run on anyway).
//! - **What invalidates it all.** Any [`Rejected`] reason (reported at `-v`, then a full run):
//!   another format or byte order, another build of the program ([`Identity::program`]: its
//!   version and a build identifier, such as its ELF build-id, so that a changed parser never
//!   trusts old records), another module directory ([`Identity::tree`], as the run spells it),
//!   a truncated or garbled file. Nothing else: records do not depend on the options.
//! - **Keys.** The walk stats each module it finds (`statx` at the directory's descriptor) and
//!   asks [`Cache::get`] for its path (the path the walk built, as [`crate::tree::Module::path`]
//!   holds it); a record whose [`Record::stamp`] equals the file's stamp gives the module's
//!   [`ModuleInfo`] ([`Record::info`]: the record itself, read in place) without opening the
//!   file. Any difference means the file is read: a new inode (a rename, `cp -a`, `tar`,
//!   `rsync -a`, a reinstall), a new change time (any write, even one that keeps the size and
//!   sets the modification time back with `touch -r`), a new size or modification time. The
//!   stamp written for a module read this run is `fstat` of the descriptor it was read from,
//!   taken before reading.
//! - **Directories.** The walk opens each directory below the top one as a path only (`O_PATH`,
//!   which reads nothing) and asks [`Cache::listing`] for it; when the directory's stamp is the
//!   one recorded, the recorded entries stand for `readdir`'s, and the module files among them
//!   are stamped as above. Otherwise, or without a listing, the directory is listed. The stamp
//!   recorded is `fstat` of the directory before it was read: an entry added, removed or renamed
//!   since moves its change time (and a directory replaced or mounted over has another inode or
//!   device). A listing with an entry whose type can change without the directory changing (a
//!   symbolic link) is not recorded, nor is the listing of the directory the cache and indexes
//!   are written to (each run changes it).
//! - **Racing writers.** A file changed within the clock tick in which it was stamped keeps its
//!   stamp: the writer only keeps records whose both times are older than `settled_before`,
//!   which the caller takes from the real-time clock before the walk starts, less a second (file
//!   times come from a coarse clock, and network file systems take the server's). A module
//!   written in the second before a run is read again by the next one.
//! - **Writing.** [`CacheWriter::update`] from the old cache (or [`CacheWriter::new`] without
//!   one), [`CacheWriter::keep`] for each record used this run (copied as it is),
//!   [`CacheWriter::add`] for each module read, then [`CacheWriter::finish`]. A record left out
//!   (a module removed or changed) is simply not kept. The encoding needs only the records and
//!   can run beside the outputs; the file is renamed into place after the indexes.
//! - **Skipping the outputs.** The indexes would come out byte for byte as the files in place,
//!   and generating them can be skipped, when every module the walk found came from the cache
//!   and the cache holds no other; the options summary ([`CacheWriter::set_options`]: the
//!   command line and the parsed depmod.d) is equal; every other input (`modules.order`,
//!   `modules.builtin`, `modules.builtin.modinfo`, the `-E`/`-F` file, each depmod.d file and
//!   directory) has the stamp recorded in [`Cache::files`]; so has each of the eleven indexes
//!   (stamped after the renames, so that an index edited or removed since is made again); and
//!   the run that wrote the cache printed nothing while making the outputs (a flag in the
//!   options summary), since a run must repeat its messages. The dependency pass still runs for
//!   its own messages when `-e` or `-v` asks for them. `modules.dep` need not be touched for
//!   `-A`: every cached module is older than the run that wrote the cache.

pub mod listing;
pub(crate) mod read;
mod write;

use core::ops::Range;

use crate::ModuleInfo;

pub use read::{Cache, Record, Rejected};
pub use write::{CacheWriter, NotCached, Sealed, TooLarge};

/// The first eight bytes of a cache file.
pub const MAGIC: [u8; 8] = *b"DMRSCACH";
/// The format version this code reads and writes.
pub const FORMAT: u32 = 2;
/// The byte-order mark, written in the writer's byte order.
const BYTE_ORDER: u32 = 0x0102_0304;
/// Bytes of the fixed header.
const HEADER: usize = 32;
/// Where the checksum lies in the header.
const CRC_AT: usize = 24;
/// Where the tail's offset lies in the header.
const TAIL_AT: usize = 28;
/// Bytes of an encoded [`Stamp`].
const STAMP: usize = 48;
/// The top bit of an import's symbol number: a weak symbol.
const WEAK: u32 = 1 << 31;

/// A time stamp of a file, to the nanosecond.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds.
    pub nsec: u32,
}

/// What identifies the contents of a file without reading it: a file whose stamp is unchanged
/// is taken to hold what it held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Device of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Last modification (can be set back, by `touch -r` for one).
    pub mtime: Time,
    /// Last change of the inode (cannot be set back; any write or rename moves it).
    pub ctime: Time,
}

impl Stamp {
    /// Whether both its times are older than `settled_before`: only such a stamp is recorded
    /// (see "Racing writers" above).
    pub fn is_settled(&self, settled_before: Time) -> bool {
        self.mtime < settled_before && self.ctime < settled_before
    }
}

/// What a cache must have been written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'a> {
    /// The writing program: its version and build.
    pub program: &'a [u8],
    /// The module directory.
    pub tree: &'a [u8],
}

/// The checksum of a cache file: CRC-32 of every byte but the checksum's own four.
fn checksum(file: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(file.get(..CRC_AT).unwrap_or_default());
    crc.update(file.get(CRC_AT + 4..).unwrap_or_default());
    crc.finalize()
}

/// Stores the checksum of `file` in its header again, after the file was edited (for tests and
/// fuzzing, so that the checks behind the checksum can be reached). Does nothing to a file
/// shorter than the header.
pub fn reseal(file: &mut [u8]) {
    let crc = checksum(file);
    if let Some(field) = file.get_mut(CRC_AT..CRC_AT + 4) {
        field.copy_from_slice(&crc.to_le_bytes());
    }
}

/// The seeds of the hashes of module paths and of directory paths.
const MODULES: u64 = 0;
const DIRS: u64 = 1;

/// Reads fields in order, each failing with where it was and what it is.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, what: &'static str) -> Rejected {
        Rejected::Corrupt { at: self.at as u64, what }
    }

    fn left(&self) -> usize {
        self.data.len().saturating_sub(self.at)
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Rejected> {
        let end = self.at.checked_add(n).ok_or_else(|| self.corrupt(what))?;
        let b = self.data.get(self.at..end).ok_or_else(|| self.corrupt(what))?;
        self.at = end;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Rejected> {
        let b = self.bytes(N, what)?;
        b.try_into().map_err(|_| self.corrupt(what))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, Rejected> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, Rejected> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, Rejected> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Where a string with a 16-bit length lies.
    fn short(&mut self, what: &'static str) -> Result<Range<usize>, Rejected> {
        let len = self.u16(what)?;
        let start = self.at;
        self.bytes(usize::from(len), what)?;
        Ok(start..self.at)
    }

    /// A string with a 32-bit length.
    fn long(&mut self, what: &'static str) -> Result<&'a [u8], Rejected> {
        let len = self.u32(what)?;
        self.bytes(len as usize, what)
    }

    fn stamp(&mut self) -> Result<Stamp, Rejected> {
        let b: [u8; STAMP] = self.array("stamp")?;
        let word = |i: usize| {
            b.get(i..i + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
        };
        let half = |i: usize| {
            b.get(i..i + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes)
        };
        Ok(Stamp {
            dev: word(0),
            ino: word(8),
            size: word(16),
            mtime: Time { sec: word(24) as i64, nsec: half(40) },
            ctime: Time { sec: word(32) as i64, nsec: half(44) },
        })
    }

    /// A count of items taking at least `min` bytes each, checked against the rest of the data.
    fn count(&mut self, what: &'static str, min: usize) -> Result<usize, Rejected> {
        let at = self.at as u64;
        let count = self.u32(what)?;
        if (count as usize).saturating_mul(min) > self.left() {
            return Err(Rejected::TooMany { at, what, count: u64::from(count) });
        }
        Ok(count as usize)
    }
}

/// Where the parts of one record lie (offsets in the data it was read from, which is never
/// larger than 4 GiB).
#[derive(Clone, Copy, Debug, Default)]
struct Layout {
    /// The record's start (its path's length) and end.
    start: u32,
    end: u32,
    path: u32,
    path_len: u16,
    /// Aliases, softdeps and weakdeps: where each list starts, and how many strings it has.
    strings: [(u32, u32); 3],
    /// Symbol numbers of the exports and of the imports: where, and how many.
    exports: (u32, u32),
    imports: (u32, u32),
}

impl Layout {
    /// Reads the record at the cursor, checking that its parts lie inside the data (not what
    /// the symbol numbers are). The data is at most 4 GiB long.
    fn read(cur: &mut Cursor<'_>) -> Result<Self, Rejected> {
        let start = cur.at as u32;
        let path = cur.short("module path")?;
        cur.bytes(STAMP, "stamp")?;
        let mut counts = [0u32; 5];
        for c in &mut counts {
            *c = cur.u32("list length")?;
        }
        let [aliases, softdeps, weakdeps, exports, imports] = counts;
        let mut strings = [(0, 0); 3];
        for (slot, n) in strings.iter_mut().zip([aliases, softdeps, weakdeps]) {
            let at = cur.at;
            if (n as usize).saturating_mul(2) > cur.left() {
                let count = u64::from(n);
                return Err(Rejected::TooMany { at: at as u64, what: "strings", count });
            }
            for _ in 0..n {
                cur.short("string")?;
            }
            *slot = (at as u32, n);
        }
        let mut ids = |n: u32, what: &'static str| {
            let at = cur.at;
            if (n as usize).saturating_mul(4) > cur.left() {
                return Err(Rejected::TooMany { at: at as u64, what, count: u64::from(n) });
            }
            cur.bytes(n as usize * 4, what)?;
            Ok((at as u32, n))
        };
        let exports = ids(exports, "export")?;
        let imports = ids(imports, "import")?;
        Ok(Layout {
            start,
            end: cur.at as u32,
            path: path.start as u32,
            path_len: (path.end - path.start) as u16,
            strings,
            exports,
            imports,
        })
    }

    fn path(&self) -> Range<usize> {
        self.path as usize..self.path as usize + usize::from(self.path_len)
    }

    /// Where the stamp lies.
    fn stamp(&self) -> usize {
        self.path().end
    }
}

/// The symbol number at `at` in `data`.
fn id_at(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes)
}

#[cfg(test)]
mod tests;
