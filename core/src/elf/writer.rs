//! A writer for synthetic relocatable ELF objects shaped like kernel modules (tests, fuzz seeds).
//!
//! It plans every offset before writing: header, section contents (8-byte aligned), then the
//! section header table. Either class, either byte order.

use alloc::vec::Vec;

use super::raw;
use crate::bytes::Endian;

/// ELF class of the object to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Elf32,
    Elf64,
}

struct SectionSpec {
    name: Vec<u8>,
    kind: u32,
    data: Vec<u8>,
    link: u32,
    info: u32,
}

/// One `.symtab` entry to write.
#[derive(Clone, Debug)]
pub struct SymbolSpec {
    pub name: Vec<u8>,
    pub value: u64,
    /// `st_info`: binding in the high nibble, type in the low one.
    pub info: u8,
    pub shndx: u16,
}

/// Symbol binding values for [`SymbolSpec::info`].
pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;

/// Builds a relocatable object from sections and symbols.
pub struct ObjectBuilder {
    class: Class,
    endian: Endian,
    machine: u16,
    sections: Vec<SectionSpec>,
    symbols: Vec<SymbolSpec>,
}

impl ObjectBuilder {
    /// An empty object (x86-64 machine number, whatever the class).
    pub fn new(class: Class, endian: Endian) -> Self {
        ObjectBuilder { class, endian, machine: 62, sections: Vec::new(), symbols: Vec::new() }
    }

    /// Sets `e_machine`.
    pub fn machine(&mut self, machine: u16) -> &mut Self {
        self.machine = machine;
        self
    }

    /// Adds a `PROGBITS` section and returns its section index.
    pub fn section(&mut self, name: &str, data: &[u8]) -> u16 {
        self.sections.push(SectionSpec {
            name: name.as_bytes().to_vec(),
            kind: raw::SHT_PROGBITS,
            data: data.to_vec(),
            link: 0,
            info: 0,
        });
        self.sections.len() as u16
    }

    /// Adds a symbol; `.symtab` and `.strtab` are written when there is at least one.
    pub fn symbol(&mut self, symbol: SymbolSpec) -> &mut Self {
        self.symbols.push(symbol);
        self
    }

    /// Adds an undefined symbol (global, or weak).
    pub fn undefined(&mut self, name: &[u8], weak: bool) -> &mut Self {
        let bind = if weak { STB_WEAK } else { STB_GLOBAL };
        self.symbol(SymbolSpec { name: name.to_vec(), value: 0, info: bind << 4, shndx: 0 })
    }

    fn put(&self, out: &mut Vec<u8>, value: u64, size: usize) {
        let bytes = value.to_be_bytes();
        let be = bytes.get(8 - size..).unwrap_or_default();
        match self.endian {
            Endian::Big => out.extend_from_slice(be),
            Endian::Little => out.extend(be.iter().rev()),
        }
    }

    fn word(&self) -> usize {
        match self.class {
            Class::Elf32 => 4,
            Class::Elf64 => 8,
        }
    }

    /// Writes the object.
    pub fn build(&self) -> Vec<u8> {
        let layout = match self.class {
            Class::Elf32 => &raw::LAYOUT32,
            Class::Elf64 => &raw::LAYOUT64,
        };
        let w = self.word();
        // Final section list: user sections, then .symtab/.strtab when needed, then .shstrtab.
        let mut all: Vec<SectionSpec> = self
            .sections
            .iter()
            .map(|s| SectionSpec { name: s.name.clone(), data: s.data.clone(), ..*s })
            .collect();
        if !self.symbols.is_empty() {
            let mut strtab = alloc::vec![0u8];
            let mut symtab = alloc::vec![0; layout.sym_size];
            let locals = self.symbols.iter().filter(|s| s.info >> 4 == STB_LOCAL).count();
            let mut ordered: Vec<&SymbolSpec> =
                self.symbols.iter().filter(|s| s.info >> 4 == STB_LOCAL).collect();
            ordered.extend(self.symbols.iter().filter(|s| s.info >> 4 != STB_LOCAL));
            for s in ordered {
                let name = if s.name.is_empty() {
                    0
                } else {
                    let at = strtab.len();
                    strtab.extend_from_slice(&s.name);
                    strtab.push(0);
                    at as u64
                };
                match self.class {
                    Class::Elf32 => {
                        self.put(&mut symtab, name, 4);
                        self.put(&mut symtab, s.value, 4);
                        self.put(&mut symtab, 0, 4);
                        symtab.push(s.info);
                        symtab.push(0);
                        self.put(&mut symtab, u64::from(s.shndx), 2);
                    }
                    Class::Elf64 => {
                        self.put(&mut symtab, name, 4);
                        symtab.push(s.info);
                        symtab.push(0);
                        self.put(&mut symtab, u64::from(s.shndx), 2);
                        self.put(&mut symtab, s.value, 8);
                        self.put(&mut symtab, 0, 8);
                    }
                }
            }
            let strtab_index = all.len() as u32 + 2;
            all.push(SectionSpec {
                name: b".symtab".to_vec(),
                kind: raw::SHT_SYMTAB,
                data: symtab,
                link: strtab_index,
                info: locals as u32 + 1,
            });
            all.push(SectionSpec {
                name: b".strtab".to_vec(),
                kind: raw::SHT_STRTAB,
                data: strtab,
                link: 0,
                info: 0,
            });
        }
        let mut shstrtab = alloc::vec![0u8];
        let mut name_offsets = Vec::new();
        for s in &all {
            name_offsets.push(shstrtab.len() as u64);
            shstrtab.extend_from_slice(&s.name);
            shstrtab.push(0);
        }
        name_offsets.push(shstrtab.len() as u64);
        shstrtab.extend_from_slice(b".shstrtab\0");
        all.push(SectionSpec {
            name: b".shstrtab".to_vec(),
            kind: raw::SHT_STRTAB,
            data: shstrtab,
            link: 0,
            info: 0,
        });

        // Plan: header, section data (aligned to 8), section headers.
        let mut offsets = Vec::new();
        let mut at = layout.ehdr_size;
        for s in &all {
            at = at.next_multiple_of(8);
            offsets.push(at);
            at += s.data.len();
        }
        let shoff = at.next_multiple_of(8);
        let shnum = all.len() + 1;

        let mut out = Vec::with_capacity(shoff + shnum * layout.shdr_size);
        out.extend_from_slice(&raw::MAGIC);
        out.push(match self.class {
            Class::Elf32 => raw::ELFCLASS32,
            Class::Elf64 => raw::ELFCLASS64,
        });
        out.push(match self.endian {
            Endian::Little => raw::ELFDATA2LSB,
            Endian::Big => raw::ELFDATA2MSB,
        });
        out.push(1); // EI_VERSION
        out.resize(raw::EI_NIDENT, 0);
        self.put(&mut out, u64::from(raw::ET_REL), 2);
        self.put(&mut out, u64::from(self.machine), 2);
        self.put(&mut out, 1, 4); // e_version
        self.put(&mut out, 0, w); // e_entry
        self.put(&mut out, 0, w); // e_phoff
        self.put(&mut out, shoff as u64, w);
        self.put(&mut out, 0, 4); // e_flags
        self.put(&mut out, layout.ehdr_size as u64, 2);
        self.put(&mut out, 0, 2); // e_phentsize
        self.put(&mut out, 0, 2); // e_phnum
        self.put(&mut out, layout.shdr_size as u64, 2);
        self.put(&mut out, shnum as u64, 2);
        self.put(&mut out, (shnum - 1) as u64, 2);

        for (s, &off) in all.iter().zip(&offsets) {
            out.resize(off, 0);
            out.extend_from_slice(&s.data);
        }
        out.resize(shoff, 0);
        out.resize(shoff + layout.shdr_size, 0); // section 0
        for (i, s) in all.iter().enumerate() {
            let name = name_offsets.get(i).copied().unwrap_or(0);
            let off = offsets.get(i).copied().unwrap_or(0) as u64;
            let entsize = if s.kind == raw::SHT_SYMTAB { layout.sym_size as u64 } else { 0 };
            self.put(&mut out, name, 4);
            self.put(&mut out, u64::from(s.kind), 4);
            self.put(&mut out, 0, w); // sh_flags
            self.put(&mut out, 0, w); // sh_addr
            self.put(&mut out, off, w);
            self.put(&mut out, s.data.len() as u64, w);
            self.put(&mut out, u64::from(s.link), 4);
            self.put(&mut out, u64::from(s.info), 4);
            self.put(&mut out, 8, w); // sh_addralign
            self.put(&mut out, entsize, w);
        }
        out
    }
}

/// A kernel-module-shaped object: `.modinfo`, exports, imports and `__versions`.
#[derive(Clone, Debug)]
pub struct ModuleSpec {
    pub class: Class,
    pub endian: Endian,
    /// `e_machine`.
    pub machine: u16,
    /// `key=value` strings of `.modinfo`, in order.
    pub modinfo: Vec<Vec<u8>>,
    /// Exported symbols; with `crcs`, as `__crc_` symbols pointing into `__kcrctab`.
    pub exports: Vec<Vec<u8>>,
    /// CRCs of `exports` (same length), or `None` for a `__ksymtab_strings`-only module.
    pub crcs: Option<Vec<u32>>,
    /// Extra strings in `__ksymtab_strings` after each export (symbol namespaces).
    pub namespace: Option<Vec<u8>>,
    /// Undefined symbols, with whether each is weak.
    pub imports: Vec<(Vec<u8>, bool)>,
    /// `__versions` records.
    pub versions: Vec<(Vec<u8>, u64)>,
    /// More sections, written as given (after the others, before the symbol table).
    pub extra_sections: Vec<(alloc::string::String, Vec<u8>)>,
    /// Local function symbols without a name, which depmod skips, as compilers leave many in
    /// a module's symbol table: half of them before the `__crc_` symbols and `local_imports`,
    /// half after.
    pub plain_locals: usize,
    /// Undefined symbols bound `STB_LOCAL` (which depmod needs, like the others).
    pub local_imports: Vec<Vec<u8>>,
    /// Local functions named `local_fn_N`, after `local_imports`.
    pub named_locals: usize,
}

impl ModuleSpec {
    /// A 64-bit little-endian module with nothing in it.
    pub fn new() -> Self {
        ModuleSpec {
            class: Class::Elf64,
            endian: Endian::Little,
            machine: 62,
            modinfo: Vec::new(),
            exports: Vec::new(),
            crcs: None,
            namespace: None,
            imports: Vec::new(),
            versions: Vec::new(),
            extra_sections: Vec::new(),
            plain_locals: 0,
            local_imports: Vec::new(),
            named_locals: 0,
        }
    }

    /// Writes the object.
    pub fn build(&self) -> Vec<u8> {
        let mut b = ObjectBuilder::new(self.class, self.endian);
        b.machine(self.machine);
        let text = b.section(".text", &[0xc3]);
        let mut modinfo = Vec::new();
        for m in &self.modinfo {
            modinfo.extend_from_slice(m);
            modinfo.push(0);
        }
        b.section(".modinfo", &modinfo);
        if !self.exports.is_empty() {
            let mut strings = Vec::new();
            for e in &self.exports {
                strings.extend_from_slice(e);
                strings.push(0);
                if let Some(ns) = &self.namespace {
                    strings.extend_from_slice(ns);
                    strings.push(0);
                }
            }
            b.section("__ksymtab_strings", &strings);
        }
        let plain =
            SymbolSpec { name: Vec::new(), value: 0, info: (STB_LOCAL << 4) | 2, shndx: text };
        for _ in 0..self.plain_locals / 2 {
            b.symbol(plain.clone());
        }
        if let Some(crcs) = &self.crcs {
            let mut table = Vec::new();
            for &c in crcs {
                match self.endian {
                    Endian::Little => table.extend_from_slice(&c.to_le_bytes()),
                    Endian::Big => table.extend_from_slice(&c.to_be_bytes()),
                }
            }
            let kcrctab = b.section("__kcrctab", &table);
            for (i, e) in self.exports.iter().enumerate() {
                let mut name = b"__crc_".to_vec();
                name.extend_from_slice(e);
                b.symbol(SymbolSpec {
                    name,
                    value: i as u64 * 4,
                    info: STB_LOCAL << 4,
                    shndx: kcrctab,
                });
            }
        }
        for name in &self.local_imports {
            b.symbol(SymbolSpec { name: name.clone(), value: 0, info: STB_LOCAL << 4, shndx: 0 });
        }
        for i in 0..self.named_locals {
            let name = alloc::format!("local_fn_{i}").into_bytes();
            b.symbol(SymbolSpec { name, ..plain.clone() });
        }
        for _ in self.plain_locals / 2..self.plain_locals {
            b.symbol(plain.clone());
        }
        if !self.versions.is_empty() {
            let crc_size = match self.class {
                Class::Elf32 => 4,
                Class::Elf64 => 8,
            };
            let mut records = Vec::new();
            for (name, crc) in &self.versions {
                let mut rec = Vec::new();
                let bytes = crc.to_be_bytes();
                let be = bytes.get(8 - crc_size..).unwrap_or_default();
                match self.endian {
                    Endian::Big => rec.extend_from_slice(be),
                    Endian::Little => rec.extend(be.iter().rev()),
                }
                rec.extend_from_slice(name);
                rec.resize(raw::VERSION_RECORD_SIZE, 0);
                records.extend_from_slice(&rec);
            }
            b.section("__versions", &records);
        }
        for (name, data) in &self.extra_sections {
            b.section(name, data);
        }
        for e in &self.exports {
            b.symbol(SymbolSpec {
                name: e.clone(),
                value: 0,
                info: (STB_GLOBAL << 4) | 2,
                shndx: text,
            });
        }
        for (name, weak) in &self.imports {
            b.undefined(name, *weak);
        }
        b.symbol(SymbolSpec {
            name: b"init_module".to_vec(),
            value: 0,
            info: (STB_GLOBAL << 4) | 2,
            shndx: text,
        });
        b.build()
    }
}

impl Default for ModuleSpec {
    fn default() -> Self {
        Self::new()
    }
}
