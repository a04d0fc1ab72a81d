//! `.modinfo` records (core/src/modinfo.rs) against a byte-at-a-time model of libkmod's split.
#![no_main]

use depmod_core::modinfo::records;
use libfuzzer_sys::fuzz_target;

/// libkmod's `kmod_elf_get_strings`, written as the C loop is.
fn model(section: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut start = 0;
    while section.get(start) == Some(&0) {
        start += 1;
    }
    let mut out = Vec::new();
    if section.len().saturating_sub(start) <= 1 {
        return out;
    }
    let mut from = start;
    for i in start..=section.len() {
        if section.get(i).is_none_or(|&b| b == 0) {
            if i > from {
                let s = &section[from..i];
                out.push(match s.iter().position(|&b| b == b'=') {
                    Some(eq) => (&s[..eq], &s[eq + 1..]),
                    None => (s, &[][..]),
                });
            }
            from = i + 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let got: Vec<(&[u8], &[u8])> = records(data).map(|r| (r.key, r.value)).collect();
    for (k, v) in &got {
        assert!(!k.contains(&0) && !k.contains(&b'=') && !v.contains(&0));
    }
    assert_eq!(got, model(data));
});
