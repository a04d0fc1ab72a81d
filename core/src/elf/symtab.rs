//! `.symtab` and its names as depmod reads them: entries, names, and the rule of which entries
//! its lists depend on ([`Names::matters`]), which lets the readers, and a scan of the local
//! part ([`super::LocalScan`]), skip the others.

use alloc::vec::Vec;

use super::raw::{self, Layout};
use super::{Elf, Section};
use crate::bytes::{Endian, cstr_at, eq, to_usize};
use crate::error::Error;

/// One `.symtab` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sym {
    pub name: u32,
    pub value: u64,
    pub info: u8,
    pub shndx: u16,
}

impl Sym {
    /// The entry at `base` in `bytes`, in the file's width and byte order (0 for a field past the
    /// end).
    pub fn read(layout: &Layout, endian: Endian, bytes: &[u8], base: usize) -> Sym {
        let at = |field: usize| base.saturating_add(field);
        Sym {
            name: endian.u32(bytes, at(layout.st_name)).unwrap_or(0),
            value: endian.word(bytes, at(layout.st_value), layout.wide).unwrap_or(0),
            info: bytes.get(at(layout.st_info)).copied().unwrap_or(0),
            shndx: endian.u16(bytes, at(layout.st_shndx)).unwrap_or(0),
        }
    }
}

/// What symbol names are read from: `.strtab`'s length (name offsets must lie below it) and the
/// file from `.strtab` on (libkmod reads a name to its NUL even past the table's end).
#[derive(Clone, Copy, Debug)]
pub(super) struct Names<'a> {
    pub len: usize,
    pub from: &'a [u8],
}

impl<'a> Names<'a> {
    /// The names of `elf`, whose `.strtab` is `strtab`.
    pub fn of(elf: &Elf<'a>, strtab: &Section<'a>) -> Self {
        let from = to_usize(strtab.offset).and_then(|o| elf.data().get(o..));
        Names { len: strtab.data.len(), from: from.unwrap_or(strtab.data) }
    }

    /// The rule of which entries depmod's lists can depend on: an undefined one (a needed
    /// symbol), one named outside `.strtab` (which fails the lists), or one whose name starts
    /// with `__crc_` (an export and its CRC; modpost makes these local), whatever their binding.
    /// The table is read once for these ([`SymbolTable::collect`]), each reader looking at some
    /// of their kinds, and a [`super::LocalScan`] may drop every other entry. `crc_name` says
    /// whether the name at an offset inside `.strtab` starts with `__crc_` ([`Names::is_crc`],
    /// unless the names are not at hand yet).
    pub fn matters(&self, sym: &Sym, crc_name: impl FnOnce(u32) -> bool) -> bool {
        self.is(Kinds::ALL, sym.shndx, sym.name, crc_name)
    }

    /// Whether an entry (its `st_shndx` and `st_name`) is of one of `kinds`.
    #[inline]
    pub fn is(
        &self,
        kinds: Kinds,
        shndx: u16,
        name: u32,
        crc_name: impl FnOnce(u32) -> bool,
    ) -> bool {
        (kinds.undefined && shndx == raw::SHN_UNDEF)
            || (kinds.misnamed && !self.in_range(name))
            || (kinds.crc && crc_name(name))
    }

    /// Whether a name offset lies inside `.strtab`.
    fn in_range(&self, name: u32) -> bool {
        u64::from(name) < self.len as u64
    }

    /// [`Names::in_range`] as the error entry `i` gives.
    pub fn check(&self, i: usize, sym: &Sym) -> Result<(), Error> {
        if !self.in_range(sym.name) {
            return Err(Error::NameOutOfRange {
                symbol: i as u32,
                name: sym.name,
                strtab: self.len as u64,
            });
        }
        Ok(())
    }

    /// Whether the name at `name` starts with `__crc_` (looked at in place, as kmod's `strncmp`,
    /// without finding the end of the name).
    pub fn is_crc(&self, name: u32) -> bool {
        let at = name as usize;
        let head = self.from.get(at..at.saturating_add(CRC_PREFIX.len()));
        head.is_some_and(|head| eq(head, CRC_PREFIX))
    }

    /// Entry `i`'s name: up to its NUL, which libkmod looks for past the end of `.strtab` (the
    /// file's end counts as one, as the zero fill of libkmod's mapping of the file does).
    pub fn name(&self, i: usize, sym: &Sym) -> Result<&'a [u8], Error> {
        self.check(i, sym)?;
        let off = to_usize(u64::from(sym.name)).unwrap_or(usize::MAX);
        Ok(cstr_at(self.from, off).or_else(|| self.from.get(off..)).unwrap_or_default())
    }
}

/// The kinds of entries depmod's lists depend on ([`Names::matters`]), as each reader picks
/// those it looks at.
#[derive(Clone, Copy, Debug)]
pub(super) struct Kinds {
    /// Undefined (needed symbols).
    pub undefined: bool,
    /// Named outside `.strtab`.
    pub misnamed: bool,
    /// Named `__crc_*`.
    pub crc: bool,
}

impl Kinds {
    pub const ALL: Kinds = Kinds { undefined: true, misnamed: true, crc: true };
    pub const UNDEFINED: Kinds = Kinds { undefined: true, misnamed: false, crc: false };
    pub const CRC: Kinds = Kinds { undefined: false, misnamed: false, crc: true };
    pub const CRC_OR_MISNAMED: Kinds = Kinds { undefined: false, misnamed: true, crc: true };
}

/// `.symtab` with its names. Its local part may be summarized instead of read
/// ([`Elf::with_locals`]): the buffer then need not hold it.
pub(super) struct SymbolTable<'a> {
    layout: &'static Layout,
    endian: Endian,
    symtab: &'a [u8],
    pub names: Names<'a>,
    pub count: usize,
    /// The first entry read from `symtab`: 1, or the end of the summarized local part.
    first: usize,
    /// The entries below `first` that matter, from the summary.
    summarized: &'a [(u32, Sym)],
}

impl<'a> SymbolTable<'a> {
    /// Finds `.strtab` and `.symtab` and checks the table's size.
    pub fn new(elf: &Elf<'a>) -> Result<Self, Error> {
        let strtab = elf.section_by_name(".strtab").ok_or(Error::MissingSection(".strtab"))?;
        let symtab = elf.section_by_name(".symtab").ok_or(Error::MissingSection(".symtab"))?;
        let entry = elf.layout().sym_size;
        if symtab.data.len() % entry != 0 {
            return Err(Error::SymtabSize { size: symtab.data.len() as u64, entry: entry as u8 });
        }
        let (first, summarized) = elf.locals().map_or((1, &[][..]), |l| (l.end(), l.entries()));
        Ok(SymbolTable {
            layout: elf.layout(),
            endian: elf.endian(),
            symtab: symtab.data,
            names: Names::of(elf, &strtab),
            count: symtab.data.len() / entry,
            first,
            summarized,
        })
    }

    /// Entry `i` (1 ≤ i < count).
    pub fn get(&self, i: usize) -> Sym {
        Sym::read(self.layout, self.endian, self.symtab, i.saturating_mul(self.layout.sym_size))
    }

    /// Sets `into` to the entries that matter ([`Names::matters`]) with their indexes, in table
    /// order: the summarized ones, then those read from the table. The readers look at these
    /// only, so a summary of the local part reads as the whole table.
    pub fn collect(&self, into: &mut Vec<(u32, Sym)>) {
        into.clear();
        into.extend_from_slice(self.summarized);
        let (l, names) = (self.layout, self.names);
        for i in self.first..self.count {
            // Below the table's length (i < count), so these sums cannot overflow. The two
            // fields that decide are read first, the others only for the entries kept.
            let base = i * l.sym_size;
            let shndx = self.endian.u16(self.symtab, base + l.st_shndx).unwrap_or(0);
            let name = self.endian.u32(self.symtab, base + l.st_name).unwrap_or(0);
            if names.is(Kinds::ALL, shndx, name, |n| names.is_crc(n)) {
                into.push((i as u32, self.get(i)));
            }
        }
    }
}

/// The prefix of the CRC symbols, whose names are the exports.
pub(super) const CRC_PREFIX: &[u8] = b"__crc_";
