//! The ELF reader and the whole per-module parse of the binary (core/src/elf, module.rs) on
//! arbitrary bytes: `ModuleInfo::parse_with` with working space kept from one input to the next,
//! every section and symbol reader, and the two partial reads the binary does (large files read
//! in part, large compressed ones decoded sparsely, their symbol tables' local parts kept or
//! scanned), which must parse as the whole file does.
#![no_main]

use std::cell::RefCell;

use depmod_core::ModuleInfo;
use depmod_core::elf::{self, Elf, ImportScratch};
use depmod_core::module::Scratch;
use depmod_fuzz::{decode_sparse, read_sparse, summary};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static SCRATCH: RefCell<(Scratch, ImportScratch)> = RefCell::default();
}

fn readers(data: &[u8], imports_scratch: &mut ImportScratch) {
    let _ = (elf::section_table_range(data), elf::names_table_range(data));
    let Ok(e) = Elf::parse(data) else { return };
    assert_eq!(e.data().len(), data.len());
    let _ = (e.endian(), e.layout(), e.machine(), e.names_section());
    for index in 0..=e.section_count() {
        if let Ok(s) = e.section(index) {
            let start = s.offset as usize;
            assert_eq!(data.get(start..start + s.data.len()), Some(s.data));
        }
    }
    let sections: Vec<(&[u8], elf::Section<'_>)> = e.sections().collect();
    // Sections found by name are the first usable ones of that name (the known ones are
    // looked up once, when the file is parsed).
    for name in elf::READ_SECTIONS.iter().chain(&["__kcrctab", ".text", ""]) {
        let first = sections.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, s)| *s);
        assert_eq!(e.section_by_name(name), first, "{name}");
    }
    let _ = elf::crc_sections(&e);
    let mut exports = Vec::new();
    let exported = elf::exports(&e, |x| exports.push(x));
    let mut imports = Vec::new();
    let imported = elf::imports(&e, |i| imports.push(i));
    let mut again = Vec::new();
    let reused = elf::imports_with(&e, imports_scratch, |i| again.push(i));
    assert_eq!((imported, &imports), (reused, &again));
    if exported.is_err() {
        let _ = exports;
    }
}

fuzz_target!(|data: &[u8]| {
    let info = SCRATCH.with_borrow_mut(|(scratch, imports)| {
        readers(data, imports);
        ModuleInfo::parse_with(data, scratch)
    });
    let whole = summary(&info);
    assert!(info.heap_size() >= whole.aliases.iter().map(Vec::len).sum::<usize>());
    // Working space left by the previous input changes nothing.
    assert_eq!(whole, summary(&ModuleInfo::parse(data)));
    // A large file read in part (the rest holding another file's bytes)...
    let junk = data.last().map_or(0xa5, |b| b ^ 0x5a);
    assert_eq!(summary(&ModuleInfo::parse(&read_sparse(data, junk))), whole, "partial read");
    // ...and a large compressed one decoded sparsely parse as the whole file: keeping the
    // symbol table, or scanning its local part (in pieces of any size) and parsing with the
    // scan's summary.
    let piece = 1 + data.first().map_or(0, |&b| usize::from(b)) * 64;
    for min_scan in [usize::MAX, 0] {
        let Some((sparse, locals)) = decode_sparse(data, min_scan, piece) else { continue };
        let info = match &locals {
            Some(locals) => ModuleInfo::parse_lean(&sparse, locals, &mut Scratch::default())
                .expect("a summary fits the file it was made from"),
            None => ModuleInfo::parse(&sparse),
        };
        assert_eq!(
            summary(&info),
            whole,
            "sparse decode, local parts from {min_scan} bytes scanned"
        );
    }
});
