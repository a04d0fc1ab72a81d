use alloc::vec;
use alloc::vec::Vec;

use super::reader::Index;
use super::*;

mod reference;

fn written(b: &IndexBuilder) -> Vec<u8> {
    let mut out = Vec::new();
    b.clone().write(&mut out).unwrap();
    out
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(core::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

#[test]
fn empty_index_is_the_header() {
    assert_eq!(written(&IndexBuilder::new()), hex("b007f457 00020001 0000000c"));
}

/// depmod-spec.md section 15.5: `modules.builtin` with ask, ate, on, once, one.
#[test]
fn worked_example_byte_for_byte() {
    let mut b = IndexBuilder::new();
    for k in ["ask", "ate", "on", "once", "one"] {
        b.insert(k.as_bytes(), b"", 0).unwrap();
    }
    let mut expected = hex("b007f457 00020001 2000000c 616f 2000004a");
    expected.extend(hex(&"00000000".repeat(13)));
    expected.extend(hex("e000006a 7374 c0000054 c000005f \
         6b00 00000001 00000000 00 \
         6500 00000001 00000000 00 \
         6e00 6365 c0000083 00000000 4000008e 00000001 00000000 00 \
         6500 00000001 00000000 00 \
         00000001 00000000 00"));
    let out = written(&b);
    assert_eq!(out.len(), 151);
    assert_eq!(out, expected);
}

#[test]
fn values_sort_by_priority_newest_first_and_keep_duplicates() {
    let mut b = IndexBuilder::new();
    b.insert(b"k", b"a", 5).unwrap();
    b.insert(b"k", b"b", 1).unwrap();
    b.insert(b"k", b"c", 5).unwrap();
    b.insert(b"other", b"a", 5).unwrap();
    b.insert(b"k", b"a", 9).unwrap();
    b.insert(b"k", b"d", 3).unwrap();
    b.insert(b"k", b"a", 0).unwrap();
    // kmod's -w condition: the key already had this value text, at any priority.
    let dups: Vec<(u32, &[u8], &[u8])> = b.duplicates();
    assert_eq!(dups, [(4, &b"k"[..], &b"a"[..]), (6, &b"k"[..], &b"a"[..])]);
    let out = written(&b);
    let got = Index::parse(&out).unwrap().lookup(b"k").unwrap();
    let texts: Vec<&[u8]> = got.iter().map(|v| v.text.as_slice()).collect();
    assert_eq!(texts, [&b"a"[..], b"b", b"d", b"c", b"a", b"a"]);
    let prios: Vec<u32> = got.iter().map(|v| v.priority).collect();
    assert_eq!(prios, [0, 1, 3, 5, 5, 9]);
}

#[test]
fn non_ascii_is_refused() {
    let mut b = IndexBuilder::new();
    assert_eq!(
        b.insert(b"caf\xe9", b"x", 0),
        Err(IndexError::BadCharacter { byte: 0xe9, in_key: true })
    );
    assert_eq!(
        b.insert(b"cafe", b"\x80", 0),
        Err(IndexError::BadCharacter { byte: 0x80, in_key: false })
    );
    assert_eq!(b.insert(b"a\0b", b"", 0), Err(IndexError::BadCharacter { byte: 0, in_key: true }));
    assert!(b.is_empty());
}

#[test]
fn edge_shapes_round_trip() {
    let mut b = IndexBuilder::new();
    let mut keys: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), b"ab".to_vec(), b"abc".to_vec()];
    // A node with every possible child: each non-NUL 7-bit byte after "w" (NUL ends a key, so
    // 127 of kmod's 128 child slots are the most a real index can fill).
    for c in 1u8..128 {
        keys.push(vec![b'w', c]);
    }
    for (i, k) in keys.iter().enumerate() {
        b.insert(k, k, i as u32).unwrap();
    }
    // One key with many priorities.
    for p in (0..300u32).rev() {
        b.insert(b"many", b"v", p).unwrap();
    }
    let out = written(&b);
    let index = Index::parse(&out).unwrap();
    for (i, k) in keys.iter().enumerate() {
        let v = index.lookup(k).unwrap();
        assert_eq!(v, [Value { priority: i as u32, text: k.clone() }], "key {k:?}");
    }
    let many = index.lookup(b"many").unwrap();
    assert_eq!(many.len(), 300);
    assert!(many.windows(2).all(|w| w[0].priority < w[1].priority));
    assert!(index.lookup(b"w").unwrap().is_empty());
    assert!(index.lookup(b"abcd").unwrap().is_empty());
    let dumped = index.entries().unwrap();
    assert_eq!(dumped, b.entries());
}

/// A small deterministic generator (xorshift), so the oracle tests need no dependency.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn word(&mut self, alphabet: &[u8], max: u64) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| alphabet[self.below(alphabet.len() as u64) as usize]).collect()
    }
}

#[test]
fn lookups_agree_with_a_linear_scan() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut b = IndexBuilder::new();
        let mut plain: Vec<(Vec<u8>, u32, Vec<u8>)> = Vec::new();
        for _ in 0..rng.below(200) {
            let key = rng.word(b"abc:*?[]-_", 8);
            let value = rng.word(b"xyz", 3);
            let prio = rng.below(5) as u32;
            b.insert(&key, &value, prio).unwrap();
            plain.push((key, prio, value));
        }
        let out = written(&b);
        let index = Index::parse(&out).unwrap();
        for _ in 0..100 {
            let probe = if rng.below(2) == 0 && !plain.is_empty() {
                plain[rng.below(plain.len() as u64) as usize].0.clone()
            } else {
                rng.word(b"abc:-_", 8)
            };
            // Exact: the builder's own ordering rule applied to a scan of the insertions.
            let mut exact = Vec::new();
            for (k, p, v) in &plain {
                if *k == probe {
                    let at = exact.iter().position(|x: &Value| x.priority >= *p);
                    exact
                        .insert(at.unwrap_or(exact.len()), Value { priority: *p, text: v.clone() });
                }
            }
            assert_eq!(index.lookup(&probe).unwrap(), exact, "round {round} probe {probe:?}");
            // Wildcard (searched names never contain pattern characters; kmod's walk can report
            // a key twice when they do): the values of every key matching as a pattern.
            if probe.iter().any(|c| b"*?[".contains(c)) {
                continue;
            }
            let mut expect: Vec<(u32, Vec<u8>)> = plain
                .iter()
                .filter(|(k, _, _)| *k == probe || fnmatch(k, &probe))
                .map(|(_, p, v)| (*p, v.clone()))
                .collect();
            let mut got: Vec<(u32, Vec<u8>)> = index
                .lookup_wild(&probe)
                .unwrap()
                .into_iter()
                .map(|v| (v.priority, v.text))
                .collect();
            assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by priority");
            expect.sort();
            got.sort();
            assert_eq!(got, expect, "round {round} wild probe {probe:?}");
        }
    }
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    use super::reader::ReadError;
    assert_eq!(Index::parse(b"\xb0\x07").unwrap_err(), ReadError::Truncated { len: 2 });
    assert_eq!(
        Index::parse(&hex("00000000 00020001 0000000c")).unwrap_err(),
        ReadError::BadMagic(0)
    );
    let mut b = IndexBuilder::new();
    b.insert(b"abc", b"v", 1).unwrap();
    b.insert(b"abd", b"v", 1).unwrap();
    let out = written(&b);
    for cut in 12..out.len() {
        if let Ok(index) = Index::parse(&out[..cut]) {
            assert!(index.entries().is_err() || cut == out.len());
        }
    }
    // A child pointing back at the root loops; the walk stops.
    let mut looped = out.clone();
    let root = u32::from_be_bytes(looped[8..12].try_into().unwrap());
    let first_slot = 12 + 2; // root has no prefix: first, last, then slots
    looped[first_slot..first_slot + 4].copy_from_slice(&root.to_be_bytes());
    let index = Index::parse(&looped).unwrap();
    assert_eq!(index.entries().unwrap_err(), ReadError::WalkTooLong);
}

/// Found by fuzzing (fuzz/regressions/index_reader/shared-children): children shared by several
/// parents made the dump and the wildcard search walk every path, exponentially many. Here 40
/// nodes each point both their children, `*` and `+`, at the next one: 2^40 keys.
#[test]
fn shared_children_stop_the_walk() {
    use super::reader::ReadError;
    let mut file = hex("b007f457 00020001");
    let node = |k: u32| FLAG_CHILDS | (12 + 10 * k);
    file.extend_from_slice(&node(0).to_be_bytes());
    for k in 0..40 {
        let next = if k == 39 { FLAG_VALUES | (12 + 10 * 40) } else { node(k + 1) };
        file.extend_from_slice(b"*+");
        file.extend_from_slice(&next.to_be_bytes());
        file.extend_from_slice(&next.to_be_bytes());
    }
    file.extend(hex("00000001 00000007 7600"));
    let index = Index::parse(&file).unwrap();
    assert_eq!(index.entries().unwrap_err(), ReadError::WalkTooLong);
    assert_eq!(index.lookup_wild(b"ab").unwrap_err(), ReadError::WalkTooLong);
    // An exact lookup follows one path.
    let key = b"*+".repeat(20);
    assert_eq!(index.lookup(&key).unwrap(), [Value { priority: 7, text: b"v".to_vec() }]);
}

/// The writer planned from shared prefix lengths writes what the old writer, which derived
/// every node from its range of keys, wrote: random key sets over small alphabets (deep shared
/// prefixes, keys that are prefixes of others, the empty key, equal keys), and the edge shapes.
#[test]
fn same_bytes_as_the_reference_writer() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for round in 0..400 {
        let mut b = IndexBuilder::new();
        let alphabet: &[u8] = match round % 4 {
            0 => b"ab",
            1 => b"abc:*?[]-_",
            2 => b"a",
            _ => b"pci:v0123456789ABCDEFd*",
        };
        let long = if round % 5 == 0 { 40 } else { 12 };
        for _ in 0..rng.below(300) {
            let key = rng.word(alphabet, long);
            let value = rng.word(b"xyz", 3);
            b.insert(&key, &value, rng.below(4) as u32).unwrap();
        }
        assert_eq!(written(&b), reference::write(&b), "round {round}");
    }
    let mut b = IndexBuilder::new();
    for c in 1u8..128 {
        b.insert(&[b'w', c], b"v", 0).unwrap();
        b.insert(&[c], b"", u32::from(c)).unwrap();
        b.insert(&[c; 20], b"long", 1).unwrap();
    }
    b.insert(b"", b"root", 0).unwrap();
    assert_eq!(written(&b), reference::write(&b));
    assert_eq!(written(&IndexBuilder::new()), reference::write(&IndexBuilder::new()));
}

/// Entries come out sorted with their shared prefix lengths, equal keys marked.
#[test]
fn sort_gives_shared_prefix_lengths() {
    let mut b = IndexBuilder::new();
    for (k, p) in [("abcdefghij", 0), ("abc", 0), ("abcdefghiz", 1), ("abc", 2), ("b", 0), ("", 0)]
    {
        b.insert(k.as_bytes(), b"", p).unwrap();
    }
    let splits = b.sort();
    let keys: Vec<&[u8]> = b.entries.iter().map(|e| b.key(e)).collect();
    assert_eq!(keys, [&b""[..], b"abc", b"abc", b"abcdefghij", b"abcdefghiz", b"b"]);
    let shared: Vec<u32> = splits.iter().map(|s| s.shared).collect();
    assert_eq!(shared, [0, 0, sort::SAME, 3, 9, 0]);
    let bytes: Vec<(u8, u8)> = splits.iter().map(|s| (s.prev, s.byte)).collect();
    assert_eq!(bytes[1], (0, b'a'));
    assert_eq!(bytes[3], (0, b'd'));
    assert_eq!(bytes[4], (b'j', b'z'));
    assert_eq!(bytes[5], (b'a', b'b'));
}
