//! `Module.symvers` and `System.map` parsing (core/src/kernel_symbols.rs) on arbitrary bytes.
#![no_main]

use depmod_core::kernel_symbols::{SymbolFileNotice, parse_symvers, parse_system_map};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (prefix, body) = match data.split_first() {
        Some((&p, rest)) => (p.is_ascii_punctuation().then_some(p), rest),
        None => (None, data),
    };
    let mut lines = 0u32;
    parse_symvers(
        body,
        |name, _crc| assert!(!name.is_empty() && !name.contains(&b'\n') && !name.contains(&0)),
        |n| match n {
            SymbolFileNotice::InvalidVersion { line, text, .. } => {
                assert!(line > lines && !text.is_empty());
                lines = line;
            }
            SymbolFileNotice::VersionOverflow { line } => {
                assert!(line > lines);
                lines = line;
            }
            other => panic!("System.map notice from Module.symvers: {other:?}"),
        },
    );
    let mut lines = 0u32;
    parse_system_map(
        body,
        prefix,
        |name| assert!(!name.contains(&b'\n') && !name.contains(&0)),
        |n| match n {
            SymbolFileNotice::InvalidLine { line, text } => {
                assert!(line > lines && !text.contains(&0));
                lines = line;
            }
            other => panic!("Module.symvers notice from System.map: {other:?}"),
        },
    );
});
