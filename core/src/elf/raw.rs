//! ELF constants and field offsets used by the reader and the test writer.

/// `\x7fELF`.
pub const MAGIC: [u8; 4] = *b"\x7fELF";
/// Length of `e_ident`.
pub const EI_NIDENT: usize = 16;
/// Index of the class byte in `e_ident`.
pub const EI_CLASS: usize = 4;
/// Index of the data (byte order) byte in `e_ident`.
pub const EI_DATA: usize = 5;
/// `e_ident[EI_CLASS]` of 32-bit files.
pub const ELFCLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` of 64-bit files.
pub const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]` of little-endian files.
pub const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]` of big-endian files.
pub const ELFDATA2MSB: u8 = 2;

/// Section index of undefined symbols.
pub const SHN_UNDEF: u16 = 0;
/// Section index of absolute symbols.
pub const SHN_ABS: u16 = 0xfff1;

/// Symbol binding: weak.
pub const STB_WEAK: u8 = 2;
/// SPARC symbol type for global registers; such undefined symbols are not imports.
pub const STT_REGISTER: u8 = 13;
/// `e_machine` of 32-bit SPARC.
pub const EM_SPARC: u16 = 2;
/// `e_machine` of SPARC V9.
pub const EM_SPARCV9: u16 = 43;

/// Section type of symbol tables.
pub const SHT_SYMTAB: u32 = 2;
/// Section type of string tables.
pub const SHT_STRTAB: u32 = 3;
/// Section type of sections without file contents (`.bss`).
pub const SHT_NOBITS: u32 = 8;
/// Section type of ordinary data.
pub const SHT_PROGBITS: u32 = 1;
/// `e_type` of relocatable objects (kernel modules).
pub const ET_REL: u16 = 1;

/// Layout of the structures that differ between ELF32 and ELF64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `sizeof(ElfN_Ehdr)`.
    pub ehdr_size: usize,
    /// Offsets of `e_machine`, `e_shoff`, `e_shentsize`, `e_shnum`, `e_shstrndx`.
    pub e_machine: usize,
    pub e_shoff: usize,
    pub e_shentsize: usize,
    pub e_shnum: usize,
    pub e_shstrndx: usize,
    /// `sizeof(ElfN_Shdr)` and the offsets of `sh_name`, `sh_type`, `sh_offset`, `sh_size`.
    pub shdr_size: usize,
    pub sh_name: usize,
    pub sh_type: usize,
    pub sh_offset: usize,
    pub sh_size: usize,
    /// Offsets of `sh_link`, `sh_info` and `sh_entsize`.
    pub sh_link: usize,
    pub sh_info: usize,
    pub sh_entsize: usize,
    /// `sizeof(ElfN_Sym)` and the offsets of `st_name`, `st_value`, `st_info`, `st_shndx`.
    pub sym_size: usize,
    pub st_name: usize,
    pub st_value: usize,
    pub st_info: usize,
    pub st_shndx: usize,
    /// Size of the CRC at the start of a 64-byte `__versions` record.
    pub version_crc_size: usize,
    /// `true` for ELF64: addresses, offsets and sizes are 8 bytes.
    pub wide: bool,
}

/// Size of one `__versions` record, in both classes.
pub const VERSION_RECORD_SIZE: usize = 64;

/// ELF32 layout.
pub const LAYOUT32: Layout = Layout {
    ehdr_size: 52,
    e_machine: 18,
    e_shoff: 32,
    e_shentsize: 46,
    e_shnum: 48,
    e_shstrndx: 50,
    shdr_size: 40,
    sh_name: 0,
    sh_type: 4,
    sh_offset: 16,
    sh_size: 20,
    sh_link: 24,
    sh_info: 28,
    sh_entsize: 36,
    sym_size: 16,
    st_name: 0,
    st_value: 4,
    st_info: 12,
    st_shndx: 14,
    version_crc_size: 4,
    wide: false,
};

/// ELF64 layout.
pub const LAYOUT64: Layout = Layout {
    ehdr_size: 64,
    e_machine: 18,
    e_shoff: 40,
    e_shentsize: 58,
    e_shnum: 60,
    e_shstrndx: 62,
    shdr_size: 64,
    sh_name: 0,
    sh_type: 4,
    sh_offset: 24,
    sh_size: 32,
    sh_link: 40,
    sh_info: 44,
    sh_entsize: 56,
    sym_size: 24,
    st_name: 0,
    st_value: 8,
    st_info: 4,
    st_shndx: 6,
    version_crc_size: 8,
    wide: true,
};
