//! The validated record of one module: everything depmod needs from its file, copied out of it.

use alloc::vec::Vec;

use crate::elf::{self, Elf};
use crate::error::Error;
use crate::modinfo;

/// A byte range inside [`ModuleInfo`]'s string storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// A symbol with its CRC.
#[derive(Clone, Copy, Debug)]
struct Sym {
    name: Span,
    crc: u64,
}

/// What depmod uses of one module file. It owns copies of the strings, so the file's bytes can be
/// dropped (or the buffer reused) once it is built.
///
/// Each part is read independently, as libkmod does: a module whose symbol table is broken can
/// still have aliases. The first error of each part is kept for the caller to report.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    strings: Vec<u8>,
    aliases: Vec<Span>,
    softdeps: Vec<Span>,
    weakdeps: Vec<Span>,
    exports: Vec<Sym>,
    imports: Vec<Sym>,
    /// `weak[i]`: `imports[i]` is a weak symbol. Kept apart to keep `Sym` small.
    weak: Vec<bool>,
    /// Why the file is not a usable ELF object at all (its header checks failed). The other
    /// parts are then empty and their errors unset.
    pub elf_error: Option<Error>,
    /// Why the export list could not be read (kmod reports this one).
    pub exports_error: Option<Error>,
    /// Why `.modinfo` could not be read (kmod is silent about it).
    pub modinfo_error: Option<Error>,
    /// Why the import list could not be read (kmod is silent about it).
    pub imports_error: Option<Error>,
}

/// A needed symbol as seen by the resolver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needed<'a> {
    /// Raw name.
    pub name: &'a [u8],
    /// CRC from `__versions`, or 0.
    pub crc: u64,
    /// Weak undefined symbol.
    pub weak: bool,
}

impl ModuleInfo {
    /// Reads a module from the bytes of its (decompressed) file. Never fails: problems are
    /// recorded in the `*_error` fields and the affected parts are left empty.
    pub fn parse(data: &[u8]) -> ModuleInfo {
        let mut info = ModuleInfo::default();
        let elf = match Elf::parse(data) {
            Ok(elf) => elf,
            Err(e) => {
                info.elf_error = Some(e);
                return info;
            }
        };
        info.read_exports(&elf);
        info.read_modinfo(&elf);
        info.read_imports(&elf);
        info
    }

    fn push(&mut self, bytes: &[u8]) -> Span {
        let start = self.strings.len() as u32;
        self.strings.extend_from_slice(bytes);
        Span { start, len: bytes.len() as u32 }
    }

    fn get(&self, span: Span) -> &[u8] {
        let start = span.start as usize;
        self.strings.get(start..start + span.len as usize).unwrap_or_default()
    }

    fn read_exports(&mut self, elf: &Elf<'_>) {
        let mark = self.strings.len();
        let result = elf::exports(elf, |e| {
            let name = self.push(e.name);
            self.exports.push(Sym { name, crc: e.crc });
        });
        if let Err(e) = result {
            // The readers validate before they emit, but never keep half a list.
            self.exports.clear();
            self.strings.truncate(mark);
            self.exports_error = Some(e);
        }
    }

    fn read_modinfo(&mut self, elf: &Elf<'_>) {
        let Some(section) = elf.section_by_name(".modinfo") else {
            return;
        };
        for r in modinfo::records(section.data) {
            let list = match r.key {
                b"alias" => 0,
                b"softdep" => 1,
                b"weakdep" => 2,
                _ => continue,
            };
            let span = self.push(r.value);
            match list {
                0 => self.aliases.push(span),
                1 => self.softdeps.push(span),
                _ => self.weakdeps.push(span),
            }
        }
    }

    fn read_imports(&mut self, elf: &Elf<'_>) {
        let mark = self.strings.len();
        let result = elf::imports(elf, |i| {
            let name = self.push(i.name);
            self.imports.push(Sym { name, crc: i.crc });
            self.weak.push(i.weak);
        });
        if let Err(e) = result {
            self.imports.clear();
            self.weak.clear();
            self.strings.truncate(mark);
            self.imports_error = Some(e);
        }
    }

    fn spans<'s>(&'s self, spans: &'s [Span]) -> impl ExactSizeIterator<Item = &'s [u8]> + 's {
        spans.iter().map(|&s| self.get(s))
    }

    /// `alias=` values, in `.modinfo` order.
    pub fn aliases(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.spans(&self.aliases)
    }

    /// `softdep=` values, in `.modinfo` order.
    pub fn softdeps(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.spans(&self.softdeps)
    }

    /// `weakdep=` values, in `.modinfo` order.
    pub fn weakdeps(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.spans(&self.weakdeps)
    }

    /// Exported symbols with their CRCs, in table order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = (&[u8], u64)> {
        self.exports.iter().map(|s| (self.get(s.name), s.crc))
    }

    /// Needed symbols, in kmod's order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = Needed<'_>> {
        self.imports.iter().zip(&self.weak).map(|(s, &weak)| Needed {
            name: self.get(s.name),
            crc: s.crc,
            weak,
        })
    }

    /// Bytes of string storage, for memory accounting.
    pub fn heap_size(&self) -> usize {
        self.strings.capacity()
            + (self.aliases.capacity() + self.softdeps.capacity() + self.weakdeps.capacity()) * 8
            + (self.exports.capacity() + self.imports.capacity()) * 16
            + self.weak.capacity()
    }
}
