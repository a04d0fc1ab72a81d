//! The trie writer and reader together (core/src/index): entries built from the input are
//! written, read back, dumped, looked up exactly and by kmod's wildcard search, against naive
//! oracles. Input: records separated by NUL, each a priority byte then `key=value`.
#![no_main]

use depmod_core::index::reader::Index;
use depmod_core::index::{IndexBuilder, IndexError, Value, fnmatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut builder = IndexBuilder::new();
    let mut inserted: Vec<(Vec<u8>, Value)> = Vec::new();
    for record in data.split(|&b| b == 0).take(64) {
        let Some((&p, rest)) = record.split_first() else { continue };
        let (key, value) = match rest.iter().position(|&b| b == b'=') {
            Some(eq) => (&rest[..eq], &rest[eq + 1..]),
            None => (rest, &[][..]),
        };
        let priority = u32::from(p) * 0x0101_0101 % 7;
        match builder.insert(key, value, priority) {
            Ok(_) => inserted.push((key.to_vec(), Value { priority, text: value.to_vec() })),
            Err(IndexError::BadCharacter { byte, in_key }) => {
                let bad = |s: &[u8]| s.contains(&byte);
                assert!(byte >= 0x80 && bad(if in_key { key } else { value }));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let mut file = Vec::new();
    builder.clone().write(&mut file).expect("small index");
    let index = Index::parse(&file).expect("own output parses");
    let expected = builder.entries();
    assert_eq!(index.entries().expect("own output dumps"), expected);
    for (key, values) in &expected {
        assert_eq!(&index.lookup(key).expect("lookup"), values);
        // A key one byte longer or shorter that was not inserted finds nothing.
        let mut longer = key.clone();
        longer.push(b'~');
        if !expected.iter().any(|(k, _)| *k == longer) {
            assert!(index.lookup(&longer).expect("lookup").is_empty());
        }
    }
    // kmod's wildcard search, for names without wildcard characters: the name's own values and
    // those of every key with a wildcard whose text before its first wildcard is the name's (the
    // search walks there byte by byte), with the rest of the key matching the rest of the name
    // (`fnmatch` from the wildcard on: a backslash before it is a plain byte).
    let names = expected.iter().map(|(k, _)| k.clone()).chain([b"".to_vec(), b"ab".to_vec()]);
    for name in names.take(16) {
        if name.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
            continue;
        }
        let mut want: Vec<(u32, Vec<u8>)> = Vec::new();
        for (key, value) in &inserted {
            let hit = match key.iter().position(|c| matches!(c, b'*' | b'?' | b'[')) {
                None => *key == name,
                Some(w) => {
                    name.get(..w) == key.get(..w)
                        && fnmatch(&key[w..], name.get(w..).unwrap_or_default())
                }
            };
            if hit {
                want.push((value.priority, value.text.clone()));
            }
        }
        let got = index.lookup_wild(&name).expect("wild lookup");
        assert!(got.windows(2).all(|w| w[0].priority <= w[1].priority), "sorted by priority");
        let mut got: Vec<(u32, Vec<u8>)> = got.into_iter().map(|v| (v.priority, v.text)).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "wild lookup of {name:?}");
    }
});
