//! The local part of `.symtab` read without being kept: a scan of its entries as they stream
//! past (a big module decoded in passes) that keeps only those depmod's lists can depend on.
//!
//! A symbol table lists its local symbols first (`sh_info` of them), and they can be most of a
//! module: riscv64's amdgpu has 1,733,225 local entries of 1,740,327, 41.6 of its 60 MB. depmod
//! reads an entry only if [`Names::matters`] says so (undefined, named `__crc_*` or named outside
//! `.strtab`, whatever its binding). A [`LocalScan`] fed the local part keeps those entries in a
//! [`LocalSymbols`], with which a buffer lacking that part parses as the whole file does
//! ([`Elf::with_locals`]). A crafted file with many such entries is refused
//! ([`Unproven::TooMany`]): its caller then reads the table whole.

use alloc::vec::Vec;
use core::ops::Range;

use super::Elf;
use super::raw::Layout;
use super::symtab::{Names, Sym};
use crate::bytes::{Endian, to_usize};

/// More local entries that matter than this (a module exports a few thousand symbols at most,
/// and has no undefined local ones) is a crafted file: the scan gives up and the table is read
/// whole.
pub const MAX_KEPT: usize = 1 << 16;

/// The largest symbol table entry (ELF64's).
const MAX_ENTRY: usize = 24;

/// Where a symbol table, its local part and its names lie: a summary applies only to the file
/// (the section table) it was made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    /// `.symtab`'s offset and size.
    symtab: (u64, usize),
    /// `.strtab`'s offset and size.
    strtab: (u64, usize),
    /// The end of the local part: `sh_info`, within 1..=entries.
    end: usize,
    /// Size of an entry.
    entry: usize,
}

impl Place {
    /// The place of `elf`'s symbol table, if it has one that depmod can read.
    fn of(elf: &Elf<'_>) -> Option<Place> {
        let (symtab, strtab) = (elf.section_by_name(".symtab")?, elf.section_by_name(".strtab")?);
        let entry = elf.layout().sym_size;
        let size = symtab.data.len();
        if size % entry != 0 {
            return None;
        }
        let count = size / entry;
        let info = elf.header_field(symtab.index, elf.layout().sh_info, false)?;
        let end = to_usize(info).unwrap_or(usize::MAX).clamp(1, count.max(1));
        Some(Place {
            symtab: (symtab.offset, size),
            strtab: (strtab.offset, strtab.data.len()),
            end,
            entry,
        })
    }

    /// The file bytes of the local entries (1..end; entry 0 is never read).
    fn range(&self) -> Range<usize> {
        let start = to_usize(self.symtab.0).unwrap_or(usize::MAX);
        let at = |entry: usize| start.saturating_add(entry.saturating_mul(self.entry));
        at(1)..at(self.end)
    }

    /// The names in `data`, a buffer of the file that holds `.strtab`.
    fn names_from<'a>(&self, data: &'a [u8]) -> Names<'a> {
        let from = to_usize(self.strtab.0).and_then(|o| data.get(o..));
        Names { len: self.strtab.1, from: from.unwrap_or_default() }
    }

    /// The names of `elf` (whose place this is): `.strtab`'s length, the file from it on.
    fn names<'a>(&self, elf: &Elf<'a>) -> Names<'a> {
        match elf.section_by_name(".strtab") {
            Some(strtab) => Names::of(elf, &strtab),
            None => Names { len: self.strtab.1, from: &[] },
        }
    }
}

/// The file bytes of the local entries of `elf`'s symbol table (all but entry 0 below
/// `sh_info`), if it has a table depmod can read.
pub fn local_part(elf: &Elf<'_>) -> Option<Range<usize>> {
    Place::of(elf).map(|p| p.range())
}

/// The local entries of a module's symbol table that depmod's lists depend on, gathered by a
/// [`LocalScan`]: what [`Elf::with_locals`] reads instead of the table's local part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalSymbols {
    place: Place,
    entries: Vec<(u32, Sym)>,
}

impl LocalSymbols {
    /// The file bytes of the local part, which a buffer parsed with this summary need not hold.
    pub fn range(&self) -> Range<usize> {
        self.place.range()
    }

    /// How many local entries matter (were kept).
    pub fn kept(&self) -> usize {
        self.entries.len()
    }

    /// The end of the local part (its first global entry).
    pub(super) fn end(&self) -> usize {
        self.place.end
    }

    /// The local entries that matter, with their indexes, in table order.
    pub(super) fn entries(&self) -> &[(u32, Sym)] {
        &self.entries
    }

    /// Whether this summary was made from `elf`'s symbol table.
    pub(super) fn fits(&self, elf: &Elf<'_>) -> bool {
        Place::of(elf) == Some(self.place)
    }
}

/// Why a [`LocalScan`] gave no [`LocalSymbols`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unproven {
    /// The scan ran without `.strtab` at hand, and a local name starts with `__crc_`: the
    /// entries named so must be found by a scan that has the names (made with `names_known`).
    NeedsNames,
    /// More than [`MAX_KEPT`] local entries matter.
    TooMany,
    /// Not every byte of the local part was fed, in order.
    NotSeen,
    /// The section table says the symbol table is elsewhere than when the scan began.
    Moved,
}

/// A scan of the local part of a symbol table, fed as it streams past in order, keeping the
/// entries that matter (`Names::matters`). Without `.strtab` at hand, the name offsets of the
/// others are noted (one bit per byte of `.strtab`) and their names checked by
/// [`LocalScan::finish`] once it is.
#[derive(Clone, Debug)]
pub struct LocalScan {
    place: Place,
    layout: &'static Layout,
    endian: Endian,
    names_known: bool,
    /// Without the names: a bit for each `.strtab` offset some entry is named at.
    named_at: Vec<u64>,
    /// The file offset of the next byte to see.
    next: usize,
    /// The index of the entry `next` is in.
    index: usize,
    /// The first bytes of an entry split between two pieces.
    carry: [u8; MAX_ENTRY],
    carried: usize,
    kept: Vec<(u32, Sym)>,
    too_many: bool,
}

impl LocalScan {
    /// A scan of `elf`'s local symbols (the section table and, with `names_known`, `.strtab`
    /// read); `None` when it has no symbol table depmod can read, or nothing local in it.
    pub fn new(elf: &Elf<'_>, names_known: bool) -> Option<LocalScan> {
        let place = Place::of(elf)?;
        let range = place.range();
        if range.is_empty() {
            return None;
        }
        let named_at = match names_known {
            true => Vec::new(),
            // One bit per byte of a section inside the file.
            false => alloc::vec![0; place.strtab.1 / 64 + 1],
        };
        Some(LocalScan {
            place,
            layout: elf.layout(),
            endian: elf.endian(),
            names_known,
            named_at,
            next: range.start,
            index: 1,
            carry: [0; MAX_ENTRY],
            carried: 0,
            kept: Vec::new(),
            too_many: false,
        })
    }

    /// The file bytes to feed: the local entries.
    pub fn range(&self) -> Range<usize> {
        self.place.range()
    }

    /// Scans what `piece` (the bytes at file offset `at`) holds of the local part. Pieces come
    /// in file order; `data` is the buffer so far, which holds `.strtab` if the scan was made
    /// with `names_known`.
    pub fn feed(&mut self, at: usize, piece: &[u8], data: &[u8]) {
        let end = self.place.range().end;
        if self.too_many || self.next >= end || at > self.next {
            return; // done, or a gap (finish then says the part was not seen)
        }
        let skip = self.next - at;
        let len = (end - self.next).min(piece.len().saturating_sub(skip));
        let Some(mut bytes) = piece.get(skip..skip.saturating_add(len)) else { return };
        self.next = self.next.saturating_add(bytes.len());
        let size = self.place.entry;
        let names = match self.names_known {
            true => self.place.names_from(data),
            false => Names { len: self.place.strtab.1, from: &[] },
        };
        if self.carried > 0 {
            let take = (size - self.carried).min(bytes.len());
            let (head, rest) = bytes.split_at(take);
            if let Some(slot) = self.carry.get_mut(self.carried..self.carried + take) {
                slot.copy_from_slice(head);
            }
            self.carried += take;
            bytes = rest;
            if self.carried < size {
                return;
            }
            let entry = self.carry;
            self.carried = 0;
            self.entry(&entry, names);
        }
        let mut whole = bytes.chunks_exact(size);
        for entry in &mut whole {
            self.entry(entry, names);
        }
        let rest = whole.remainder();
        if let Some(slot) = self.carry.get_mut(..rest.len()) {
            slot.copy_from_slice(rest);
            self.carried = rest.len();
        }
    }

    /// One entry: kept if it matters.
    fn entry(&mut self, bytes: &[u8], names: Names<'_>) {
        let sym = Sym::read(self.layout, self.endian, bytes, 0);
        let matters = match self.names_known {
            true => names.matters(&sym, |n| names.is_crc(n)),
            false => names.matters(&sym, |n| {
                let (word, bit) = (n as usize / 64, n % 64);
                if let Some(w) = self.named_at.get_mut(word) {
                    *w |= 1 << bit;
                }
                false
            }),
        };
        if matters && !self.too_many {
            if self.kept.len() >= MAX_KEPT {
                self.too_many = true;
                self.kept = Vec::new();
            } else {
                self.kept.push((self.index as u32, sym));
            }
        }
        self.index += 1;
    }

    /// The summary, once the whole local part has been fed: `elf` is the file as read by then
    /// (its section table, and `.strtab` for a scan made without the names).
    pub fn finish(self, elf: &Elf<'_>) -> Result<LocalSymbols, Unproven> {
        if self.too_many {
            return Err(Unproven::TooMany);
        }
        if Place::of(elf) != Some(self.place) {
            return Err(Unproven::Moved);
        }
        if self.next < self.place.range().end || self.carried > 0 {
            return Err(Unproven::NotSeen);
        }
        if !self.names_known {
            let names = self.place.names(elf);
            let set = self.named_at.iter().enumerate().filter(|(_, w)| **w != 0);
            for (word, &bits) in set {
                let crc = (0..64u32)
                    .filter(|bit| bits & (1 << bit) != 0)
                    .any(|bit| names.is_crc((word as u32).saturating_mul(64).saturating_add(bit)));
                if crc {
                    return Err(Unproven::NeedsNames);
                }
            }
        }
        Ok(LocalSymbols { place: self.place, entries: self.kept })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModuleInfo;
    use crate::elf::writer::{Class, ObjectBuilder, STB_GLOBAL, STB_LOCAL, SymbolSpec};
    use crate::error::Error;
    use crate::module::Scratch;
    use alloc::format;

    const FUNC: u8 = 2;

    fn local(name: &[u8], shndx: u16) -> SymbolSpec {
        SymbolSpec { name: name.to_vec(), value: 4, info: (STB_LOCAL << 4) | FUNC, shndx }
    }

    /// A module whose symbol table has 1,000 named local functions, `special` (local entries,
    /// with `__kcrctab` as section 4) in their middle, then an export and two imports.
    fn module(class: Class, endian: Endian, special: &[SymbolSpec]) -> Vec<u8> {
        let mut o = ObjectBuilder::new(class, endian);
        let text = o.section(".text", &[0xc3; 16]);
        o.section(".modinfo", b"alias=pci:v*\0license=GPL\0softdep=pre: a\0");
        o.section("__ksymtab_strings", b"exported\0");
        assert_eq!(o.section("__kcrctab", &[0x5a; 8]), 4);
        for i in 0..1000 {
            if i == 500 {
                special.iter().for_each(|s| _ = o.symbol(s.clone()));
            }
            o.symbol(local(format!("static_fn_{i}").as_bytes(), text));
        }
        let global =
            SymbolSpec { name: b"exported".to_vec(), value: 0, info: STB_GLOBAL << 4, shndx: text };
        o.symbol(global);
        o.undefined(b"printk", false).undefined(b"maybe", true);
        o.build()
    }

    /// A scan of `file`'s local part, fed the whole file in pieces of `piece` bytes.
    fn scan(file: &[u8], names_known: bool, piece: usize) -> Result<LocalSymbols, Unproven> {
        let elf = Elf::parse(file).unwrap();
        let mut scan = LocalScan::new(&elf, names_known).unwrap();
        for (k, bytes) in file.chunks(piece).enumerate() {
            scan.feed(k * piece, bytes, file);
        }
        scan.finish(&elf)
    }

    /// `file` with its local part overwritten by `fill` and parsed with `locals`, against the
    /// whole file parsed: every field must be the same.
    fn lean_is_whole(file: &[u8], locals: &LocalSymbols) {
        let whole = ModuleInfo::parse(file);
        for fill in [0, 0xa5] {
            let mut lean = file.to_vec();
            lean[locals.range()].fill(fill);
            let info = ModuleInfo::parse_lean(&lean, locals, &mut Scratch::default()).unwrap();
            assert_eq!(info.fields(), whole.fields());
        }
    }

    fn every_shape() -> impl Iterator<Item = (Class, Endian)> {
        [Class::Elf32, Class::Elf64]
            .into_iter()
            .flat_map(|c| [Endian::Little, Endian::Big].map(move |e| (c, e)))
    }

    /// Plain local functions are all dropped, and the buffer without them parses as the whole
    /// file, in every class and byte order, however the part is cut into pieces.
    #[test]
    fn plain_locals_are_dropped() {
        for (class, endian) in every_shape() {
            let file = module(class, endian, &[]);
            let summary = scan(&file, false, 4096).unwrap();
            assert_eq!(summary.kept(), 0);
            let entry = if class == Class::Elf64 { 24 } else { 16 };
            assert_eq!(summary.range().len(), 1000 * entry);
            for piece in [1, 5, 24, 1000, file.len()] {
                assert_eq!(scan(&file, false, piece), Ok(summary.clone()), "{piece}");
                assert_eq!(scan(&file, true, piece), Ok(summary.clone()), "{piece}");
            }
            lean_is_whole(&file, &summary);
            let info = ModuleInfo::parse(&file);
            assert_eq!(info.exports().collect::<Vec<_>>(), [(&b"exported"[..], 0)]);
            assert_eq!(info.imports().len(), 2);
        }
    }

    /// Local `__crc_` symbols (as modpost makes them) and local undefined ones count for kmod:
    /// a scan without the names asks for them, one with the names keeps them, and the lean
    /// parse reads them from the summary.
    #[test]
    fn local_crcs_and_undefined_entries_are_kept() {
        let special = [
            local(b"__crc_exported", 4),
            SymbolSpec { name: b"local_need".to_vec(), value: 0, info: STB_LOCAL << 4, shndx: 0 },
            SymbolSpec { name: b"local_need_2".to_vec(), value: 0, info: STB_LOCAL << 4, shndx: 0 },
        ];
        for (class, endian) in every_shape() {
            let file = module(class, endian, &special[..1]);
            assert_eq!(scan(&file, false, 100), Err(Unproven::NeedsNames));
            let summary = scan(&file, true, 100).unwrap();
            assert_eq!(summary.kept(), 1);
            lean_is_whole(&file, &summary);
            let info = ModuleInfo::parse(&file);
            assert_eq!(info.exports().collect::<Vec<_>>(), [(&b"exported"[..], 0x5a5a_5a5a)]);

            let file = module(class, endian, &special);
            let summary = scan(&file, true, 7).unwrap();
            assert_eq!(summary.kept(), 3);
            lean_is_whole(&file, &summary);
            let info = ModuleInfo::parse(&file);
            let needed: Vec<(&[u8], bool)> = info.imports().map(|i| (i.name, i.weak)).collect();
            let expected: [(&[u8], bool); 4] = [
                (b"local_need", false),
                (b"local_need_2", false),
                (b"printk", false),
                (b"maybe", true),
            ];
            assert_eq!(needed, expected);
            // Without `__crc_` names, undefined entries need no names to be kept.
            let file = module(class, endian, &special[1..]);
            let summary = scan(&file, false, 7).unwrap();
            assert_eq!(summary.kept(), 2);
            lean_is_whole(&file, &summary);
        }
    }

    /// A local entry named outside `.strtab` makes kmod take the exports from
    /// `__ksymtab_strings` (here with a `__crc_` symbol that would have given a CRC), and, if it
    /// is undefined, drop the needed symbols: it is kept with its index, so the lean parse does
    /// the same.
    #[test]
    fn a_local_name_outside_strtab_is_kept() {
        let crc = local(b"__crc_exported", 4);
        for shndx in [1, 0] {
            let bad = SymbolSpec { shndx, ..local(b"bad_name", 1) };
            let mut file = module(Class::Elf64, Endian::Little, &[bad, crc.clone()]);
            let elf = Elf::parse(&file).unwrap();
            let symtab = elf.section_by_name(".symtab").unwrap().offset as usize;
            let at = symtab + 501 * 24; // after the null entry and the first 500 locals
            file[at..at + 4].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
            let summary = scan(&file, true, 333).unwrap();
            assert_eq!(summary.kept(), 2);
            lean_is_whole(&file, &summary);
            let info = ModuleInfo::parse(&file);
            assert_eq!(info.exports().collect::<Vec<_>>(), [(&b"exported"[..], 0)]);
            let failed =
                matches!(info.imports_error, Some(Error::NameOutOfRange { symbol: 501, .. }));
            assert_eq!(failed, shndx == 0);
        }
    }

    /// What a scan cannot vouch for: too many entries that matter (a crafted file), a part not
    /// fed whole, a summary of another table.
    #[test]
    fn what_a_scan_refuses() {
        let many: Vec<SymbolSpec> = (0..=MAX_KEPT)
            .map(|_| SymbolSpec { name: b"u".to_vec(), value: 0, info: 0, shndx: 0 })
            .collect();
        let file = module(Class::Elf64, Endian::Little, &many);
        assert_eq!(scan(&file, true, 4096), Err(Unproven::TooMany));
        assert_eq!(scan(&file, false, 4096), Err(Unproven::TooMany));

        let file = module(Class::Elf64, Endian::Little, &[]);
        let elf = Elf::parse(&file).unwrap();
        let mut gap = LocalScan::new(&elf, false).unwrap();
        let r = gap.range();
        gap.feed(r.start, &file[r.start..r.start + 100], &file);
        gap.feed(r.start + 200, &file[r.start + 200..r.end], &file);
        assert_eq!(gap.finish(&elf), Err(Unproven::NotSeen));

        let other = module(Class::Elf64, Endian::Little, &[local(b"one_more", 1)]);
        let theirs = scan(&other, false, 4096).unwrap();
        assert!(elf.with_locals(&theirs).is_none());
        assert!(ModuleInfo::parse_lean(&file, &theirs, &mut Scratch::default()).is_none());
        let mut early = LocalScan::new(&Elf::parse(&other).unwrap(), false).unwrap();
        early.feed(0, &other, &other);
        assert_eq!(early.finish(&elf), Err(Unproven::Moved));
    }

    /// `sh_info` as written: past the table's end it stops at the end, and 0 or 1 leave nothing
    /// to scan.
    #[test]
    fn the_local_part_is_clamped_to_the_table() {
        let mut file = module(Class::Elf64, Endian::Little, &[]);
        let elf = Elf::parse(&file).unwrap();
        let symtab = elf.section_by_name(".symtab").unwrap();
        let header = elf.shoff + usize::from(symtab.index) * 64;
        let (start, len) = (symtab.offset as usize, symtab.data.len());
        for (info, range) in [(u32::MAX, start + 24..start + len), (0, start + 24..start + 24)] {
            file[header + 44..header + 48].copy_from_slice(&info.to_le_bytes());
            let elf = Elf::parse(&file).unwrap();
            assert_eq!(local_part(&elf), Some(range.clone()));
            assert_eq!(LocalScan::new(&elf, true).is_some(), !range.is_empty());
        }
        // Every entry local: the lean parse reads only the summary.
        file[header + 44..header + 48].copy_from_slice(&u32::MAX.to_le_bytes());
        let summary = scan(&file, false, 4096).unwrap();
        assert_eq!(summary.kept(), 2);
        lean_is_whole(&file, &summary);
    }
}
