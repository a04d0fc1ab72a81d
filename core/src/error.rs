//! Errors found in module files. Small, `Copy`, allocation-free; each says what was wrong and
//! where.

use core::fmt;

/// Something wrong with a module file: which structure, which field, which offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The file is not ELF: shorter than `e_ident` (16 bytes) or without the `\x7fELF` magic.
    NotElf { len: u64 },
    /// `e_ident[EI_CLASS]` is neither 1 (ELF32) nor 2 (ELF64).
    BadClass(u8),
    /// The file ends inside (or right at the end of) the ELF header.
    HeaderTruncated { len: u64, header: u64 },
    /// `e_ident[EI_DATA]` is neither 1 (little endian) nor 2 (big endian).
    BadData(u8),
    /// `e_shentsize` is not the size of a section header of this class.
    BadSectionEntrySize { found: u16, expected: u16 },
    /// `e_shoff` + `e_shnum` section headers run past the end of the file.
    SectionTableOutOfBounds { offset: u64, count: u16, len: u64 },
    /// `e_shstrndx` is 0 or not below `e_shnum`.
    BadNamesIndex { index: u16, count: u16 },
    /// A section's `sh_offset` + `sh_size` runs past the end of the file.
    SectionOutOfBounds { index: u16, offset: u64, size: u64, len: u64 },
    /// The section-name string table (`e_shstrndx`) is empty.
    NamesEmpty { index: u16 },
    /// The section-name string table does not end with a NUL byte.
    NamesNotTerminated { index: u16 },
    /// A section the operation needs is absent.
    MissingSection(&'static str),
    /// A symbol table whose size is not a multiple of its entry size.
    SymtabSize { size: u64, entry: u8 },
    /// A symbol's `st_name` points outside `.strtab`.
    NameOutOfRange { symbol: u32, name: u32, strtab: u64 },
    /// A `__versions` record whose name fills its field without a terminating NUL.
    VersionNotTerminated { record: u32 },
    /// A string section (`__ksymtab_strings`) does not end with a NUL byte.
    StringsNotTerminated(&'static str),
    /// The input is larger than this host can address.
    TooLarge { len: u64 },
}

/// The C `errno` kmod reports for an error, which fixes the text of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// `ENOEXEC`, "Exec format error".
    NoExec,
    /// `EINVAL`, "Invalid argument".
    Inval,
    /// `ENODATA`, "No data available".
    NoData,
}

impl Errno {
    /// glibc's `strerror` text.
    pub fn message(self) -> &'static str {
        match self {
            Errno::NoExec => "Exec format error",
            Errno::Inval => "Invalid argument",
            Errno::NoData => "No data available",
        }
    }
}

impl Error {
    /// The errno kmod 34.2 returns for the same input.
    pub fn errno(self) -> Errno {
        match self {
            Error::NotElf { .. } => Errno::NoExec,
            Error::MissingSection(_) => Errno::NoData,
            _ => Errno::Inval,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NotElf { len } if len < 16 => {
                write!(f, "not an ELF file: {len} bytes, shorter than an ELF identification")
            }
            Error::NotElf { .. } => write!(f, "not an ELF file: no \\x7fELF magic at offset 0"),
            Error::BadClass(c) => {
                write!(f, "invalid ELF class {c} in e_ident[4] (1 or 2 expected)")
            }
            Error::HeaderTruncated { len, header } => {
                write!(f, "file of {len} bytes is too short for a {header}-byte ELF header")
            }
            Error::BadData(d) => {
                write!(f, "invalid ELF byte order {d} in e_ident[5] (1 or 2 expected)")
            }
            Error::BadSectionEntrySize { found, expected } => {
                write!(f, "e_shentsize is {found}, expected {expected}")
            }
            Error::SectionTableOutOfBounds { offset, count, len } => write!(
                f,
                "section header table (e_shoff {offset:#x}, e_shnum {count}) runs past the end \
                 of the {len}-byte file"
            ),
            Error::BadNamesIndex { index, count } => {
                write!(f, "e_shstrndx {index} is not a section (e_shnum {count})")
            }
            Error::SectionOutOfBounds { index, offset, size, len } => write!(
                f,
                "section {index} (offset {offset:#x}, size {size:#x}) runs past the end of the \
                 {len}-byte file"
            ),
            Error::NamesEmpty { index } => {
                write!(f, "section name table (section {index}) is empty")
            }
            Error::NamesNotTerminated { index } => {
                write!(f, "section name table (section {index}) does not end with a NUL byte")
            }
            Error::MissingSection(name) => write!(f, "no {name} section"),
            Error::SymtabSize { size, entry } => {
                write!(f, ".symtab size {size:#x} is not a multiple of its {entry}-byte entries")
            }
            Error::NameOutOfRange { symbol, name, strtab } => write!(
                f,
                ".symtab entry {symbol}: st_name {name:#x} is outside the {strtab:#x}-byte .strtab"
            ),
            Error::VersionNotTerminated { record } => {
                write!(f, "__versions record {record} has a name without a terminating NUL")
            }
            Error::StringsNotTerminated(section) => {
                write!(f, "{section} does not end with a NUL byte")
            }
            Error::TooLarge { len } => write!(f, "{len} bytes is too large for this host"),
        }
    }
}

impl core::error::Error for Error {}

/// Something wrong with a module file that libkmod reads past without complaint. The module is
/// read exactly as libkmod reads it; the anomaly is only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// A section with file contents whose `sh_offset` + `sh_size` runs past the end of the file;
    /// it is treated as absent.
    /// `name` is set when it is one of the sections depmod reads.
    SectionIgnored { index: u16, name: &'static str, offset: u64, size: u64, len: u64 },
    /// A section whose `sh_name` lies outside the section-name table; it is treated as absent.
    SectionNameOutOfRange { index: u16, name: u32 },
    /// Two of the parts depmod reads share bytes.
    Overlap { first: &'static str, second: &'static str, offset: u64 },
    /// `.symtab`'s `sh_link` is not the index of `.strtab`; names come from `.strtab`.
    SymtabLink { link: u32, strtab: u16 },
    /// `.symtab`'s `sh_entsize` is not the size of a symbol of this class.
    SymtabEntrySize { found: u64, expected: u8 },
    /// A string section whose last string has no terminating NUL; it ends with the section.
    LastStringNotTerminated(&'static str),
    /// `.strtab` does not end with a NUL byte: a name running to its end is read on into the
    /// bytes that follow, up to the next NUL or the end of the file.
    StrtabNotTerminated,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Anomaly::SectionIgnored { index, name, offset, size, len } => {
                write!(f, "section {index} ")?;
                if !name.is_empty() {
                    write!(f, "({name}) ")?;
                }
                write!(
                    f,
                    "at offset {offset:#x}, size {size:#x} runs past the end of the {len}-byte \
                     file; it is ignored"
                )
            }
            Anomaly::SectionNameOutOfRange { index, name } => write!(
                f,
                "section {index}'s name (sh_name {name:#x}) is outside the section name table; \
                 it is ignored"
            ),
            Anomaly::Overlap { first, second, offset } => {
                write!(f, "{first} and {second} overlap at offset {offset:#x}")
            }
            Anomaly::SymtabLink { link, strtab } => write!(
                f,
                ".symtab's sh_link is {link}, not .strtab's index {strtab}; names are read from \
                 .strtab"
            ),
            Anomaly::SymtabEntrySize { found, expected } => {
                write!(f, ".symtab's sh_entsize is {found}, expected {expected}")
            }
            Anomaly::LastStringNotTerminated(section) => write!(
                f,
                "{section} does not end with a NUL byte; its last string ends with the section"
            ),
            Anomaly::StrtabNotTerminated => write!(
                f,
                ".strtab does not end with a NUL byte; a name running to its end is read on to \
                 the next NUL byte in the file"
            ),
        }
    }
}
