//! The ELF header: identification, class and byte order, and where the section header table
//! lies. The checks and their order are libkmod's (`kmod_elf_new`).

use super::raw::{self, Layout};
use crate::bytes::{Endian, to_usize};
use crate::error::Error;

/// What the ELF header says about the file, once checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub endian: Endian,
    pub layout: &'static Layout,
    /// `e_machine`.
    pub machine: u16,
    /// `e_shoff`: the section header table lies inside the file.
    pub shoff: usize,
    /// `e_shnum`.
    pub shnum: u16,
    /// `e_shstrndx`, not yet checked.
    pub shstrndx: u16,
}

impl Header {
    /// Checks the identification bytes, then the section header table's entry size and bounds.
    pub fn parse(data: &[u8]) -> Result<Header, Error> {
        let (layout, endian) = identify(data)?;
        // The header is in bounds (checked above), so these reads cannot fail.
        let half = |off| endian.u16(data, off).unwrap_or(0);
        let shoff = endian.word(data, layout.e_shoff, layout.wide).unwrap_or(0);
        let shentsize = half(layout.e_shentsize);
        let shnum = half(layout.e_shnum);
        if usize::from(shentsize) != layout.shdr_size {
            return Err(Error::BadSectionEntrySize {
                found: shentsize,
                expected: layout.shdr_size as u16,
            });
        }
        let len = data.len() as u64;
        let table_end = table_size(layout, shnum).checked_add(shoff);
        if table_end.is_none_or(|end| end > len) {
            return Err(Error::SectionTableOutOfBounds { offset: shoff, count: shnum, len });
        }
        Ok(Header {
            endian,
            layout,
            machine: half(layout.e_machine),
            shoff: to_usize(shoff).ok_or(Error::TooLarge { len: shoff })?,
            shnum,
            shstrndx: half(layout.e_shstrndx),
        })
    }
}

/// `e_ident`: the magic, the class, a whole header, the byte order (in libkmod's order).
fn identify(data: &[u8]) -> Result<(&'static Layout, Endian), Error> {
    let len = data.len() as u64;
    if data.len() <= raw::EI_NIDENT || data.get(..4) != Some(&raw::MAGIC[..]) {
        return Err(Error::NotElf { len });
    }
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let class = byte(raw::EI_CLASS);
    let layout = layout_of(class).ok_or(Error::BadClass(class))?;
    if data.len() <= layout.ehdr_size {
        return Err(Error::HeaderTruncated { len, header: layout.ehdr_size as u64 });
    }
    let order = byte(raw::EI_DATA);
    let endian = endian_of(order).ok_or(Error::BadData(order))?;
    Ok((layout, endian))
}

/// The field layout of `e_ident[EI_CLASS]`.
fn layout_of(class: u8) -> Option<&'static Layout> {
    match class {
        raw::ELFCLASS32 => Some(&raw::LAYOUT32),
        raw::ELFCLASS64 => Some(&raw::LAYOUT64),
        _ => None,
    }
}

/// The byte order of `e_ident[EI_DATA]`.
fn endian_of(data: u8) -> Option<Endian> {
    match data {
        raw::ELFDATA2LSB => Some(Endian::Little),
        raw::ELFDATA2MSB => Some(Endian::Big),
        _ => None,
    }
}

/// Bytes of `count` section headers.
pub(super) fn table_size(layout: &Layout, count: u16) -> u64 {
    layout.shdr_size as u64 * u64::from(count)
}

/// Where the section header table of the file starting with `head` lies (offset, length), from
/// the ELF header alone; `None` if `head` is not the start of an ELF file libkmod would accept.
pub fn section_table_range(head: &[u8]) -> Option<(u64, u64)> {
    if head.get(..4) != Some(&raw::MAGIC[..]) {
        return None;
    }
    let layout = layout_of(*head.get(raw::EI_CLASS)?)?;
    let endian = endian_of(*head.get(raw::EI_DATA)?)?;
    let shoff = endian.word(head, layout.e_shoff, layout.wide)?;
    let shnum = endian.u16(head, layout.e_shnum)?;
    Some((shoff, table_size(layout, shnum)))
}

/// Where the section name table lies (offset, length), from the ELF header and the table's
/// entry for it; `None` if the header or the entry cannot be read.
pub fn names_table_range(data: &[u8]) -> Option<(u64, u64)> {
    let h = Header::parse(data).ok()?;
    if h.shstrndx == 0 || h.shstrndx >= h.shnum {
        return None;
    }
    let l = h.layout;
    let base = usize::from(h.shstrndx).checked_mul(l.shdr_size)?.checked_add(h.shoff)?;
    let offset = h.endian.word(data, base.checked_add(l.sh_offset)?, l.wide)?;
    let size = h.endian.word(data, base.checked_add(l.sh_size)?, l.wide)?;
    Some((offset, size))
}
