//! The validated record of one module: everything depmod needs from its file, copied out of it,
//! or read in place from a module cache's record of it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::cache::read::Held;
use crate::elf::{Elf, Import, ImportScratch, LocalSymbols, Symbols};
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

/// A module's lists.
#[derive(Clone, Debug)]
enum Lists {
    /// Read from its file: copies of its strings, one after the other, and the items of each
    /// list, which lie in them ([`List`] order; `ends` closes each list).
    Read { strings: Box<[u8]>, items: Box<[Item]>, ends: [u32; LISTS] },
    /// Recalled from a module cache: its record, read in place.
    Recorded(Held),
}

impl Default for Lists {
    fn default() -> Self {
        Lists::Read { strings: Box::default(), items: Box::default(), ends: [0; LISTS] }
    }
}

/// One of two iterators over the same items: a module's list as read, or as recorded.
enum Either<A, B> {
    Read(A),
    Recorded(B),
}

impl<T, A: ExactSizeIterator<Item = T>, B: ExactSizeIterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            Either::Read(a) => a.next(),
            Either::Recorded(b) => b.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Either::Read(a) => a.size_hint(),
            Either::Recorded(b) => b.size_hint(),
        }
    }
}

impl<T, A: ExactSizeIterator<Item = T>, B: ExactSizeIterator<Item = T>> ExactSizeIterator
    for Either<A, B>
{
}

/// What depmod uses of one module file. Read from the file, it owns copies of the strings (in
/// one allocation, with one more for the list entries), so the file's bytes can be dropped or
/// their buffer reused; recalled from a module cache, it is the record, read in place.
///
/// Each part is read independently, as libkmod does: a module whose symbol table is broken can
/// still have aliases. The first error of each part is kept for the caller to report.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    lists: Lists,
    /// Why the file is not a usable ELF object at all (its header checks failed). The other
    /// parts are then empty and their errors unset.
    pub elf_error: Option<Error>,
    /// Why the export list could not be read (kmod reports this one).
    pub exports_error: Option<Error>,
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

    /// Copies the pushed lists, with their strings, into `info`.
    fn fill(&self, info: &mut ModuleInfo) {
        let mut ends = [0; LISTS];
        let mut items = Vec::with_capacity(self.lists.iter().map(Vec::len).sum());
        for (end, list) in ends.iter_mut().zip(&self.lists) {
            items.extend_from_slice(list);
            *end = items.len() as u32;
        }
        let (strings, items) = (self.strings.as_slice().into(), items.into_boxed_slice());
        info.lists = Lists::Read { strings, items, ends };
    }

    /// Forgets the items of `list` pushed after `mark` strings (a list that failed half-way).
    fn truncate(&mut self, list: List, mark: usize) {
        self.strings.truncate(mark);
        if let Some(l) = self.lists.get_mut(list as usize) {
            l.clear();
        }
    }
}

impl ModuleInfo {
    /// Reads a module from the bytes of its (decompressed) file. Never fails: problems are
    /// recorded in the `*_error` fields and the affected parts are left empty.
    pub fn parse(data: &[u8]) -> ModuleInfo {
        Self::parse_with(data, &mut Scratch::default())
    }

    /// [`ModuleInfo::parse`] with reusable working space.
    pub fn parse_with(data: &[u8], scratch: &mut Scratch) -> ModuleInfo {
        match Elf::parse(data) {
            Ok(elf) => Self::read(&elf, scratch),
            Err(e) => ModuleInfo { elf_error: Some(e), ..ModuleInfo::default() },
        }
    }

    /// [`ModuleInfo::parse_with`] on a buffer that need not hold the local part of `.symtab`
    /// (a sparse decode leaves zeros there), whose entries that matter are `locals`, from a
    /// [`LocalScan`](crate::elf::LocalScan) of the same file: the result is the whole file's.
    /// `None` when the file is not ELF or `locals` was made from another file's table.
    pub fn parse_lean(
        data: &[u8],
        locals: &LocalSymbols,
        scratch: &mut Scratch,
    ) -> Option<ModuleInfo> {
        let elf = Elf::parse(data).ok()?.with_locals(locals)?;
        Some(Self::read(&elf, scratch))
    }

    /// Reads what depmod uses of a checked file.
    fn read(elf: &Elf<'_>, scratch: &mut Scratch) -> ModuleInfo {
        let mut info = ModuleInfo::default();
        scratch.clear();
        info.anomaly = elf.anomaly();
        // The symbol table is read once, for both lists.
        let mut symbols_scratch = core::mem::take(&mut scratch.imports);
        let mut symbols = Symbols::read(elf, &mut symbols_scratch);
        info.exports_error = read_exports(&symbols, scratch).err();
        read_modinfo(elf, scratch);
        info.imports_error = read_imports(&mut symbols, scratch).err();
        scratch.imports = symbols_scratch;
        scratch.fill(&mut info);
        info
    }

    /// The module recalled from a cache: `record`, read in place.
    pub(crate) fn recorded(record: Held) -> ModuleInfo {
        ModuleInfo { lists: Lists::Recorded(record), ..ModuleInfo::default() }
    }

    fn texts(&self, list: List) -> impl ExactSizeIterator<Item = &[u8]> {
        match &self.lists {
            Lists::Read { strings, items, ends } => {
                Either::Read(items_of(items, ends, list).iter().map(|i| text_of(strings, i)))
            }
            // A record keeps its aliases, softdeps and weakdeps in `List`'s order, 0 to 2.
            Lists::Recorded(held) => Either::Recorded(held.record().texts(list as usize)),
        }
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
        match &self.lists {
            Lists::Read { strings, items, ends } => Either::Read(
                items_of(items, ends, List::Exports).iter().map(|i| (text_of(strings, i), i.crc)),
            ),
            Lists::Recorded(held) => Either::Recorded(held.record().exports()),
        }
    }

    /// Needed symbols, in kmod's order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = Import<'_>> {
        match &self.lists {
            Lists::Read { strings, items, ends } => {
                Either::Read(items_of(items, ends, List::Imports).iter().map(|i| Import {
                    name: text_of(strings, i),
                    crc: i.crc,
                    weak: i.len & WEAK != 0,
                }))
            }
            Lists::Recorded(held) => {
                Either::Recorded(held.record().imports().map(|(name, crc, weak)| Import {
                    name,
                    crc,
                    weak,
                }))
            }
        }
    }

    /// For a module recalled from a cache, the cache's numbers of its needed symbols, in the
    /// order of [`ModuleInfo::imports`] ([`crate::cache::Cache::symbol_names`]).
    pub fn recorded_import_ids(&self) -> Option<impl ExactSizeIterator<Item = u32> + '_> {
        match &self.lists {
            Lists::Read { .. } => None,
            Lists::Recorded(held) => Some(held.record().import_ids()),
        }
    }

    /// Whether the file was read without any error or anomaly: only such a record may be
    /// kept by a cache (the others are read again on each run, which also repeats their
    /// messages).
    pub fn is_clean(&self) -> bool {
        self.elf_error.is_none()
            && self.exports_error.is_none()
            && self.imports_error.is_none()
            && self.anomaly.is_none()
    }

    /// Bytes of heap this record holds (a cache file it shares with others is not counted).
    pub fn heap_size(&self) -> usize {
        match &self.lists {
            Lists::Read { strings, items, .. } => strings.len() + core::mem::size_of_val(&**items),
            Lists::Recorded(_) => 0,
        }
    }
}

/// The items of `list`, of a module's lists as read.
fn items_of<'i>(items: &'i [Item], ends: &[u32; LISTS], list: List) -> &'i [Item] {
    let i = list as usize;
    let start = i.checked_sub(1).and_then(|p| ends.get(p)).copied().unwrap_or(0);
    let end = ends.get(i).copied().unwrap_or(0);
    items.get(start as usize..end as usize).unwrap_or_default()
}

/// The text of `item`, of a module's lists as read.
fn text_of<'s>(strings: &'s [u8], item: &Item) -> &'s [u8] {
    let start = item.start as usize;
    strings.get(start..start + (item.len & !WEAK) as usize).unwrap_or_default()
}

fn read_exports(symbols: &Symbols<'_, '_>, scratch: &mut Scratch) -> Result<(), Error> {
    let mark = scratch.strings.len();
    let result = symbols.exports(|e| scratch.push(List::Exports, e.name, e.crc, false));
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

fn read_imports(symbols: &mut Symbols<'_, '_>, scratch: &mut Scratch) -> Result<(), Error> {
    let mark = scratch.strings.len();
    let result = symbols.imports(|i| scratch.push(List::Imports, i.name, i.crc, i.weak));
    if result.is_err() {
        scratch.truncate(List::Imports, mark);
    }
    result
}

/// Every field of a record, in a form tests compare.
#[cfg(test)]
pub(crate) type Fields<'a> = (
    [Vec<&'a [u8]>; 3],
    Vec<(&'a [u8], u64)>,
    Vec<Import<'a>>,
    [Option<Error>; 3],
    Option<Anomaly>,
);

#[cfg(test)]
impl ModuleInfo {
    /// Every field, for tests to compare two records.
    pub(crate) fn fields(&self) -> Fields<'_> {
        (
            [self.aliases().collect(), self.softdeps().collect(), self.weakdeps().collect()],
            self.exports().collect(),
            self.imports().collect(),
            [self.elf_error, self.exports_error, self.imports_error],
            self.anomaly,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Endian;
    use crate::elf::writer::{Class, ModuleSpec};
    use alloc::vec;

    fn spec() -> ModuleSpec {
        let mut m = ModuleSpec::new();
        m.modinfo = vec![
            b"license=GPL".to_vec(),
            b"alias=pci:v-1*".to_vec(),
            b"softdep=pre: crc32c".to_vec(),
            b"alias=fs-vfat".to_vec(),
            b"weakdep=helper".to_vec(),
            b"alias".to_vec(),
        ];
        m.exports = vec![b"exp_a".to_vec(), b"exp_b".to_vec()];
        m.crcs = Some(vec![0xaa, 0xbb]);
        m.imports = vec![(b"imp_x".to_vec(), false), (b"imp_w".to_vec(), true)];
        m.versions = vec![(b"imp_x".to_vec(), 0x11), (b"module_layout".to_vec(), 0x22)];
        m
    }

    fn texts<'a>(it: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
        it.collect()
    }

    #[test]
    fn keeps_what_depmod_uses_in_every_class_and_order() {
        for class in [Class::Elf32, Class::Elf64] {
            for endian in [Endian::Little, Endian::Big] {
                let mut s = spec();
                (s.class, s.endian) = (class, endian);
                let info = ModuleInfo::parse(&s.build());
                assert_eq!(
                    (info.elf_error, info.exports_error, info.imports_error),
                    (None, None, None)
                );
                assert_eq!(info.anomaly, None);
                // `.modinfo` order, the value only; a key without `=` has an empty value.
                assert_eq!(texts(info.aliases()), [&b"pci:v-1*"[..], b"fs-vfat", b""]);
                assert_eq!(texts(info.softdeps()), [b"pre: crc32c"]);
                assert_eq!(texts(info.weakdeps()), [b"helper"]);
                let exports: Vec<_> = info.exports().collect();
                assert_eq!(exports, [(&b"exp_a"[..], 0xaa), (b"exp_b", 0xbb)]);
                // Undefined symbols in table order with their `__versions` CRC, then the
                // records no symbol matched.
                let imports: Vec<_> = info.imports().collect();
                let import = |name, crc, weak| Import { name, crc, weak };
                assert_eq!(
                    imports,
                    [
                        import(b"imp_x", 0x11, false),
                        import(b"imp_w", 0, true),
                        import(b"module_layout", 0x22, false),
                    ]
                );
                assert!(info.heap_size() > 0);
            }
        }
    }

    #[test]
    fn reused_working_space_changes_nothing() {
        let mut scratch = Scratch::default();
        let mut other = ModuleSpec::new();
        other.modinfo = vec![b"alias=zzz".to_vec()];
        other.imports = vec![(b"only_here".to_vec(), false)];
        let _ = ModuleInfo::parse_with(&other.build(), &mut scratch);
        let bytes = spec().build();
        let again = ModuleInfo::parse_with(&bytes, &mut scratch);
        let fresh = ModuleInfo::parse(&bytes);
        assert_eq!(texts(again.aliases()), texts(fresh.aliases()));
        assert_eq!(again.imports().collect::<Vec<_>>(), fresh.imports().collect::<Vec<_>>());
        assert_eq!(again.exports().collect::<Vec<_>>(), fresh.exports().collect::<Vec<_>>());
    }

    #[test]
    fn not_elf_keeps_nothing() {
        let info = ModuleInfo::parse(b"\x7fELF but not really one");
        assert_eq!(info.elf_error, Some(Error::BadClass(b' ')));
        assert_eq!((info.aliases().len(), info.exports().len(), info.imports().len()), (0, 0, 0));
        assert_eq!(info.heap_size(), 0);
    }

    #[test]
    fn a_broken_part_leaves_the_others() {
        // Without a `.symtab` there are no imports; exports fall back to `__ksymtab_strings`
        // (CRC 0) and the aliases are still read.
        let mut s = spec();
        s.crcs = None;
        let mut bytes = s.build();
        let elf = Elf::parse(&bytes).unwrap();
        let symtab = elf.section_by_name(".symtab").unwrap().index;
        let names = elf.names_section().unwrap();
        let name_field = name_offset(&bytes, symtab);
        let at = names.offset as usize + name_field;
        bytes[at..at + 7].copy_from_slice(b".nosymt");
        let info = ModuleInfo::parse(&bytes);
        assert_eq!(info.imports_error, Some(Error::MissingSection(".symtab")));
        assert_eq!(info.imports().len(), 0);
        assert_eq!(info.exports().collect::<Vec<_>>(), [(&b"exp_a"[..], 0), (b"exp_b", 0)]);
        assert_eq!(info.aliases().len(), 3);
    }

    /// `sh_name` of section `index` in an ELF64 little-endian file.
    fn name_offset(bytes: &[u8], index: u16) -> usize {
        let shoff = u64::from_le_bytes(bytes[40..48].try_into().unwrap()) as usize;
        let at = shoff + usize::from(index) * 64;
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
    }
}
