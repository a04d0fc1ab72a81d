//! The validated record of one module: everything depmod needs from its file, copied out of it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::elf::{self, Elf, ImportScratch};
use crate::error::{Anomaly, Error};
use crate::modinfo;

/// One string of a module (an alias, a symbol, ...) inside its string storage, with the
/// symbol's CRC where it has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Item {
    start: u32,
    /// Length; the top bit marks a weak needed symbol.
    len: u32,
    crc: u64,
}

const WEAK: u32 = 1 << 31;

/// The lists of a module, in the order their items are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Aliases,
    Softdeps,
    Weakdeps,
    Exports,
    Imports,
}

const LISTS: usize = 5;

/// What depmod uses of one module file. It owns copies of the strings (in one allocation, with
/// one more for the list entries), so the file's bytes can be dropped or their buffer reused.
///
/// Each part is read independently, as libkmod does: a module whose symbol table is broken can
/// still have aliases. The first error of each part is kept for the caller to report.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    strings: Box<[u8]>,
    items: Box<[Item]>,
    /// Where each [`List`] ends in `items`.
    ends: [u32; LISTS],
    /// Why the file is not a usable ELF object at all (its header checks failed). The other
    /// parts are then empty and their errors unset.
    pub elf_error: Option<Error>,
    /// Why the export list could not be read (kmod reports this one).
    pub exports_error: Option<Error>,
    /// Why `.modinfo` could not be read (kmod is silent about it).
    pub modinfo_error: Option<Error>,
    /// Why the import list could not be read (kmod is silent about it).
    pub imports_error: Option<Error>,
    /// The first thing wrong with the file that libkmod reads past (kmod is silent about it).
    pub anomaly: Option<Anomaly>,
}

/// Working space for [`ModuleInfo::parse_with`], reused from one module to the next so that
/// reading a module allocates only its result.
#[derive(Debug, Default)]
pub struct Scratch {
    strings: Vec<u8>,
    lists: [Vec<Item>; LISTS],
    imports: ImportScratch,
}

impl Scratch {
    fn push(&mut self, list: List, bytes: &[u8], crc: u64, weak: bool) {
        let start = self.strings.len() as u32;
        self.strings.extend_from_slice(bytes);
        let len = (bytes.len() as u32 & !WEAK) | if weak { WEAK } else { 0 };
        if let Some(l) = self.lists.get_mut(list as usize) {
            l.push(Item { start, len, crc });
        }
    }

    fn clear(&mut self) {
        self.strings.clear();
        self.lists.iter_mut().for_each(Vec::clear);
    }

    /// Forgets the items of `list` pushed after `mark` strings (a list that failed half-way).
    fn truncate(&mut self, list: List, mark: usize) {
        self.strings.truncate(mark);
        if let Some(l) = self.lists.get_mut(list as usize) {
            l.clear();
        }
    }
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
        Self::parse_with(data, &mut Scratch::default())
    }

    /// [`ModuleInfo::parse`] with reusable working space.
    pub fn parse_with(data: &[u8], scratch: &mut Scratch) -> ModuleInfo {
        let mut info = ModuleInfo::default();
        let elf = match Elf::parse(data) {
            Ok(elf) => elf,
            Err(e) => {
                info.elf_error = Some(e);
                return info;
            }
        };
        scratch.clear();
        info.anomaly = elf.anomaly();
        info.exports_error = read_exports(&elf, scratch).err();
        read_modinfo(&elf, scratch);
        info.imports_error = read_imports(&elf, scratch).err();

        info.strings = scratch.strings.as_slice().into();
        let mut items = Vec::with_capacity(scratch.lists.iter().map(Vec::len).sum());
        for (end, list) in info.ends.iter_mut().zip(&scratch.lists) {
            items.extend_from_slice(list);
            *end = items.len() as u32;
        }
        info.items = items.into_boxed_slice();
        info
    }

    fn list(&self, list: List) -> &[Item] {
        let i = list as usize;
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.items.get(start as usize..end as usize).unwrap_or_default()
    }

    fn text(&self, item: &Item) -> &[u8] {
        let start = item.start as usize;
        self.strings.get(start..start + (item.len & !WEAK) as usize).unwrap_or_default()
    }

    fn texts(&self, list: List) -> impl ExactSizeIterator<Item = &[u8]> {
        self.list(list).iter().map(|i| self.text(i))
    }

    /// `alias=` values, in `.modinfo` order.
    pub fn aliases(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.texts(List::Aliases)
    }

    /// `softdep=` values, in `.modinfo` order.
    pub fn softdeps(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.texts(List::Softdeps)
    }

    /// `weakdep=` values, in `.modinfo` order.
    pub fn weakdeps(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.texts(List::Weakdeps)
    }

    /// Exported symbols with their CRCs, in table order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = (&[u8], u64)> {
        self.list(List::Exports).iter().map(|i| (self.text(i), i.crc))
    }

    /// Needed symbols, in kmod's order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = Needed<'_>> {
        self.list(List::Imports).iter().map(|i| Needed {
            name: self.text(i),
            crc: i.crc,
            weak: i.len & WEAK != 0,
        })
    }

    /// Bytes of heap this record holds.
    pub fn heap_size(&self) -> usize {
        self.strings.len() + self.items.len() * core::mem::size_of::<Item>()
    }
}

fn read_exports(elf: &Elf<'_>, scratch: &mut Scratch) -> Result<(), Error> {
    let mark = scratch.strings.len();
    let result = elf::exports(elf, |e| scratch.push(List::Exports, e.name, e.crc, false));
    if result.is_err() {
        // The readers validate before they emit, but never keep half a list.
        scratch.truncate(List::Exports, mark);
    }
    result
}

fn read_modinfo(elf: &Elf<'_>, scratch: &mut Scratch) {
    let Some(section) = elf.section_by_name(".modinfo") else { return };
    for r in modinfo::records(section.data) {
        let list = match r.key {
            b"alias" => List::Aliases,
            b"softdep" => List::Softdeps,
            b"weakdep" => List::Weakdeps,
            _ => continue,
        };
        scratch.push(list, r.value, 0, false);
    }
}

fn read_imports(elf: &Elf<'_>, scratch: &mut Scratch) -> Result<(), Error> {
    let mark = scratch.strings.len();
    let mut imports = core::mem::take(&mut scratch.imports);
    let result = elf::imports_with(elf, &mut imports, |i| {
        scratch.push(List::Imports, i.name, i.crc, i.weak);
    });
    scratch.imports = imports;
    if result.is_err() {
        scratch.truncate(List::Imports, mark);
    }
    result
}
