//! A module's exported and needed symbols, read as libkmod reads them.

use alloc::vec::Vec;

use super::Elf;
use super::raw;
use super::symtab::{CRC_PREFIX, Kinds, Names, Sym, SymbolTable};
use crate::bytes::{eq, memchr0, to_usize};
use crate::error::Error;

/// A symbol the module exports, with its CRC (0 when the module has no `__crc_` symbols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    /// Symbol name, without the `__crc_` prefix.
    pub name: &'a [u8],
    /// Version CRC; `u64::MAX` when the CRC symbol points outside its section.
    pub crc: u64,
}

/// A symbol the module needs from the kernel or from other modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    /// Raw symbol name, as in `.strtab` or `__versions`.
    pub name: &'a [u8],
    /// CRC from `__versions`, or 0.
    pub crc: u64,
    /// A weak undefined symbol (`STB_WEAK`).
    pub weak: bool,
}

/// A module's symbol table, read once: the entries its lists depend on, collected into
/// reusable working space, for [`Symbols::exports`] and [`Symbols::imports`].
pub struct Symbols<'a, 's> {
    elf: Elf<'a>,
    /// The table's names, or why the table cannot be read.
    names: Result<Names<'a>, Error>,
    scratch: &'s mut ImportScratch,
}

/// The entries of `kinds` among `entries` (those that matter), with their indexes.
fn of_kind<'e, 'a: 'e>(
    entries: &'e [(u32, Sym)],
    names: Names<'a>,
    kinds: Kinds,
) -> impl Iterator<Item = (usize, Sym)> + 'e {
    let wanted = move |(_, s): &&(u32, Sym)| names.is(kinds, s.shndx, s.name, |n| names.is_crc(n));
    entries.iter().filter(wanted).map(|&(i, sym)| (i as usize, sym))
}

impl<'a, 's> Symbols<'a, 's> {
    /// Reads `elf`'s symbol table into `scratch`.
    pub fn read(elf: &Elf<'a>, scratch: &'s mut ImportScratch) -> Self {
        let table = SymbolTable::new(elf);
        match &table {
            Ok(table) => table.collect(&mut scratch.entries),
            Err(_) => scratch.entries.clear(),
        }
        Symbols { elf: *elf, names: table.map(|t| t.names), scratch }
    }

    /// Calls `f` for each symbol the module exports, in table order.
    ///
    /// The `__crc_*` symbols of `.symtab` are the exports when there is at least one and every
    /// name offset is in range; otherwise the strings of `__ksymtab_strings` are (all with CRC
    /// 0), which includes namespace strings. No section at all means no exports.
    pub fn exports(&self, mut f: impl FnMut(Export<'a>)) -> Result<(), Error> {
        if let Ok(names) = self.names {
            let entries = &self.scratch.entries;
            let mut found = 0usize;
            let mut in_range = true;
            for (i, sym) in of_kind(entries, names, Kinds::CRC_OR_MISNAMED) {
                if names.check(i, &sym).is_err() {
                    in_range = false;
                    break;
                }
                if names.is_crc(sym.name) {
                    // A CRC name must end inside the table (kmod would read past it).
                    names.name(i, &sym)?;
                    found += 1;
                }
            }
            if in_range && found > 0 {
                for (i, sym) in of_kind(entries, names, Kinds::CRC) {
                    let name = names.name(i, &sym)?.get(CRC_PREFIX.len()..).unwrap_or_default();
                    f(Export { name, crc: resolve_crc(&self.elf, sym.value, sym.shndx) });
                }
                return Ok(());
            }
        }
        ksymtab_strings(&self.elf, f)
    }

    /// The sections `__crc_` symbols point into (where their CRCs are read), in table order;
    /// empty when the export list does not come from CRC symbols.
    pub fn crc_sections(&self) -> Vec<u16> {
        let mut found = Vec::new();
        let Ok(names) = self.names else { return found };
        for (_, sym) in of_kind(&self.scratch.entries, names, Kinds::CRC) {
            let in_section = sym.shndx != raw::SHN_ABS && sym.shndx != raw::SHN_UNDEF;
            if in_section && !found.contains(&sym.shndx) {
                found.push(sym.shndx);
            }
        }
        found
    }

    /// Calls `f` for each symbol the module needs: the named undefined entries of `.symtab`
    /// (weak ones included) in table order, each with its `__versions` CRC, then the
    /// `__versions` records no entry matched. Fails without `.symtab`/`.strtab`, on a bad name
    /// offset, or on a `__versions` record whose name is not NUL-terminated (kmod 34.2 then
    /// drops the whole list).
    pub fn imports(&mut self, mut f: impl FnMut(Import<'a>)) -> Result<(), Error> {
        let names = self.names?;
        let elf = &self.elf;
        let sparc = matches!(elf.machine(), raw::EM_SPARC | raw::EM_SPARCV9);
        let register = |sym: &Sym| sparc && sym.info & 0xf == raw::STT_REGISTER;
        let ImportScratch { entries, versions, slots, matched } = &mut *self.scratch;
        // Validate first: a bad entry anywhere means no list at all.
        for (i, sym) in of_kind(entries, names, Kinds::UNDEFINED) {
            if !register(&sym) {
                names.name(i, &sym)?;
            }
        }
        let section = version_section(elf);
        let crc_size = elf.layout().version_crc_size;
        let (endian, wide) = (elf.endian(), elf.layout().wide);
        versions.clear();
        for (record, chunk) in section.chunks_exact(raw::VERSION_RECORD_SIZE).enumerate() {
            let field = chunk.get(crc_size..).unwrap_or_default();
            let len =
                memchr0(field).ok_or(Error::VersionNotTerminated { record: record as u32 })?;
            let name = (record * raw::VERSION_RECORD_SIZE + crc_size) as u32;
            let crc = endian.word(chunk, 0, wide).unwrap_or(0);
            versions.push(Version { name, len: len as u32, crc });
        }
        let index = VersionIndex::build(section, versions, slots);
        matched.clear();
        matched.resize(versions.len(), false);
        for (i, sym) in of_kind(entries, names, Kinds::UNDEFINED) {
            if register(&sym) {
                continue;
            }
            let name = names.name(i, &sym)?;
            if name.is_empty() {
                continue;
            }
            let mut crc = 0;
            if let Some(r) = index.find(name) {
                if let Some(flag) = matched.get_mut(r) {
                    *flag = true;
                }
                crc = versions.get(r).map_or(0, |v| v.crc);
            }
            let weak = sym.info >> 4 == raw::STB_WEAK;
            f(Import { name, crc, weak });
        }
        for (v, seen) in versions.iter().zip(matched.iter()) {
            if !seen {
                f(Import { name: name_of(section, v), crc: v.crc, weak: false });
            }
        }
        Ok(())
    }
}

/// [`Symbols::exports`] of `elf`.
pub fn exports<'a>(elf: &Elf<'a>, f: impl FnMut(Export<'a>)) -> Result<(), Error> {
    Symbols::read(elf, &mut ImportScratch::default()).exports(f)
}

/// [`Symbols::crc_sections`] of `elf`.
pub fn crc_sections(elf: &Elf<'_>) -> Vec<u16> {
    Symbols::read(elf, &mut ImportScratch::default()).crc_sections()
}

/// [`Symbols::imports`] of `elf`.
pub fn imports<'a>(elf: &Elf<'a>, f: impl FnMut(Import<'a>)) -> Result<(), Error> {
    imports_with(elf, &mut ImportScratch::default(), f)
}

/// [`imports`] with reusable working space.
pub fn imports_with<'a>(
    elf: &Elf<'a>,
    scratch: &mut ImportScratch,
    f: impl FnMut(Import<'a>),
) -> Result<(), Error> {
    Symbols::read(elf, scratch).imports(f)
}

/// The CRC of a `__crc_` symbol: its value for absolute or undefined symbols, otherwise the
/// 32-bit word at `value` inside section `shndx`, or `u64::MAX` when that is out of bounds.
fn resolve_crc(elf: &Elf<'_>, value: u64, shndx: u16) -> u64 {
    if shndx == raw::SHN_ABS || shndx == raw::SHN_UNDEF {
        return value;
    }
    let Ok(section) = elf.section(shndx) else {
        return u64::MAX;
    };
    let size = section.data.len() as u64;
    if size < 4 || value > size - 4 {
        return u64::MAX;
    }
    to_usize(value).and_then(|v| elf.endian().u32(section.data, v)).map_or(u64::MAX, u64::from)
}

/// The fallback export list: the NUL-separated strings of `__ksymtab_strings`.
fn ksymtab_strings<'a>(elf: &Elf<'a>, mut f: impl FnMut(Export<'a>)) -> Result<(), Error> {
    const NAME: &str = "__ksymtab_strings";
    let Some(section) = elf.section_by_name(NAME) else {
        return Ok(());
    };
    let data = section.data;
    let start = data.iter().position(|&b| b != 0).unwrap_or(data.len());
    if start + 1 >= data.len() {
        return Ok(());
    }
    if data.last() != Some(&0) {
        return Err(Error::StringsNotTerminated(NAME));
    }
    data.get(start..)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .for_each(|name| f(Export { name, crc: 0 }));
    Ok(())
}

/// The `__versions` records, or none when the section's size is not a multiple of a record.
fn version_section<'a>(elf: &Elf<'a>) -> &'a [u8] {
    elf.section_by_name("__versions")
        .map(|s| s.data)
        .filter(|d| d.len() % raw::VERSION_RECORD_SIZE == 0)
        .unwrap_or_default()
}

/// One `__versions` record: where its name lies in the section, and its CRC.
#[derive(Clone, Copy, Debug)]
struct Version {
    name: u32,
    len: u32,
    crc: u64,
}

/// Working space of the symbol readers ([`Symbols`]), reusable from one module to the next.
#[derive(Clone, Debug, Default)]
pub struct ImportScratch {
    /// The entries of the table that matter.
    entries: Vec<(u32, Sym)>,
    versions: Vec<Version>,
    /// Open-addressing table of record numbers plus one (0: an empty slot), keyed by name;
    /// each name leads to its first record.
    slots: Vec<u32>,
    matched: Vec<bool>,
}

/// A fast hash of a symbol name, for the per-module lookup table only.
fn name_hash(name: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = name.len() as u64;
    let mut chunks = name.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    if let Some(t) = tail.get_mut(..rest.len()) {
        t.copy_from_slice(rest);
    }
    h = (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^ (h >> 29)
}

/// Finds the first `__versions` record of each name in constant time.
struct VersionIndex<'s, 'a> {
    section: &'a [u8],
    versions: &'s [Version],
    slots: &'s [u32],
    mask: usize,
}

impl<'s, 'a> VersionIndex<'s, 'a> {
    fn build(section: &'a [u8], versions: &'s [Version], slots: &'s mut Vec<u32>) -> Self {
        let size = (versions.len() * 2).next_power_of_two().max(1);
        slots.clear();
        slots.resize(size, 0);
        let mask = size - 1;
        for (i, v) in versions.iter().enumerate() {
            let name = name_of(section, v);
            let mut at = name_hash(name) as usize & mask;
            while let Some(slot) = slots.get_mut(at) {
                if *slot == 0 {
                    *slot = i as u32 + 1;
                    break;
                }
                let taken = versions.get(*slot as usize - 1);
                if taken.is_some_and(|o| eq(name_of(section, o), name)) {
                    break; // an earlier record has this name
                }
                at = (at + 1) & mask;
            }
        }
        VersionIndex { section, versions, slots, mask }
    }

    /// The first record named `name`.
    fn find(&self, name: &[u8]) -> Option<usize> {
        let mut at = name_hash(name) as usize & self.mask;
        loop {
            let slot = *self.slots.get(at)?;
            let record = (slot as usize).checked_sub(1)?;
            if self.versions.get(record).is_some_and(|v| eq(name_of(self.section, v), name)) {
                return Some(record);
            }
            at = (at + 1) & self.mask;
        }
    }
}

fn name_of<'a>(section: &'a [u8], v: &Version) -> &'a [u8] {
    section.get(v.name as usize..(v.name + v.len) as usize).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Endian;
    use crate::elf::writer::{Class, ModuleSpec};
    use alloc::vec;
    use alloc::vec::Vec;

    fn spec() -> ModuleSpec {
        let mut m = ModuleSpec::new();
        m.exports = vec![b"exp_a".to_vec(), b"exp_b".to_vec()];
        m.imports = vec![(b"imp_x".to_vec(), false), (b"imp_w".to_vec(), true)];
        m.versions = vec![(b"imp_x".to_vec(), 0x11), (b"module_layout".to_vec(), 0x22)];
        m
    }

    fn exports_of(bytes: &[u8]) -> Result<Vec<(Vec<u8>, u64)>, Error> {
        let elf = Elf::parse(bytes).unwrap();
        let mut out = Vec::new();
        exports(&elf, |e| out.push((e.name.to_vec(), e.crc)))?;
        Ok(out)
    }

    fn imports_of(bytes: &[u8]) -> Result<Vec<(Vec<u8>, u64, bool)>, Error> {
        let elf = Elf::parse(bytes).unwrap();
        let mut out = Vec::new();
        imports(&elf, |i| out.push((i.name.to_vec(), i.crc, i.weak)))?;
        Ok(out)
    }

    /// File offset of `name`'s data, and its size.
    fn locate(bytes: &[u8], name: &str) -> (usize, usize) {
        let elf = Elf::parse(bytes).unwrap();
        let s = elf.section_by_name(name).unwrap();
        (s.offset as usize, s.data.len())
    }

    /// File offset of section `name`'s header (ELF64 little endian).
    fn header_of(bytes: &[u8], name: &str) -> usize {
        let elf = Elf::parse(bytes).unwrap();
        let index = elf.section_by_name(name).unwrap().index as usize;
        u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize + index * 64
    }

    #[test]
    fn crc_exports_in_both_byte_orders_and_classes() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let mut m = spec();
                m.class = class;
                m.endian = endian;
                m.crcs = Some(vec![0xdead_beef, 0x0102_0304]);
                let b = m.build();
                assert_eq!(
                    exports_of(&b).unwrap(),
                    [(b"exp_a".to_vec(), 0xdead_beef), (b"exp_b".to_vec(), 0x0102_0304)]
                );
                assert_eq!(
                    imports_of(&b).unwrap(),
                    [
                        (b"imp_x".to_vec(), 0x11, false),
                        (b"imp_w".to_vec(), 0, true),
                        (b"module_layout".to_vec(), 0x22, false)
                    ]
                );
            }
        }
    }

    #[test]
    fn ksymtab_strings_fallback_with_namespaces() {
        let mut m = spec();
        m.namespace = Some(b"NS".to_vec());
        let b = m.build();
        let names: Vec<Vec<u8>> = exports_of(&b).unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, [b"exp_a".to_vec(), b"NS".to_vec(), b"exp_b".to_vec(), b"NS".to_vec()]);
    }

    #[test]
    fn crc_out_of_its_section_is_all_ones() {
        let mut m = spec();
        m.crcs = Some(vec![1, 2]);
        let mut b = m.build();
        // Shrink __kcrctab to 4 bytes: the second CRC (at offset 4) no longer fits.
        let at = header_of(&b, "__kcrctab");
        b[at + 32..at + 40].copy_from_slice(&4u64.to_le_bytes());
        assert_eq!(
            exports_of(&b).unwrap(),
            [(b"exp_a".to_vec(), 1), (b"exp_b".to_vec(), u64::MAX)]
        );
    }

    #[test]
    fn unterminated_ksymtab_strings_is_an_error() {
        let mut b = spec().build();
        let (off, len) = locate(&b, "__ksymtab_strings");
        b[off + len - 1] = b'x';
        assert_eq!(exports_of(&b), Err(Error::StringsNotTerminated("__ksymtab_strings")));
    }

    #[test]
    fn symtab_problems() {
        let good = spec().build();
        // A size that is not a multiple of the entry size.
        let mut b = good.clone();
        let at = header_of(&b, ".symtab");
        let size = u64::from_le_bytes(b[at + 32..at + 40].try_into().unwrap());
        b[at + 32..at + 40].copy_from_slice(&(size - 1).to_le_bytes());
        assert_eq!(imports_of(&b), Err(Error::SymtabSize { size: size - 1, entry: 24 }));
        // Without CRC symbols exports never needed the table.
        assert!(exports_of(&b).is_ok());

        // A missing .strtab (renamed in the section-name table).
        let mut b = good.clone();
        let (names, len) = locate(&b, ".shstrtab");
        let pos = b[names..names + len].windows(7).position(|w| w == b".strtab").unwrap();
        b[names + pos + 1] = b'X';
        assert_eq!(imports_of(&b), Err(Error::MissingSection(".strtab")));

        // st_name of an undefined symbol past the end of .strtab.
        let mut b = good.clone();
        let (symtab, _) = locate(&b, ".symtab");
        let (_, strtab_len) = locate(&b, ".strtab");
        let elf = Elf::parse(&good).unwrap();
        let table = SymbolTable::new(&elf).unwrap();
        let undef = (1..table.count).find(|&i| table.get(i).shndx == 0).unwrap();
        let bad = strtab_len as u32 + 5;
        b[symtab + undef * 24..symtab + undef * 24 + 4].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(
            imports_of(&b),
            Err(Error::NameOutOfRange {
                symbol: undef as u32,
                name: bad,
                strtab: strtab_len as u64
            })
        );

        // A .strtab whose last name (a defined, non-CRC symbol's) has no NUL: kmod never reads
        // that name to its end, so neither list is affected.
        let mut b = good.clone();
        let (strtab, len) = locate(&b, ".strtab");
        b[strtab + len - 1] = b'z';
        assert!(imports_of(&b).is_ok() && exports_of(&b).is_ok());
    }

    #[test]
    fn unterminated_names_are_read_on_past_strtab() {
        use crate::elf::writer::{ObjectBuilder, STB_GLOBAL, STB_LOCAL, SymbolSpec};
        // An undefined symbol's name, last in .strtab.
        let mut o = ObjectBuilder::new(Class::Elf64, Endian::Little);
        o.undefined(b"needed_last", false);
        let mut b = o.build();
        let (strtab, len) = locate(&b, ".strtab");
        b[strtab + len - 1] = b'z';
        // libkmod reads on to the next NUL: here the alignment padding after .strtab.
        assert_eq!(imports_of(&b), Ok(vec![(b"needed_lastz".to_vec(), 0, false)]));
        assert_eq!(Elf::parse(&b).unwrap().anomaly(), Some(crate::Anomaly::StrtabNotTerminated));
        // A CRC symbol's name, last in .strtab.
        let mut o = ObjectBuilder::new(Class::Elf64, Endian::Little);
        let kcrctab = o.section("__kcrctab", &[1, 0, 0, 0]);
        let crc = SymbolSpec {
            name: b"__crc_last".to_vec(),
            value: 0,
            info: STB_LOCAL << 4,
            shndx: kcrctab,
        };
        o.symbol(crc);
        o.symbol(SymbolSpec { name: b"x".to_vec(), value: 0, info: STB_GLOBAL << 4, shndx: 0 });
        let mut b = o.build();
        let (strtab, len) = locate(&b, ".strtab");
        let at = b[strtab..strtab + len].windows(10).position(|w| w == b"__crc_last").unwrap();
        b[strtab + at + 10] = b'z'; // its NUL
        b[strtab + len - 1] = b'z'; // and the table's last NUL
        assert_eq!(exports_of(&b), Ok(vec![(b"lastzxz".to_vec(), 1)]));
    }

    #[test]
    fn the_first_record_of_a_name_gives_the_crc() {
        let mut m = spec();
        m.versions = vec![(b"other".to_vec(), 7), (b"imp_x".to_vec(), 1), (b"imp_x".to_vec(), 2)];
        assert_eq!(
            imports_of(&m.build()).unwrap(),
            [
                (b"imp_x".to_vec(), 1, false),
                (b"imp_w".to_vec(), 0, true),
                (b"other".to_vec(), 7, false),
                (b"imp_x".to_vec(), 2, false)
            ]
        );
    }

    #[test]
    fn versions_problems() {
        // A record without NUL drops the whole list, as kmod 34.2 does.
        let mut m = spec();
        m.versions.push((vec![b'a'; 56], 3));
        assert_eq!(imports_of(&m.build()), Err(Error::VersionNotTerminated { record: 2 }));
        // A section of a bad size is ignored: no CRCs, no extra records.
        let mut m = spec();
        m.versions.clear();
        m.extra_sections.push(("__versions".into(), vec![0; 65]));
        assert_eq!(
            imports_of(&m.build()).unwrap(),
            [(b"imp_x".to_vec(), 0, false), (b"imp_w".to_vec(), 0, true)]
        );
    }

    #[test]
    fn sparc_register_symbols_are_not_imports() {
        use crate::elf::writer::{ObjectBuilder, SymbolSpec};
        let mut o = ObjectBuilder::new(Class::Elf64, Endian::Big);
        o.machine(raw::EM_SPARCV9);
        o.symbol(SymbolSpec { name: b"%g7".to_vec(), value: 0, info: 0x10 | 13, shndx: 0 });
        o.undefined(b"real", false);
        let b = o.build();
        assert_eq!(imports_of(&b).unwrap(), [(b"real".to_vec(), 0, false)]);
    }
}
