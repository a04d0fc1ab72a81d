//! A module's exported and needed symbols, read as libkmod reads them.

use super::{Elf, raw};
use crate::bytes::{cstr_at, memchr0, to_usize};
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

/// One `.symtab` entry.
struct Sym {
    name: u32,
    value: u64,
    info: u8,
    shndx: u16,
}

/// `.symtab` with its `.strtab`.
struct SymbolTable<'e, 'a> {
    elf: &'e Elf<'a>,
    symtab: &'a [u8],
    strtab: &'a [u8],
    count: usize,
}

impl<'e, 'a> SymbolTable<'e, 'a> {
    /// Finds `.strtab` and `.symtab` and checks the table's size.
    fn new(elf: &'e Elf<'a>) -> Result<Self, Error> {
        let strtab = elf
            .section_by_name(".strtab")
            .ok_or(Error::MissingSection(".strtab"))?;
        let symtab = elf
            .section_by_name(".symtab")
            .ok_or(Error::MissingSection(".symtab"))?;
        let entry = elf.layout().sym_size;
        if symtab.data.len() % entry != 0 {
            return Err(Error::SymtabSize {
                size: symtab.data.len() as u64,
                entry: entry as u8,
            });
        }
        Ok(SymbolTable {
            elf,
            symtab: symtab.data,
            strtab: strtab.data,
            count: symtab.data.len() / entry,
        })
    }

    /// Entry `i` (1 ≤ i < count).
    fn get(&self, i: usize) -> Sym {
        let l = self.elf.layout();
        let e = self.elf.endian();
        let base = i * l.sym_size;
        let s = self.symtab;
        Sym {
            name: e.u32(s, base + l.st_name).unwrap_or(0),
            value: e.word(s, base + l.st_value, l.wide).unwrap_or(0),
            info: s.get(base + l.st_info).copied().unwrap_or(0),
            shndx: e.u16(s, base + l.st_shndx).unwrap_or(0),
        }
    }

    /// Whether entry `i`'s name offset lies inside `.strtab`.
    fn name_in_range(&self, i: usize, sym: &Sym) -> Result<(), Error> {
        if u64::from(sym.name) >= self.strtab.len() as u64 {
            return Err(Error::NameOutOfRange {
                symbol: i as u32,
                name: sym.name,
                strtab: self.strtab.len() as u64,
            });
        }
        Ok(())
    }

    /// Entry `i`'s name.
    fn name(&self, i: usize, sym: &Sym) -> Result<&'a [u8], Error> {
        self.name_in_range(i, sym)?;
        to_usize(u64::from(sym.name))
            .and_then(|off| cstr_at(self.strtab, off))
            .ok_or(Error::NameNotTerminated {
                symbol: i as u32,
                name: sym.name,
            })
    }
}

const CRC_PREFIX: &[u8] = b"__crc_";

/// Calls `f` for each symbol the module exports, in table order.
///
/// The `__crc_*` symbols of `.symtab` are the exports when there is at least one and every name
/// offset is in range; otherwise the strings of `__ksymtab_strings` are (all with CRC 0), which
/// includes namespace strings. No section at all means no exports.
pub fn exports<'a>(elf: &Elf<'a>, mut f: impl FnMut(Export<'a>)) -> Result<(), Error> {
    if let Ok(table) = SymbolTable::new(elf) {
        let mut found = 0usize;
        let mut in_range = true;
        for i in 1..table.count {
            let sym = table.get(i);
            if table.name_in_range(i, &sym).is_err() {
                in_range = false;
                break;
            }
            if table.name(i, &sym)?.starts_with(CRC_PREFIX) {
                found += 1;
            }
        }
        if in_range && found > 0 {
            for i in 1..table.count {
                let sym = table.get(i);
                if let Some(name) = table.name(i, &sym)?.strip_prefix(CRC_PREFIX) {
                    f(Export {
                        name,
                        crc: resolve_crc(elf, sym.value, sym.shndx),
                    });
                }
            }
            return Ok(());
        }
    }
    ksymtab_strings(elf, f)
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
    to_usize(value)
        .and_then(|v| elf.endian().u32(section.data, v))
        .map_or(u64::MAX, u64::from)
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

/// One usable `__versions` record: CRC and name.
fn version_records<'a>(elf: &Elf<'a>) -> impl Iterator<Item = (usize, u64, &'a [u8])> {
    let records = elf
        .section_by_name("__versions")
        .map(|s| s.data)
        .filter(|d| d.len() % raw::VERSION_RECORD_SIZE == 0)
        .unwrap_or_default();
    let crc_size = elf.layout().version_crc_size;
    let endian = elf.endian();
    let wide = elf.layout().wide;
    records
        .chunks_exact(raw::VERSION_RECORD_SIZE)
        .enumerate()
        .filter_map(move |(i, rec)| {
            let field = rec.get(crc_size..)?;
            let name = field.get(..memchr0(field)?)?;
            Some((i, endian.word(rec, 0, wide)?, name))
        })
}

/// Calls `f` for each symbol the module needs: the named undefined entries of `.symtab`
/// (weak ones included) in table order, each with its `__versions` CRC, then the `__versions`
/// records no entry matched. Fails without `.symtab`/`.strtab` or on a bad name offset.
pub fn imports<'a>(elf: &Elf<'a>, mut f: impl FnMut(Import<'a>)) -> Result<(), Error> {
    let table = SymbolTable::new(elf)?;
    let sparc = matches!(elf.machine(), raw::EM_SPARC | raw::EM_SPARCV9);
    let undefined = |i: usize| {
        let sym = table.get(i);
        let skip = sym.shndx != raw::SHN_UNDEF || (sparc && sym.info & 0xf == raw::STT_REGISTER);
        (!skip).then_some(sym)
    };
    // Validate first: a bad entry anywhere means no list at all.
    for i in 1..table.count {
        if let Some(sym) = undefined(i) {
            table.name(i, &sym)?;
        }
    }
    let record_count = elf
        .section_by_name("__versions")
        .map_or(0, |s| s.data.len() / raw::VERSION_RECORD_SIZE);
    // Records matched by some symbol; kept on the stack for the common sizes.
    let mut matched = alloc::vec![false; record_count];
    for i in 1..table.count {
        let Some(sym) = undefined(i) else { continue };
        let name = table.name(i, &sym)?;
        if name.is_empty() {
            continue;
        }
        let found = version_records(elf).find(|&(_, _, n)| n == name);
        if let Some(flag) = found.and_then(|(idx, _, _)| matched.get_mut(idx)) {
            *flag = true;
        }
        let weak = sym.info >> 4 == raw::STB_WEAK;
        f(Import {
            name,
            crc: found.map_or(0, |(_, crc, _)| crc),
            weak,
        });
    }
    for (idx, crc, name) in version_records(elf) {
        if !matched.get(idx).copied().unwrap_or(true) {
            f(Import {
                name,
                crc,
                weak: false,
            });
        }
    }
    Ok(())
}
