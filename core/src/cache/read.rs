//! Reading a cache: the whole file checked once by [`Cache::parse`], then records read in place.
//! A recalled [`ModuleInfo`] is its record, still read in place: it holds on to the file it
//! shares with the others ([`Held`]).

use crate::bytes::Shared;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::WEAK;
use super::{BYTE_ORDER, CRC_AT, Cursor, FORMAT, HEADER, Identity, Layout, MAGIC, STAMP, TAIL_AT};
use super::{DIRS, MODULES, ModuleInfo, Stamp, checksum, id_at, listing};
use crate::bytes::eq;
use crate::hash::{Numbers, word_hash};

/// Why a cache file is not used. Every reason means the same to the caller (a full run); the
/// reason is for a `-v` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Shorter than its header, or than the length its header records.
    Truncated {
        /// Bytes of the file.
        len: u64,
        /// Bytes it should have.
        expected: u64,
    },
    /// Longer than the length its header records.
    TrailingBytes {
        /// Bytes of the file.
        len: u64,
        /// Bytes it should have.
        expected: u64,
    },
    /// It does not start with the cache's magic bytes.
    NotACache,
    /// Another format version (another version of this program wrote it).
    OtherFormat {
        /// The file's format version.
        format: u32,
    },
    /// It was written on a host of the other byte order.
    OtherByteOrder,
    /// Its checksum does not match its contents: it is garbled.
    Checksum {
        /// The checksum the header records.
        recorded: u32,
        /// The checksum of the contents.
        computed: u32,
    },
    /// Another build of the program wrote it.
    OtherProgram,
    /// It was written for another module directory.
    OtherTree,
    /// A field holds what no writer writes, or runs past the end of the file.
    Corrupt {
        /// Offset of the field in the file.
        at: u64,
        /// What the field is.
        what: &'static str,
    },
    /// A count is larger than what the rest of the file could hold.
    TooMany {
        /// Offset of the count in the file.
        at: u64,
        /// What is counted.
        what: &'static str,
        /// The count.
        count: u64,
    },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rejected::Truncated { len, expected } => {
                write!(f, "truncated: {len} bytes of {expected}")
            }
            Rejected::TrailingBytes { len, expected } => {
                write!(f, "{len} bytes where {expected} were written")
            }
            Rejected::NotACache => f.write_str("not a depmod-rs cache"),
            Rejected::OtherFormat { format } => {
                write!(f, "format {format}, not {FORMAT} (another version wrote it)")
            }
            Rejected::OtherByteOrder => f.write_str("written on a host of the other byte order"),
            Rejected::Checksum { recorded, computed } => {
                write!(f, "garbled: checksum {computed:#010x} where {recorded:#010x} was recorded")
            }
            Rejected::OtherProgram => f.write_str("written by another build of depmod"),
            Rejected::OtherTree => f.write_str("written for another module directory"),
            Rejected::Corrupt { at, what } => write!(f, "corrupt {what} at offset {at}"),
            Rejected::TooMany { at, what, count } => {
                write!(f, "{count} {what} at offset {at} cannot fit in the file")
            }
        }
    }
}

impl core::error::Error for Rejected {}

/// The symbol table: (end of the name in the pool, CRC) entries, then the pool of names, where
/// they lie in the cache file (the `data` each method is given).
#[derive(Clone, Copy, Debug, Default)]
struct Symbols {
    /// Where the entries start, and how many there are.
    entries: usize,
    count: usize,
    /// Where the pool starts.
    pool: usize,
}

impl Symbols {
    fn word(&self, data: &[u8], i: usize) -> u32 {
        id_at(data, self.entries + i * 4)
    }

    /// Where the name of symbol `n` lies in the data, and its CRC.
    fn get(&self, data: &[u8], n: u32) -> (Range<usize>, u64) {
        let n = n as usize;
        if n >= self.count {
            return (0..0, 0);
        }
        // The previous entry's end (or 0), then this entry's end and CRC, read at once.
        let at = self.entries + 8 * n;
        let words: [u8; 16] = match n {
            0 => data.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(
                [0; 16],
                |w: [u8; 8]| {
                    let mut all = [0; 16];
                    all[8..].copy_from_slice(&w);
                    all
                },
            ),
            _ => data.get(at - 8..at + 8).and_then(|w| w.try_into().ok()).unwrap_or([0; 16]),
        };
        let [s0, s1, s2, s3, _, _, _, _, e0, e1, e2, e3, c0, c1, c2, c3] = words;
        let start = u32::from_le_bytes([s0, s1, s2, s3]) as usize;
        let end = (u32::from_le_bytes([e0, e1, e2, e3]) as usize).max(start);
        (self.pool + start..self.pool + end, u64::from(u32::from_le_bytes([c0, c1, c2, c3])))
    }

    fn name<'a>(&self, data: &'a [u8], n: u32) -> (&'a [u8], u64) {
        let (at, crc) = self.get(data, n);
        (data.get(at).unwrap_or_default(), crc)
    }

    /// Reads the table, checking that names follow each other inside the pool.
    fn read(cur: &mut Cursor<'_>) -> Result<Self, Rejected> {
        let count = cur.count("symbols", 8)?;
        if count > WEAK as usize {
            return Err(cur.corrupt("symbol count"));
        }
        let entries = cur.at;
        cur.bytes(count * 8, "symbols")?;
        let pool_len = cur.long("symbol names")?.len();
        let table = Symbols { entries, count, pool: cur.at - pool_len };
        let mut end = 0;
        for i in 0..count {
            let next = table.word(cur.data, 2 * i);
            if next < end || next as usize > pool_len {
                let at = (entries + i * 8) as u64;
                return Err(Rejected::Corrupt { at, what: "symbol name end" });
            }
            end = next;
        }
        Ok(table)
    }
}

/// One module's record, read in place.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    file: &'a Shared,
    symbols: Symbols,
    layout: Layout,
}

/// Strings with 16-bit lengths, one after the other: where each lies.
#[derive(Clone, Debug)]
struct Spans<'a> {
    data: &'a [u8],
    at: usize,
    left: usize,
}

impl Iterator for Spans<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        self.left = self.left.checked_sub(1)?;
        // Checked when the file was parsed; an impossible short list gives empty strings.
        let len = self
            .data
            .get(self.at..self.at + 2)
            .map_or(0, |l| usize::from(u16::from_le_bytes(l.try_into().unwrap_or([0; 2]))));
        let start = (self.at + 2).min(self.data.len());
        self.at = (start + len).min(self.data.len());
        Some(start..self.at)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Spans<'_> {}

impl<'a> Record<'a> {
    fn data(&self) -> &'a [u8] {
        self.file
    }

    /// The module file's path.
    pub fn path(&self) -> &'a [u8] {
        path_at(self.data(), &self.layout)
    }

    /// The stamp the module file had when it was read.
    pub fn stamp(&self) -> Stamp {
        let mut cur = Cursor { data: self.data(), at: self.layout.stamp() };
        cur.stamp().unwrap_or_default()
    }

    /// Where the record lies in its file.
    pub(super) fn span(&self) -> core::ops::Range<usize> {
        self.layout.start as usize..self.layout.end as usize
    }

    /// Where the record's symbol numbers start from its start, and how many exports and
    /// imports there are.
    pub(super) fn ids(&self) -> (u32, u32, u32) {
        let l = &self.layout;
        (l.exports.0 - l.start, l.exports.1, l.imports.1)
    }

    /// Whether the record lies in `file` (the very bytes, not a copy).
    pub(super) fn is_in(&self, file: &[u8]) -> bool {
        core::ptr::eq(self.data(), file)
    }

    fn spans(&self, list: usize) -> Spans<'a> {
        let (at, left) = self.layout.strings.get(list).copied().unwrap_or_default();
        Spans { data: self.data(), at: at as usize, left: left as usize }
    }

    /// The strings of list `list` (0: aliases, 1: softdeps, 2: weakdeps).
    pub(crate) fn texts(&self, list: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        let data = self.data();
        self.spans(list).map(move |s| data.get(s).unwrap_or_default())
    }

    /// `alias=` values, in `.modinfo` order.
    pub fn aliases(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        self.texts(0)
    }

    /// `softdep=` values, in `.modinfo` order.
    pub fn softdeps(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        self.texts(1)
    }

    /// `weakdep=` values, in `.modinfo` order.
    pub fn weakdeps(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        self.texts(2)
    }

    fn numbers(&self, (at, n): (u32, u32)) -> impl ExactSizeIterator<Item = u32> + use<'a> {
        let (data, at) = (self.data(), at as usize);
        (0..n as usize).map(move |i| id_at(data, at + 4 * i))
    }

    /// Exported symbols with their CRCs, in table order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = (&'a [u8], u64)> + use<'a> {
        let (data, symbols) = (self.data(), self.symbols);
        self.numbers(self.layout.exports).map(move |id| symbols.name(data, id))
    }

    /// The cache's numbers of the needed symbols (see [`Cache::symbol_names`]), in the order of
    /// [`Record::imports`].
    pub(crate) fn import_ids(&self) -> impl ExactSizeIterator<Item = u32> + use<'a> {
        self.numbers(self.layout.imports).map(|id| id & !WEAK)
    }

    /// Needed symbols with their CRCs and whether they are weak, in kmod's order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = (&'a [u8], u64, bool)> + use<'a> {
        let (data, symbols) = (self.data(), self.symbols);
        self.numbers(self.layout.imports).map(move |id| {
            let (name, crc) = symbols.name(data, id & !WEAK);
            (name, crc, id & WEAK != 0)
        })
    }

    /// The module's [`ModuleInfo`], as it was read: this record, which it reads in place,
    /// holding on to the cache file.
    pub fn info(&self) -> ModuleInfo {
        let (file, symbols, layout) = (self.file.clone(), self.symbols, self.layout);
        ModuleInfo::recorded(Held { file, symbols, layout })
    }

    /// Reads and checks the record at the cursor, its symbol numbers included.
    fn check(cur: &mut Cursor<'a>, symbols: Symbols) -> Result<Layout, Rejected> {
        let layout = Layout::read(cur)?;
        let data = cur.data;
        // An export never has the weak bit (the count is below it, so the bit fails the test).
        for ((at, n), what, mask) in
            [(layout.exports, "export", u32::MAX), (layout.imports, "import", !WEAK)]
        {
            let at = at as usize;
            let corrupt = |i: usize| Rejected::Corrupt { at: (at + 4 * i) as u64, what };
            let ids = data.get(at..at + 4 * n as usize).ok_or_else(|| corrupt(0))?;
            let id = |w: &[u8]| w.try_into().map_or(u32::MAX, u32::from_le_bytes) & mask;
            if let Some(i) = ids.chunks_exact(4).position(|w| id(w) as usize >= symbols.count) {
                return Err(corrupt(i));
            }
        }
        Ok(layout)
    }
}

/// A record holding on to its cache file: what a recalled [`ModuleInfo`] reads its lists from.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    file: Shared,
    symbols: Symbols,
    layout: Layout,
}

impl Held {
    /// The record, read in place.
    pub(crate) fn record(&self) -> Record<'_> {
        Record { file: &self.file, symbols: self.symbols, layout: self.layout }
    }
}

/// Where one directory listing lies: its path, its stamp, and its encoded entries.
#[derive(Clone, Debug)]
struct DirLayout {
    path: Range<usize>,
    stamp: usize,
    entries: Range<usize>,
}

/// The path of the record laid out as `layout` in `data`.
fn path_at<'a>(data: &'a [u8], layout: &Layout) -> &'a [u8] {
    data.get(layout.path()).unwrap_or_default()
}

/// The path of the listing laid out as `dir` in `data`.
fn dir_path<'a>(data: &'a [u8], dir: &DirLayout) -> &'a [u8] {
    data.get(dir.path.clone()).unwrap_or_default()
}

/// A checked cache file.
#[derive(Clone, Debug)]
pub struct Cache<'a> {
    file: &'a Shared,
    options: &'a [u8],
    /// Where the file entries start, and how many there are.
    files: (usize, usize),
    /// The directory listings, in the order they were written, and their numbers by path.
    dirs: Vec<DirLayout>,
    dir_table: Numbers,
    symbols: Symbols,
    /// Where each record's parts lie, in the order they were written, and their numbers by path.
    records: Vec<Layout>,
    table: Numbers,
}

/// Bytes of a file entry but its path.
const FILE_ENTRY: usize = 2 + STAMP;
/// Bytes of a directory listing but its path and entries.
const DIR_ENTRY: usize = 2 + STAMP + 4;
/// Bytes of a record but its path and lists.
const RECORD: usize = 2 + STAMP + 5 * 4;

impl<'a> Cache<'a> {
    /// Checks `file` as a cache written for `identity`: header, checksum, then every part.
    pub fn parse(file: &'a Shared, identity: Identity<'_>) -> Result<Self, Rejected> {
        let data: &'a [u8] = file;
        let mut cur = Cursor { data, at: 0 };
        let len = data.len() as u64;
        if data.len() < HEADER {
            return Err(Rejected::Truncated { len, expected: HEADER as u64 });
        }
        if cur.array::<8>("magic")? != MAGIC {
            return Err(Rejected::NotACache);
        }
        let format = cur.u32("format")?;
        if format != FORMAT {
            return Err(Rejected::OtherFormat { format });
        }
        let order = u32::from_ne_bytes(cur.array("byte order")?);
        if order == BYTE_ORDER.swap_bytes() {
            return Err(Rejected::OtherByteOrder);
        } else if order != BYTE_ORDER {
            return Err(Rejected::Corrupt { at: 12, what: "byte-order mark" });
        }
        let expected = cur.u64("length")?;
        if expected > len {
            return Err(Rejected::Truncated { len, expected });
        } else if expected < len {
            return Err(Rejected::TrailingBytes { len, expected });
        }
        let recorded = cur.u32("checksum")?;
        let computed = checksum(data);
        if recorded != computed {
            return Err(Rejected::Checksum { recorded, computed });
        }
        if data.len() > u32::MAX as usize {
            return Err(Rejected::Corrupt { at: CRC_AT as u64 - 8, what: "length" });
        }
        let tail = cur.u32("tail offset")? as usize;
        if !eq(cur.long("program")?, identity.program) {
            return Err(Rejected::OtherProgram);
        }
        if !eq(cur.long("tree")?, identity.tree) {
            return Err(Rejected::OtherTree);
        }
        // The records run to the tail.
        let count_at = cur.at;
        let records = data.get(..tail).filter(|_| tail >= count_at);
        let Some(records) = records else {
            return Err(Rejected::Corrupt { at: TAIL_AT as u64, what: "tail offset" });
        };
        let mut rec = Cursor { data: records, at: count_at };
        let count = rec.count("records", RECORD)?;

        let mut cur = Cursor { data, at: tail };
        let options = cur.long("options")?;
        let file_count = cur.count("files", FILE_ENTRY)?;
        let files = (cur.at, file_count);
        for _ in 0..file_count {
            cur.short("file path")?;
            cur.stamp()?;
        }
        let dir_count = cur.count("directory listings", DIR_ENTRY)?;
        let mut dirs = Vec::with_capacity(dir_count);
        for _ in 0..dir_count {
            let path = cur.short("directory path")?;
            let stamp = cur.at;
            cur.stamp()?;
            let at = cur.at;
            let entries = cur.long("directory listing")?;
            if let Err(bad) = listing::check(entries) {
                let at = (at + 4 + bad) as u64;
                return Err(Rejected::Corrupt { at, what: "directory entry" });
            }
            dirs.push(DirLayout { path, stamp, entries: at + 4..cur.at });
        }
        let symbols = Symbols::read(&mut cur)?;
        if cur.left() > 0 {
            return Err(cur.corrupt("bytes after the symbol names"));
        }

        let mut cache = Cache {
            file,
            options,
            files,
            dirs,
            dir_table: Numbers::with_capacity(dir_count),
            symbols,
            records: Vec::with_capacity(count),
            table: Numbers::with_capacity(count),
        };
        for n in 0..count as u32 {
            let layout = Record::check(&mut rec, symbols)?;
            cache.records.push(layout);
            let records = &cache.records;
            let path_of = |m: u32| records.get(m as usize).map_or(&[][..], |l| path_at(data, l));
            let path = path_of(n);
            if !cache.table.insert_new(word_hash(path, MODULES), n, |m| eq(path_of(m), path)) {
                let at = u64::from(layout.start);
                return Err(Rejected::Corrupt { at, what: "module path recorded twice" });
            }
        }
        if rec.left() > 0 {
            return Err(rec.corrupt("bytes between the records and the tail"));
        }
        for n in 0..cache.dirs.len() as u32 {
            let dirs = &cache.dirs;
            let path_of = |m: u32| dirs.get(m as usize).map_or(&[][..], |d| dir_path(data, d));
            let path = path_of(n);
            if !cache.dir_table.insert_new(word_hash(path, DIRS), n, |m| eq(path_of(m), path)) {
                let at = dirs.get(n as usize).map_or(0, |d| d.path.start as u64);
                return Err(Rejected::Corrupt { at, what: "directory listed twice" });
            }
        }
        Ok(cache)
    }

    fn dir(&self, n: u32) -> Option<(&'a [u8], Stamp, &'a [u8])> {
        let data: &'a [u8] = self.file;
        let d = self.dirs.get(n as usize)?;
        let stamp = Cursor { data, at: d.stamp }.stamp().ok()?;
        Some((dir_path(data, d), stamp, data.get(d.entries.clone())?))
    }

    /// The listing recorded for the directory at `path` (as the walk spells it, with a final
    /// `/`): the directory's stamp when it was listed, and its entries
    /// ([`super::listing::entries`]). The stamp says whether it still describes the directory.
    pub fn listing(&self, path: &[u8]) -> Option<(Stamp, &'a [u8])> {
        let data: &'a [u8] = self.file;
        let path_of = |m: u32| self.dirs.get(m as usize).map_or(&[][..], |d| dir_path(data, d));
        let n = self.dir_table.find(word_hash(path, DIRS), |m| eq(path_of(m), path))?;
        self.dir(n).map(|(_, stamp, entries)| (stamp, entries))
    }

    /// Every directory listing (path, stamp, entries), in the order they were written.
    pub fn listings(&self) -> impl Iterator<Item = (&'a [u8], Stamp, &'a [u8])> + '_ {
        (0..self.dirs.len() as u32).filter_map(|n| self.dir(n))
    }

    fn record(&self, n: u32) -> Option<Record<'a>> {
        let layout = *self.records.get(n as usize)?;
        Some(Record { file: self.file, symbols: self.symbols, layout })
    }

    /// The record of the module file at `path`, if there is one. Its stamp says whether it
    /// still describes the file.
    pub fn get(&self, path: &[u8]) -> Option<Record<'a>> {
        let data: &'a [u8] = self.file;
        let path_of = |m: u32| self.records.get(m as usize).map_or(&[][..], |l| path_at(data, l));
        self.record(self.table.find(word_hash(path, MODULES), |m| eq(path_of(m), path))?)
    }

    /// The names of the symbols the records share, by their numbers: a recalled module's
    /// needed symbols are numbers into it ([`crate::ModuleInfo::recorded_import_ids`]), so that
    /// the dependency pass can look each name up once for all modules.
    pub fn symbol_names(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + use<'a> {
        let (symbols, data): (_, &'a [u8]) = (self.symbols, self.file);
        (0..symbols.count as u32).map(move |n| symbols.name(data, n).0)
    }

    /// Every record, in the order they were written.
    pub fn records(&self) -> impl Iterator<Item = Record<'a>> + '_ {
        (0..self.records.len() as u32).filter_map(|n| self.record(n))
    }

    /// Modules in the cache.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the cache holds no module.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The writer's summary of its options.
    pub fn options(&self) -> &'a [u8] {
        self.options
    }

    /// The other files recorded with their stamps, in the order they were added.
    pub fn files(&self) -> impl Iterator<Item = (&'a [u8], Stamp)> + use<'a> {
        let data: &'a [u8] = self.file;
        let mut cur = Cursor { data, at: self.files.0 };
        (0..self.files.1).map_while(move |_| {
            let path = cur.short("file").ok()?;
            Some((data.get(path)?, cur.stamp().ok()?))
        })
    }

    /// The symbol table, as (bytes of the entries, bytes of the names), for a writer updating
    /// this cache.
    pub(super) fn symbol_table(&self) -> (&'a [u8], &'a [u8]) {
        let (s, data): (_, &'a [u8]) = (self.symbols, self.file);
        let entries = data.get(s.entries..s.entries + 8 * s.count).unwrap_or_default();
        let end = if s.count == 0 { 0 } else { s.word(data, 2 * s.count - 2) as usize };
        let pool = data.get(s.pool..s.pool + end).unwrap_or_default();
        (entries, pool)
    }

    /// The file this cache was parsed from.
    pub(super) fn file(&self) -> &'a [u8] {
        self.file
    }
}
