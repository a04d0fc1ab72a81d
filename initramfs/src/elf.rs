//! Just enough ELF to tell a static program from a dynamic one, find its program interpreter, and
//! tell which machine it is for.

/// What the program headers say about linking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Linking {
    /// No `PT_INTERP`: the kernel can run it without anything else.
    Static,
    /// Needs this program interpreter (e.g. `/lib64/ld-linux-x86-64.so.2`) and its libraries.
    Dynamic(String),
}

const PT_INTERP: u32 = 3;

/// Whether an ELF file is 64-bit and big-endian, from `e_ident`.
fn ident(data: &[u8]) -> Result<(bool, bool), &'static str> {
    if data.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file");
    }
    let wide = match data.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF class"),
    };
    let big = match data.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF byte order"),
    };
    Ok((wide, big))
}

/// Reads the unsigned number of `len` bytes at `at`, in the file's byte order.
fn number(data: &[u8], big: bool, at: usize, len: usize) -> Result<u64, &'static str> {
    let bytes =
        data.get(at..at.checked_add(len).ok_or("truncated")?).ok_or("truncated ELF header")?;
    let mut v = 0u64;
    for i in 0..len {
        let b = if big { bytes[i] } else { bytes[len - 1 - i] };
        v = (v << 8) | u64::from(b);
    }
    Ok(v)
}

/// `e_machine` and whether the file is 64-bit.
pub fn machine(data: &[u8]) -> Result<(u16, bool), &'static str> {
    let (wide, big) = ident(data)?;
    Ok((number(data, big, 18, 2)? as u16, wide))
}

/// Reads the program headers of an ELF executable of either class and byte order.
pub fn linking(data: &[u8]) -> Result<Linking, &'static str> {
    let (wide, big) = ident(data)?;
    let num = |at: usize, len: usize| number(data, big, at, len);
    let word = if wide { 8 } else { 4 };
    // e_phoff follows e_ident(16) e_type(2) e_machine(2) e_version(4) e_entry(word).
    let phoff = num(24 + word, word)? as usize;
    let ehdr_tail = 24 + 3 * word + 4; // e_flags follows e_shoff
    let phentsize = num(ehdr_tail + 2, 2)? as usize;
    let phnum = num(ehdr_tail + 4, 2)? as usize;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or("bad program headers")?)
            .ok_or("bad program headers")?;
        if num(ph, 4)? as u32 != PT_INTERP {
            continue;
        }
        // Elf64_Phdr: type flags offset vaddr paddr filesz; Elf32_Phdr: type offset vaddr paddr filesz.
        let (off, size) = if wide {
            (num(ph + 8, 8)?, num(ph + 32, 8)?)
        } else {
            (num(ph + 4, 4)?, num(ph + 16, 4)?)
        };
        let end = off.checked_add(size).ok_or("bad PT_INTERP")?;
        let bytes = data.get(off as usize..end as usize).ok_or("PT_INTERP outside the file")?;
        let path = bytes.split(|&b| b == 0).next().unwrap_or_default();
        return Ok(Linking::Dynamic(String::from_utf8_lossy(path).into_owned()));
    }
    Ok(Linking::Static)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_is_recognised() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // Rust links glibc programs dynamically and musl ones statically.
        let got = linking(&exe).unwrap();
        if cfg!(target_env = "musl") {
            assert_eq!(got, Linking::Static);
        } else {
            assert!(matches!(&got, Linking::Dynamic(i) if i.starts_with('/')), "{got:?}");
        }
    }

    #[test]
    fn junk_is_rejected() {
        assert_eq!(linking(b"#!/bin/sh\n"), Err("not an ELF file"));
        assert_eq!(linking(b"\x7fELF\x02\x01"), Err("truncated ELF header"));
    }
}
