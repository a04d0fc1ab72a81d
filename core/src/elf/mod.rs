//! A checked view of an ELF relocatable object: header, section table, sections found by name.
//!
//! The checks are libkmod's (`kmod_elf_new`): a file they reject is rejected here with the same
//! errno, and a file they accept is read the same way. Width and byte order come from `e_ident`.

mod header;
mod locals;
pub mod raw;
mod symbols;
mod symtab;
#[cfg(any(test, feature = "elf-writer"))]
pub mod writer;

pub use header::{names_table_range, section_table_range};
pub use locals::{LocalScan, LocalSymbols, MAX_KEPT, Unproven, local_part};
pub use symbols::{
    Export, Import, ImportScratch, Symbols, crc_sections, exports, imports, imports_with,
};

use crate::bytes::{Endian, cstr_at, to_usize};
use crate::error::{Anomaly, Error};
use header::{Header, table_size};
use raw::Layout;

/// The sections depmod reads, found in one pass when the file is parsed.
pub const READ_SECTIONS: [&str; 5] =
    [".modinfo", "__ksymtab_strings", ".symtab", ".strtab", "__versions"];

/// A validated ELF file: the header checks passed and the section-name table is usable.
#[derive(Clone, Copy, Debug)]
pub struct Elf<'a> {
    data: &'a [u8],
    endian: Endian,
    layout: &'static Layout,
    machine: u16,
    shoff: usize,
    shnum: u16,
    names: &'a [u8],
    /// `e_shstrndx`.
    names_index: u16,
    /// The first usable section of each [`READ_SECTIONS`] name.
    known: [Option<Section<'a>>; READ_SECTIONS.len()],
    /// The first thing wrong that libkmod reads past.
    anomaly: Option<Anomaly>,
    /// The local part of `.symtab`, when it is read from here rather than from `data`.
    locals: Option<&'a LocalSymbols>,
}

/// One section's location and contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section<'a> {
    /// Index in the section header table.
    pub index: u16,
    /// `sh_offset`.
    pub offset: u64,
    /// The `sh_size` bytes at `sh_offset`.
    pub data: &'a [u8],
}

impl<'a> Elf<'a> {
    /// Checks `data` the way libkmod does and returns a view of it: the header, the section
    /// name table, then one pass over the section headers that finds the sections depmod reads
    /// and notes what libkmod reads past.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let header = Header::parse(data)?;
        let mut elf = Elf {
            data,
            endian: header.endian,
            layout: header.layout,
            machine: header.machine,
            shoff: header.shoff,
            shnum: header.shnum,
            names: &[],
            names_index: 0,
            known: [None; READ_SECTIONS.len()],
            anomaly: None,
            locals: None,
        };
        elf.read_names(header.shstrndx)?;
        elf.scan_sections();
        elf.check_read_parts();
        Ok(elf)
    }

    /// The same file read from a buffer that need not hold the local part of `.symtab`, whose
    /// entries that matter are `locals` (a [`LocalScan`] of this file's table); `None` if
    /// `locals` was made from another table. Every reader then gives what it gives on the whole
    /// file.
    pub fn with_locals(self, locals: &'a LocalSymbols) -> Option<Self> {
        locals.fits(&self).then_some(Elf { locals: Some(locals), ..self })
    }

    /// The summary of `.symtab`'s local part given by [`Elf::with_locals`].
    pub fn locals(&self) -> Option<&'a LocalSymbols> {
        self.locals
    }

    /// Checks and keeps the section name table, section `shstrndx`.
    fn read_names(&mut self, shstrndx: u16) -> Result<(), Error> {
        if shstrndx == 0 || shstrndx >= self.shnum {
            return Err(Error::BadNamesIndex { index: shstrndx, count: self.shnum });
        }
        let names = self.section(shstrndx)?;
        match names.data.last() {
            None => return Err(Error::NamesEmpty { index: shstrndx }),
            Some(0) => {}
            Some(_) => return Err(Error::NamesNotTerminated { index: shstrndx }),
        }
        self.names = names.data;
        self.names_index = shstrndx;
        Ok(())
    }

    /// Finds the first usable section of each [`READ_SECTIONS`] name; notes the first section
    /// that runs past the end of the file or is named outside the name table.
    fn scan_sections(&mut self) {
        let len = self.data.len() as u64;
        for index in 1..self.shnum {
            let Ok((name_off, offset, size, kind)) = self.header(index) else { continue };
            let name = to_usize(u64::from(name_off)).and_then(|o| cstr_at(self.names, o));
            let read = name
                .and_then(|n| READ_SECTIONS.iter().position(|k| crate::bytes::eq(k.as_bytes(), n)));
            let Ok(section) = self.section(index) else {
                if kind != raw::SHT_NOBITS {
                    let name = read.and_then(|k| READ_SECTIONS.get(k)).map_or("", |k| k);
                    self.note(Anomaly::SectionIgnored { index, name, offset, size, len });
                }
                continue;
            };
            if name.is_none() {
                self.note(Anomaly::SectionNameOutOfRange { index, name: name_off });
                continue;
            }
            if let Some(slot) = read.and_then(|k| self.known.get_mut(k)) {
                slot.get_or_insert(section);
            }
        }
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Byte order of the file.
    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Field layout of the file's class.
    pub fn layout(&self) -> &'static Layout {
        self.layout
    }

    /// `e_machine`.
    pub fn machine(&self) -> u16 {
        self.machine
    }

    /// `e_shnum`.
    pub fn section_count(&self) -> u16 {
        self.shnum
    }

    /// Section `index`, checked to lie inside the file. Index 0 and indexes past `e_shnum` are
    /// [`Error::BadNamesIndex`]-like errors reported as out of bounds.
    pub fn section(&self, index: u16) -> Result<Section<'a>, Error> {
        let (_, offset, size, _) = self.header(index)?;
        let len = self.data.len() as u64;
        let out = Error::SectionOutOfBounds { index, offset, size, len };
        let end = offset.checked_add(size).filter(|&end| end <= len).ok_or(out)?;
        let range = to_usize(offset).zip(to_usize(end)).ok_or(out)?;
        let data = self.data.get(range.0..range.1).ok_or(out)?;
        Ok(Section { index, offset, data })
    }

    /// `sh_name`, `sh_offset`, `sh_size` and `sh_type` of section `index`.
    fn header(&self, index: u16) -> Result<(u32, u64, u64, u32), Error> {
        let len = self.data.len() as u64;
        let oob = Error::SectionOutOfBounds { index, offset: 0, size: 0, len };
        if index == 0 || index >= self.shnum {
            return Err(oob);
        }
        let base = usize::from(index)
            .checked_mul(self.layout.shdr_size)
            .and_then(|o| o.checked_add(self.shoff))
            .ok_or(oob)?;
        let l = self.layout;
        let name = self.endian.u32(self.data, base + l.sh_name);
        let offset = self.endian.word(self.data, base + l.sh_offset, l.wide);
        let size = self.endian.word(self.data, base + l.sh_size, l.wide);
        let kind = self.endian.u32(self.data, base + l.sh_type);
        match (name, offset, size, kind) {
            (Some(n), Some(o), Some(s), Some(k)) => Ok((n, o, s, k)),
            _ => Err(oob),
        }
    }

    /// A field of section `index`'s header that is `word`-sized in ELF64 when `wide`.
    fn header_field(&self, index: u16, field: usize, wide: bool) -> Option<u64> {
        let base =
            usize::from(index).checked_mul(self.layout.shdr_size)?.checked_add(self.shoff)?;
        self.endian.word(self.data, base.checked_add(field)?, wide && self.layout.wide)
    }

    /// Keeps the first anomaly found.
    fn note(&mut self, anomaly: Anomaly) {
        self.anomaly.get_or_insert(anomaly);
    }

    /// Checks what libkmod does not about the parts depmod reads: `.symtab`'s link and entry
    /// size, string sections without a final NUL, and parts that share bytes.
    fn check_read_parts(&mut self) {
        let [modinfo, _, symtab, strtab, _] = self.known;
        if let (Some(symtab), Some(strtab)) = (symtab, strtab) {
            let link = self.header_field(symtab.index, self.layout.sh_link, false).unwrap_or(0);
            if link != u64::from(strtab.index) {
                self.note(Anomaly::SymtabLink { link: link as u32, strtab: strtab.index });
            }
            let entsize = self.header_field(symtab.index, self.layout.sh_entsize, true);
            let expected = self.layout.sym_size as u64;
            if let Some(found) = entsize.filter(|&e| e != expected) {
                self.note(Anomaly::SymtabEntrySize { found, expected: expected as u8 });
            }
            if strtab.data.last().is_some_and(|&b| b != 0) {
                self.note(Anomaly::StrtabNotTerminated);
            }
        }
        if modinfo.and_then(|m| m.data.last().copied()).is_some_and(|b| b != 0) {
            self.note(Anomaly::LastStringNotTerminated(".modinfo"));
        }
        // Parts that share bytes: header, section table, name table and the sections read
        // (one section may serve as two of them, as when the name tables are merged).
        type Part = (&'static str, Option<u16>, u64, u64);
        let table = table_size(self.layout, self.shnum);
        let names = self.names_section();
        let fixed: [Part; 3] = [
            ("the ELF header", None, 0, self.layout.ehdr_size as u64),
            ("the section header table", None, self.shoff as u64, table),
            (
                "the section name table",
                names.map(|n| n.index),
                names.map_or(0, |n| n.offset),
                names.map_or(0, |n| n.data.len() as u64),
            ),
        ];
        let read = READ_SECTIONS.iter().zip(self.known).filter_map(|(&name, section)| {
            section.map(|s| (name, Some(s.index), s.offset, s.data.len() as u64))
        });
        let mut parts: [Part; READ_SECTIONS.len() + 3] =
            [("", None, 0, 0); READ_SECTIONS.len() + 3];
        for (slot, part) in parts.iter_mut().zip(fixed.into_iter().chain(read)) {
            *slot = part;
        }
        for (i, &(first, fi, a, alen)) in parts.iter().enumerate() {
            for &(second, si, b, blen) in parts.iter().skip(i + 1) {
                let shared = a < b.saturating_add(blen) && b < a.saturating_add(alen);
                if alen > 0 && blen > 0 && shared && (fi.is_none() || fi != si) {
                    self.note(Anomaly::Overlap { first, second, offset: a.max(b) });
                }
            }
        }
    }

    /// The first thing wrong with the file that libkmod reads past without complaint.
    pub fn anomaly(&self) -> Option<Anomaly> {
        self.anomaly
    }

    /// The section-name string table.
    pub fn names_section(&self) -> Option<Section<'a>> {
        self.section(self.names_index).ok()
    }

    /// Every usable section (inside the file, named inside the name table) with its name.
    pub fn sections(&self) -> impl Iterator<Item = (&'a [u8], Section<'a>)> + '_ {
        (1..self.shnum).filter_map(|index| self.named(index))
    }

    /// Section `index` with its name, if it is usable: inside the file, with a name inside the
    /// name table.
    fn named(&self, index: u16) -> Option<(&'a [u8], Section<'a>)> {
        let section = self.section(index).ok()?;
        let (name_off, _, _, _) = self.header(index).ok()?;
        Some((cstr_at(self.names, to_usize(u64::from(name_off))?)?, section))
    }

    /// The first section called `name`, scanning indexes 1.. and skipping headers that run past
    /// the end of the file or have a name outside the name table, as libkmod does.
    pub fn section_by_name(&self, name: &str) -> Option<Section<'a>> {
        if let Some(k) = READ_SECTIONS.iter().position(|&k| k == name) {
            return self.known.get(k).copied().flatten();
        }
        (1..self.shnum).find_map(|index| {
            let (found, section) = self.named(index)?;
            crate::bytes::eq(found, name.as_bytes()).then_some(section)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::writer::{Class, ObjectBuilder};
    use super::*;
    use alloc::vec::Vec;

    fn sample(class: Class, endian: Endian) -> Vec<u8> {
        let mut b = ObjectBuilder::new(class, endian);
        b.section(".modinfo", b"license=GPL\0");
        b.section(".modinfo", b"second=ignored\0");
        b.build()
    }

    #[test]
    fn finds_the_first_section_of_a_name_in_every_class_and_order() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let bytes = sample(class, endian);
                let elf = Elf::parse(&bytes).expect("valid");
                assert_eq!(elf.endian(), endian);
                let s = elf.section_by_name(".modinfo").expect("found");
                assert_eq!(s.data, b"license=GPL\0");
                assert!(elf.section_by_name(".symtab").is_none());
            }
        }
    }

    fn patch(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
    }

    #[test]
    fn rejects_what_libkmod_rejects() {
        let good = sample(Class::Elf64, Endian::Little);
        let len = good.len() as u64;
        assert_eq!(Elf::parse(&good[..16]).unwrap_err(), Error::NotElf { len: 16 });
        assert_eq!(Elf::parse(b"hello, world, not elf").unwrap_err(), Error::NotElf { len: 21 });
        assert_eq!(
            Elf::parse(&good[..64]).unwrap_err(),
            Error::HeaderTruncated { len: 64, header: 64 }
        );

        let mut b = good.clone();
        patch(&mut b, 4, &[3]);
        assert_eq!(Elf::parse(&b).unwrap_err(), Error::BadClass(3));

        let mut b = good.clone();
        patch(&mut b, 5, &[0]);
        assert_eq!(Elf::parse(&b).unwrap_err(), Error::BadData(0));

        let mut b = good.clone();
        patch(&mut b, 58, &40u16.to_le_bytes());
        assert_eq!(
            Elf::parse(&b).unwrap_err(),
            Error::BadSectionEntrySize { found: 40, expected: 64 }
        );

        let mut b = good.clone();
        patch(&mut b, 60, &1000u16.to_le_bytes());
        let shoff = u64::from_le_bytes(b[40..48].try_into().unwrap());
        assert_eq!(
            Elf::parse(&b).unwrap_err(),
            Error::SectionTableOutOfBounds { offset: shoff, count: 1000, len }
        );

        let mut b = good.clone();
        patch(&mut b, 40, &u64::MAX.to_le_bytes());
        assert_eq!(
            Elf::parse(&b).unwrap_err(),
            Error::SectionTableOutOfBounds { offset: u64::MAX, count: 4, len }
        );

        for index in [0u16, 4, 77] {
            let mut b = good.clone();
            patch(&mut b, 62, &index.to_le_bytes());
            assert_eq!(Elf::parse(&b).unwrap_err(), Error::BadNamesIndex { index, count: 4 });
        }
    }

    /// Offset of section `index`'s header in `bytes` (an ELF64 little-endian file).
    fn shdr(bytes: &[u8], index: usize) -> usize {
        u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize + index * 64
    }

    #[test]
    fn rejects_bad_name_tables() {
        let good = sample(Class::Elf64, Endian::Little);
        let names = usize::from(u16::from_le_bytes(good[62..64].try_into().unwrap()));
        let at = shdr(&good, names);
        let len = good.len() as u64;
        let offset = u64::from_le_bytes(good[at + 24..at + 32].try_into().unwrap());
        let size = u64::from_le_bytes(good[at + 32..at + 40].try_into().unwrap());

        let mut b = good.clone();
        patch(&mut b, at + 32, &0u64.to_le_bytes());
        assert_eq!(Elf::parse(&b).unwrap_err(), Error::NamesEmpty { index: names as u16 });

        let mut b = good.clone();
        let last = (offset + size - 1) as usize;
        b[last] = b'x';
        assert_eq!(Elf::parse(&b).unwrap_err(), Error::NamesNotTerminated { index: names as u16 });

        let mut b = good.clone();
        patch(&mut b, at + 24, &(len - 1).to_le_bytes());
        assert_eq!(
            Elf::parse(&b).unwrap_err(),
            Error::SectionOutOfBounds { index: names as u16, offset: len - 1, size, len }
        );
    }

    #[test]
    fn skips_sections_out_of_bounds_or_badly_named() {
        let mut b = sample(Class::Elf64, Endian::Little);
        // Section 1 is the first .modinfo: push it out of the file; the second one is found.
        let at = shdr(&b, 1);
        let len = b.len() as u64;
        patch(&mut b, at + 24, &len.to_le_bytes());
        let elf = Elf::parse(&b).expect("still valid");
        assert_eq!(elf.section_by_name(".modinfo").unwrap().data, b"second=ignored\0");
        // A name offset outside the name table is skipped too.
        let mut b = sample(Class::Elf64, Endian::Little);
        let at = shdr(&b, 1);
        patch(&mut b, at, &0xffff_u32.to_le_bytes());
        let elf = Elf::parse(&b).expect("still valid");
        assert_eq!(elf.section_by_name(".modinfo").unwrap().data, b"second=ignored\0");
    }
}
