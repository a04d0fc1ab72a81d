//! Encoding a cache: records appended one by one, symbols shared through a table, the file put
//! together and sealed by [`CacheWriter::finish`].
//!
//! A writer started from the previous cache ([`CacheWriter::update`]) takes over its symbol
//! table, so that a record kept from it is copied as it is, and new symbols are added after the
//! old ones. When more than an eighth of the old records were left out, [`CacheWriter::finish`]
//! numbers the symbols again in the order the records use them, dropping those no record uses
//! any more: the file is then byte for byte what a new writer makes of the same records.
//!
//! Records kept as they are stay where they are until the file is written: the writer notes
//! which runs of the old file go where, and [`Sealed`] hands the file over as its parts (the
//! new bytes and those runs), for the caller to write one after the other. A re-run of Debian
//! 12's amd64 tree that removes one module keeps 2.3 MB of records: copied into the new file's
//! buffer, they took 570 of the run's 3,870 page faults.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::{BYTE_ORDER, CRC_AT, Cursor, FORMAT, HEADER, Identity, MAGIC, Record, Stamp};
use super::{DIRS, MODULES, ModuleInfo, TAIL_AT, Time, WEAK, id_at, listing};
use crate::cache::Cache;
use crate::hash::{Numbers, word_hash};

/// Why a module (or another file) is not put in the cache. None is an error: the file is read
/// again next time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotCached {
    /// Its record has an error or an anomaly (its messages are repeated on each run).
    Unclean,
    /// It changed too recently to be told apart from a later change in the same clock tick.
    Unsettled,
    /// Its path is longer than 65,535 bytes.
    LongPath,
    /// One of its strings is longer than 65,535 bytes.
    LongString,
    /// One of its CRCs does not fit in 32 bits.
    WideCrc,
    /// The path is in the cache already.
    Duplicate,
    /// The cache would grow past what its 32-bit counts and offsets address.
    Full,
    /// A directory listing's entries are not a well-formed listing.
    BadListing,
}

impl fmt::Display for NotCached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotCached::Unclean => "it has an error or anomaly",
            NotCached::Unsettled => "it changed less than the settling time ago",
            NotCached::LongPath => "its path is longer than 65535 bytes",
            NotCached::LongString => "one of its strings is longer than 65535 bytes",
            NotCached::WideCrc => "one of its CRCs does not fit in 32 bits",
            NotCached::Duplicate => "its path is cached already",
            NotCached::Full => "the cache is full",
            NotCached::BadListing => "its listing is malformed",
        })
    }
}

/// A cache that cannot be encoded: larger than its 32-bit offsets address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge {
    /// Bytes it would take.
    pub size: u64,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a cache of {} bytes is larger than 4 GiB", self.size)
    }
}

impl core::error::Error for TooLarge {}

/// Most bytes each growing part may take, so that the whole stays under 4 GiB.
const PART: usize = (u32::MAX / 4) as usize;

/// The symbol table being written: (name end, CRC) entries over a pool of names, and a table
/// to find a symbol's number.
#[derive(Clone, Debug, Default)]
struct Symbols {
    entries: Vec<u8>,
    pool: Vec<u8>,
    table: Numbers,
    /// Symbols entered in `table` (those taken over from an old cache are entered when a new
    /// symbol is first looked for).
    mapped: u32,
}

impl Symbols {
    fn len(&self) -> u32 {
        (self.entries.len() / 8) as u32
    }

    /// Name and CRC of symbol `n`.
    fn get(&self, n: u32) -> (&[u8], u32) {
        let at = n as usize * 8;
        let start = if n == 0 { 0 } else { id_at(&self.entries, at - 8) } as usize;
        let end = id_at(&self.entries, at) as usize;
        (self.pool.get(start..end).unwrap_or_default(), id_at(&self.entries, at + 4))
    }

    fn push(&mut self, name: &[u8], crc: u32) {
        self.pool.extend_from_slice(name);
        self.entries.extend_from_slice(&(self.pool.len() as u32).to_le_bytes());
        self.entries.extend_from_slice(&crc.to_le_bytes());
    }

    /// Enters symbol `n` in the lookup table.
    fn enter(&mut self, n: u32) {
        let (name, crc) = self.get(n);
        self.table.insert(word_hash(name, u64::from(crc)), n);
    }

    /// The number of symbol `name` with `crc`, added if new.
    fn number(&mut self, name: &[u8], crc: u64) -> Result<u32, NotCached> {
        let crc = u32::try_from(crc).map_err(|_| NotCached::WideCrc)?;
        while self.mapped < self.len() {
            self.enter(self.mapped);
            self.mapped += 1;
        }
        let h = word_hash(name, u64::from(crc));
        if let Some(n) = self.table.find(h, |n| self.get(n) == (name, crc)) {
            return Ok(n);
        }
        let n = self.len();
        if n >= WEAK || self.pool.len() + name.len() > PART || self.entries.len() + 8 > PART {
            return Err(NotCached::Full);
        }
        self.push(name, crc);
        self.enter(n);
        self.mapped += 1;
        Ok(n)
    }

    /// Forgets the symbols from number `keep` on.
    fn truncate(&mut self, keep: u32) {
        if keep >= self.len() {
            return;
        }
        let end = if keep == 0 { 0 } else { id_at(&self.entries, keep as usize * 8 - 8) };
        self.entries.truncate(keep as usize * 8);
        self.pool.truncate(end as usize);
        // Rare (a record that failed half-way): the lookup table is made again when needed.
        self.table = Numbers::default();
        self.mapped = 0;
    }
}

/// Builds a cache file; `'a` is the life of the old cache it updates, if any.
#[derive(Clone, Debug)]
pub struct CacheWriter<'a> {
    /// The file so far, less the records copied from the old cache: the header (filled in at
    /// the end), program, tree, the record count (filled in at the end), then the records.
    out: Vec<u8>,
    /// Runs of records copied as they are from the old cache (`base`), in order: each one goes
    /// into the file before `out[at..]`.
    copied: Vec<Copied>,
    /// Bytes of the file so far: `out`'s and the copied runs'.
    len: usize,
    /// Where the record count lies.
    count_at: usize,
    options: Vec<u8>,
    settled_before: Time,
    /// Encoded file entries, and how many.
    files: Vec<u8>,
    file_count: u32,
    /// Encoded directory listings, where each starts in `dirs`, and their numbers by path.
    dirs: Vec<u8>,
    dir_starts: Vec<u32>,
    dir_paths: Numbers,
    /// Where each record starts in the file.
    starts: Vec<u32>,
    /// Where each record's symbol numbers start in the file, and how many there are (exports
    /// then imports).
    ids: Vec<(u32, u32, u32)>,
    /// Record numbers by path.
    paths: Numbers,
    symbols: Symbols,
    /// The old cache file, whose records are copied as they are.
    base: Option<&'a [u8]>,
    /// Whether the symbols are numbered in the order the records use them.
    in_order: bool,
    /// Records in the old cache, and how many of them were kept as they are.
    old_len: u32,
    old_kept: u32,
}

/// A run of the old cache's bytes in the new file.
#[derive(Clone, Debug)]
struct Copied {
    /// The run goes before `out[at..]`.
    at: usize,
    /// Where it lies in the old file.
    from: Range<usize>,
}

/// Appends a string of at most 65,535 bytes with its length.
fn push_short(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), ()> {
    let len = u16::try_from(bytes.len()).map_err(|_| ())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn push_stamp(out: &mut Vec<u8>, s: &Stamp) {
    for word in [s.dev, s.ino, s.size, s.mtime.sec as u64, s.ctime.sec as u64] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&s.mtime.nsec.to_le_bytes());
    out.extend_from_slice(&s.ctime.nsec.to_le_bytes());
}

fn push_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// The lists of one record, whatever they come from.
struct Lists<A, S, W, E, I> {
    aliases: A,
    softdeps: S,
    weakdeps: W,
    exports: E,
    imports: I,
}

impl<'a> CacheWriter<'a> {
    /// An empty cache for `identity`. Files whose modification or change time is not older
    /// than `settled_before` are not kept (see the module's documentation).
    pub fn new(identity: Identity<'_>, settled_before: Time) -> Self {
        let mut out = alloc::vec![0; HEADER];
        for part in [identity.program, identity.tree] {
            push_u32(&mut out, part.len() as u32);
            out.extend_from_slice(part);
        }
        let count_at = out.len();
        push_u32(&mut out, 0);
        CacheWriter {
            len: out.len(),
            out,
            copied: Vec::new(),
            count_at,
            options: Vec::new(),
            settled_before,
            files: Vec::new(),
            file_count: 0,
            dirs: Vec::new(),
            dir_starts: Vec::new(),
            dir_paths: Numbers::default(),
            starts: Vec::new(),
            ids: Vec::new(),
            paths: Numbers::default(),
            symbols: Symbols::default(),
            base: None,
            in_order: true,
            old_len: 0,
            old_kept: 0,
        }
    }

    /// An empty cache that takes over `old`'s symbol table, so that [`CacheWriter::keep`]
    /// copies `old`'s records as they are.
    pub fn update(old: &Cache<'a>, identity: Identity<'_>, settled_before: Time) -> Self {
        let mut w = Self::new(identity, settled_before);
        let (entries, pool) = old.symbol_table();
        w.symbols.entries = entries.to_vec();
        w.symbols.pool = pool.to_vec();
        w.base = Some(old.file());
        w.in_order = false;
        w.old_len = old.len() as u32;
        w
    }

    /// Records the caller's summary of its options (any bytes; [`Cache::options`] returns
    /// them).
    pub fn set_options(&mut self, options: &[u8]) {
        self.options = options.to_vec();
    }

    /// Records another file's stamp (an input besides the modules, or an output), under the same
    /// rules as a module's.
    pub fn add_file(&mut self, path: &[u8], stamp: Stamp) -> Result<(), NotCached> {
        self.check_settled(&stamp)?;
        if self.files.len() + path.len() > PART {
            return Err(NotCached::Full);
        }
        push_short(&mut self.files, path).map_err(|()| NotCached::LongPath)?;
        push_stamp(&mut self.files, &stamp);
        self.file_count += 1;
        Ok(())
    }

    /// Records the listing of the directory at `path` (as the walk spells it, with a final `/`),
    /// whose stamp before it was listed is `stamp`: its entries as [`listing::ListingBuf`]
    /// encodes them. Under the same rules as a module's stamp.
    pub fn add_listing(
        &mut self,
        path: &[u8],
        stamp: Stamp,
        entries: &[u8],
    ) -> Result<(), NotCached> {
        self.check_settled(&stamp)?;
        listing::check(entries).map_err(|_| NotCached::BadListing)?;
        let len = u32::try_from(entries.len()).map_err(|_| NotCached::Full)?;
        let number = u32::try_from(self.dir_starts.len()).map_err(|_| NotCached::Full)?;
        if self.dirs.len() + path.len() + entries.len() > PART {
            return Err(NotCached::Full);
        }
        let h = word_hash(path, DIRS);
        if self.dir_paths.find(h, |n| path_at(&self.dirs, &self.dir_starts, n) == path).is_some() {
            return Err(NotCached::Duplicate);
        }
        let start = self.dirs.len();
        push_short(&mut self.dirs, path).map_err(|()| NotCached::LongPath)?;
        push_stamp(&mut self.dirs, &stamp);
        push_u32(&mut self.dirs, len);
        self.dirs.extend_from_slice(entries);
        self.dir_starts.push(start as u32);
        self.dir_paths.insert(h, number);
        Ok(())
    }

    fn check_settled(&self, stamp: &Stamp) -> Result<(), NotCached> {
        if stamp.is_settled(self.settled_before) { Ok(()) } else { Err(NotCached::Unsettled) }
    }

    /// Adds the module at `path`, whose stamp (taken before it was read) is `stamp`, read as
    /// `info`. A module that is not added is simply read again next time.
    pub fn add(&mut self, path: &[u8], stamp: Stamp, info: &ModuleInfo) -> Result<(), NotCached> {
        if !info.is_clean() {
            return Err(NotCached::Unclean);
        }
        let lists = Lists {
            aliases: info.aliases(),
            softdeps: info.softdeps(),
            weakdeps: info.weakdeps(),
            exports: info.exports(),
            imports: info.imports().map(|n| (n.name, n.crc, n.weak)),
        };
        self.push(path, stamp, |w| w.encode(path, stamp, lists))
    }

    /// Adds a record of a cache, as it is (a record of the cache this writer updates is copied
    /// without being decoded).
    pub fn keep(&mut self, record: &Record<'_>) -> Result<(), NotCached> {
        let (path, stamp) = (record.path(), record.stamp());
        if self.base.is_some_and(|base| record.is_in(base)) {
            self.push(path, stamp, |w| {
                let from = record.span();
                let at = w.out.len();
                match w.copied.last_mut() {
                    // It follows the run before it, in both files.
                    Some(last) if last.at == at && last.from.end == from.start => {
                        last.from.end = from.end;
                    }
                    _ => w.copied.push(Copied { at, from: from.clone() }),
                }
                w.len += from.len();
                Ok(record.ids())
            })?;
            self.old_kept += 1;
            return Ok(());
        }
        let lists = Lists {
            aliases: record.aliases(),
            softdeps: record.softdeps(),
            weakdeps: record.weakdeps(),
            exports: record.exports(),
            imports: record.imports(),
        };
        self.push(path, stamp, |w| w.encode(path, stamp, lists))
    }

    /// Appends one record with `encode` (which says where the record's symbol numbers are from
    /// its start, and how many), or leaves everything as it was.
    fn push(
        &mut self,
        path: &[u8],
        stamp: Stamp,
        encode: impl FnOnce(&mut Self) -> Result<(u32, u32, u32), NotCached>,
    ) -> Result<(), NotCached> {
        self.check_settled(&stamp)?;
        let start = self.len;
        let number = u32::try_from(self.starts.len()).map_err(|_| NotCached::Full)?;
        if start > PART {
            return Err(NotCached::Full);
        }
        let h = word_hash(path, MODULES);
        if self.paths.find(h, |n| self.record_path(n) == path).is_some() {
            return Err(NotCached::Duplicate);
        }
        let symbols = self.symbols.len();
        let out = self.out.len();
        let (ids, exports, imports) = match encode(self) {
            Ok(ids) => ids,
            Err(e) => {
                // (Copying a record fails only before it is copied.)
                self.out.truncate(out);
                self.symbols.truncate(symbols);
                return Err(e);
            }
        };
        self.len += self.out.len() - out;
        self.starts.push(start as u32);
        self.ids.push((start as u32 + ids, exports, imports));
        self.paths.insert(h, number);
        Ok(())
    }

    fn encode<'s, A, S, W, E, I>(
        &mut self,
        path: &[u8],
        stamp: Stamp,
        lists: Lists<A, S, W, E, I>,
    ) -> Result<(u32, u32, u32), NotCached>
    where
        A: ExactSizeIterator<Item = &'s [u8]>,
        S: ExactSizeIterator<Item = &'s [u8]>,
        W: ExactSizeIterator<Item = &'s [u8]>,
        E: ExactSizeIterator<Item = (&'s [u8], u64)>,
        I: ExactSizeIterator<Item = (&'s [u8], u64, bool)>,
    {
        let start = self.out.len();
        push_short(&mut self.out, path).map_err(|()| NotCached::LongPath)?;
        push_stamp(&mut self.out, &stamp);
        let count = |n: usize| u32::try_from(n).map_err(|_| NotCached::Full);
        let counts = [
            count(lists.aliases.len())?,
            count(lists.softdeps.len())?,
            count(lists.weakdeps.len())?,
            count(lists.exports.len())?,
            count(lists.imports.len())?,
        ];
        for c in counts {
            push_u32(&mut self.out, c);
        }
        let strings = lists.aliases.chain(lists.softdeps).chain(lists.weakdeps);
        for s in strings {
            push_short(&mut self.out, s).map_err(|()| NotCached::LongString)?;
        }
        let ids = (self.out.len() - start) as u32;
        for (name, crc) in lists.exports {
            let n = self.symbols.number(name, crc)?;
            push_u32(&mut self.out, n);
        }
        for (name, crc, weak) in lists.imports {
            let n = self.symbols.number(name, crc)?;
            push_u32(&mut self.out, n | if weak { WEAK } else { 0 });
        }
        Ok((ids, counts[3], counts[4]))
    }

    /// The path of record `n`.
    fn record_path(&self, n: u32) -> &[u8] {
        let Some(&start) = self.starts.get(n as usize) else { return &[] };
        let (part, at) = self.part_at(start as usize);
        path_at(part, &[at as u32], 0)
    }

    /// The part of the file (a copied run, or `out` between runs) that holds offset `at`, and
    /// where `at` lies in it.
    fn part_at(&self, at: usize) -> (&[u8], usize) {
        // Bytes of the copied runs before the part looked at.
        let mut copied = 0;
        for run in &self.copied {
            let start = run.at + copied;
            if at < start {
                break;
            }
            if at < start + run.from.len() {
                let base = self.base.and_then(|b| b.get(run.from.clone())).unwrap_or_default();
                return (base, at - start);
            }
            copied += run.from.len();
        }
        (&self.out, at - copied)
    }

    /// Copies the runs of the old cache into `out` (the file is then all in `out`).
    fn gather(&mut self) {
        if self.copied.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.len);
        let mut from = 0;
        for run in &self.copied {
            out.extend_from_slice(self.out.get(from..run.at).unwrap_or_default());
            let base = self.base.and_then(|b| b.get(run.from.clone())).unwrap_or_default();
            out.extend_from_slice(base);
            from = run.at;
        }
        out.extend_from_slice(self.out.get(from..).unwrap_or_default());
        self.out = out;
        self.copied.clear();
    }

    /// Modules in the cache so far.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no module was added.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Numbers the symbols in the order the records use them (as a new writer would have),
    /// dropping the symbols no record uses.
    fn renumber(&mut self) {
        self.gather();
        let mut new = alloc::vec![u32::MAX; self.symbols.len() as usize];
        let mut symbols = Symbols::default();
        for &(start, exports, imports) in &self.ids {
            for i in 0..(exports + imports) as usize {
                let at = start as usize + 4 * i;
                let id = id_at(&self.out, at);
                let Some(slot) = new.get_mut((id & !WEAK) as usize) else { continue };
                if *slot == u32::MAX {
                    *slot = symbols.len();
                    let (name, crc) = self.symbols.get(id & !WEAK);
                    symbols.push(name, crc);
                }
                let renumbered = *slot | (id & WEAK);
                if let Some(field) = self.out.get_mut(at..at + 4) {
                    field.copy_from_slice(&renumbered.to_le_bytes());
                }
            }
        }
        self.symbols = symbols;
        self.in_order = true;
    }

    /// The cache file, in one piece.
    pub fn finish(self) -> Result<Vec<u8>, TooLarge> {
        let sealed = self.seal()?;
        let mut file = Vec::with_capacity(sealed.len());
        sealed.parts().for_each(|part| file.extend_from_slice(part));
        Ok(file)
    }

    /// The cache file, as the parts to write one after the other.
    pub fn seal(mut self) -> Result<Sealed<'a>, TooLarge> {
        // Symbols only the records left out used stay (unused, harmless) until those records
        // are an eighth of the old cache's; then the symbols are numbered again.
        let dropped = self.old_len - self.old_kept;
        if !self.in_order && dropped > self.old_len / 8 {
            self.renumber();
        }
        let tail = self.len;
        let parts = [
            (self.options.len() as u32, self.options),
            (self.file_count, self.files),
            (self.dir_starts.len() as u32, self.dirs),
            (self.symbols.len(), self.symbols.entries),
            (self.symbols.pool.len() as u32, self.symbols.pool),
        ];
        let size = parts.iter().fold(tail as u64, |size, (_, part)| size + 4 + part.len() as u64);
        if size > u64::from(u32::MAX) {
            return Err(TooLarge { size });
        }
        let mut out = self.out;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(&MAGIC);
        push_u32(&mut header, FORMAT);
        header.extend_from_slice(&BYTE_ORDER.to_ne_bytes());
        header.extend_from_slice(&size.to_le_bytes());
        push_u32(&mut header, 0); // the checksum, below
        debug_assert_eq!(header.len(), TAIL_AT);
        push_u32(&mut header, tail as u32);
        let count = (self.starts.len() as u32).to_le_bytes();
        for (at, bytes) in [(0, &header[..]), (self.count_at, &count[..])] {
            if let Some(field) = out.get_mut(at..at + bytes.len()) {
                field.copy_from_slice(bytes);
            }
        }
        let tail = parts.map(|(count, part)| (count.to_le_bytes(), part));
        let mut sealed =
            Sealed { out, copied: self.copied, base: self.base.unwrap_or_default(), tail };
        // The header (in the first part) is not checked with the rest.
        let mut crc = crc32fast::Hasher::new();
        for (i, part) in sealed.parts().enumerate() {
            match i {
                0 => {
                    crc.update(part.get(..CRC_AT).unwrap_or_default());
                    crc.update(part.get(CRC_AT + 4..).unwrap_or_default());
                }
                _ => crc.update(part),
            }
        }
        let crc = crc.finalize().to_le_bytes();
        if let Some(field) = sealed.out.get_mut(CRC_AT..CRC_AT + 4) {
            field.copy_from_slice(&crc);
        }
        Ok(sealed)
    }
}

/// A cache file made by [`CacheWriter::seal`]: its bytes in parts (the new ones, and runs of
/// the old cache's), to write one after the other.
pub struct Sealed<'a> {
    /// The header, program, tree and records, less the runs copied from `base`.
    out: Vec<u8>,
    copied: Vec<Copied>,
    base: &'a [u8],
    /// The tail's parts, each after its count or length.
    tail: [([u8; 4], Vec<u8>); 5],
}

impl Sealed<'_> {
    /// The file's parts, in order.
    pub fn parts(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        let mut head = Vec::with_capacity(2 * self.copied.len() + 1);
        for run in &self.copied {
            head.push(self.out.get(from..run.at).unwrap_or_default());
            head.push(self.base.get(run.from.clone()).unwrap_or_default());
            from = run.at;
        }
        head.push(self.out.get(from..).unwrap_or_default());
        let tail = self.tail.iter().flat_map(|(count, part)| [&count[..], &part[..]]);
        head.into_iter().chain(tail)
    }

    /// The file's length.
    pub fn len(&self) -> usize {
        self.parts().map(<[u8]>::len).sum()
    }

    /// Whether the file is empty (never: it has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the file is exactly `bytes`.
    pub fn is(&self, mut bytes: &[u8]) -> bool {
        for part in self.parts() {
            match bytes.split_at_checked(part.len()) {
                Some((head, rest)) if head == part => bytes = rest,
                _ => return false,
            }
        }
        bytes.is_empty()
    }
}

/// The path of record `n` in `records`, where records start at `starts`.
fn path_at<'r>(records: &'r [u8], starts: &[u32], n: u32) -> &'r [u8] {
    let Some(&start) = starts.get(n as usize) else { return &[] };
    let mut cur = Cursor { data: records, at: start as usize };
    cur.short("module path").ok().and_then(|p| records.get(p)).unwrap_or_default()
}
