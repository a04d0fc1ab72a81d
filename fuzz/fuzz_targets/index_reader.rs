//! The `.bin` index reader (core/src/index/reader.rs) on arbitrary files: the first byte is the
//! length of a key to look up, then the key, then the file.
#![no_main]

use depmod_core::index::reader::{Index, ReadError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (n, rest) = match data.split_first() {
        Some((&n, rest)) => (usize::from(n) % 64, rest),
        None => return,
    };
    let (key, file) = rest.split_at(n.min(rest.len()));
    let Ok(index) = Index::parse(file) else { return };
    let _ = index.lookup(key);
    let _ = index.lookup_wild(key);
    let Ok(entries) = index.entries() else { return };
    // Every key the dump lists is found by an exact lookup, with the same values.
    for (k, values) in entries.iter().take(64) {
        match index.lookup(k) {
            Ok(found) => assert_eq!(&found, values, "key {k:?}"),
            Err(ReadError::TooDeep) => {}
            Err(e) => panic!("dump listed {k:?}, lookup failed: {e}"),
        }
    }
});
