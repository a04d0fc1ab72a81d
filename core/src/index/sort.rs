//! The builder's entries in writing order, by a most-significant-digit sort on 16-byte chunks of
//! the keys. The sort also finds how many leading bytes each key shares with the one before it,
//! which is all the trie needs to know about the keys' shapes.
//!
//! A chunk is compared as one big-endian word, so a run of keys sharing a long prefix (every key
//! of `modules.symbols.bin` starts with `symbol:`, most aliases with `pci:v0000`) costs one
//! comparison per 16 bytes instead of a byte loop; each level sorts words held next to the entry
//! numbers instead of chasing each key into the arena at every comparison.

use alloc::vec::Vec;
use core::cmp::Reverse;

use super::Entry;

/// The shared-prefix length recorded for an entry whose key equals the previous entry's.
pub(super) const SAME: u32 = u32::MAX;

/// How a sorted entry's key compares with the previous entry's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Split {
    /// Bytes the two keys share ([`SAME`]: the keys are equal; 0 for the first entry).
    pub shared: u32,
    /// The previous key's byte at `shared` (0 where it ended, or for the first entry).
    pub prev: u8,
    /// This key's byte at `shared` (0 where it ends).
    pub byte: u8,
}

/// Bytes in a chunk.
const CHUNK: usize = 16;

/// Bytes `CHUNK * depth..` of `key`, big-endian, zero-padded. Keys hold no NUL, so a zero byte
/// means the key ended: a shorter key sorts first, and a chunk whose last byte is zero is the
/// key's last.
fn chunk(key: &[u8], depth: usize) -> u128 {
    let start = depth.saturating_mul(CHUNK);
    if let Some(Ok(word)) = key.get(start..start.saturating_add(CHUNK)).map(<[u8; CHUNK]>::try_from)
    {
        return u128::from_be_bytes(word);
    }
    let mut word = [0u8; CHUNK];
    let rest = key.get(start..).unwrap_or_default();
    for (w, &b) in word.iter_mut().zip(rest) {
        *w = b;
    }
    u128::from_be_bytes(word)
}

/// Sorts `entries` by key, then priority, then newest first (`seq` descending), `key` giving
/// each entry's key. Returns, for each entry in the new order, how its key differs from the
/// previous one.
pub(super) fn sort<'k>(entries: &mut Vec<Entry>, key: impl Fn(&Entry) -> &'k [u8]) -> Vec<Split> {
    let n = entries.len();
    let mut items: Vec<(u128, u32)> =
        entries.iter().enumerate().map(|(i, e)| (chunk(key(e), 0), i as u32)).collect();
    let mut splits = alloc::vec![Split::default(); n];
    let entry = |i: u32| entries.get(i as usize);
    // Runs still to sort: (start, end, chunk depth). Their chunks are loaded when popped, except
    // for the first run's, loaded above.
    let mut runs: Vec<(usize, usize, usize)> = alloc::vec![(0, n, 0)];
    while let Some((start, end, depth)) = runs.pop() {
        let Some(run) = items.get_mut(start..end) else { continue };
        if depth > 0 {
            for item in run.iter_mut() {
                item.0 = entry(item.1).map_or(0, |e| chunk(key(e), depth));
            }
        }
        run.sort_unstable_by_key(|item| item.0);
        let mut a = 0;
        while let Some(&(word, _)) = run.get(a) {
            let mut b = a + 1;
            while run.get(b).is_some_and(|item| item.0 == word) {
                b += 1;
            }
            if let (Some(next), Some(slot)) = (run.get(b), splits.get_mut(start + b)) {
                let at = (word ^ next.0).leading_zeros() / 8;
                let byte = |w: u128| (w >> (8 * (CHUNK as u32 - 1 - at))) as u8;
                let shared = (depth * CHUNK) as u32 + at;
                *slot = Split { shared, prev: byte(word), byte: byte(next.0) };
            }
            if b - a > 1 {
                if word & 0xff != 0 {
                    runs.push((start + a, start + b, depth + 1));
                } else if let Some(equal) = run.get_mut(a..b) {
                    // The key ends in this chunk: these entries have equal keys.
                    equal.sort_unstable_by_key(|item| {
                        entry(item.1).map(|e| (e.priority, Reverse(e.seq)))
                    });
                    for slot in splits.get_mut(start + a + 1..start + b).unwrap_or_default() {
                        slot.shared = SAME;
                    }
                }
            }
            a = b;
        }
    }
    let sorted: Vec<Entry> = items.iter().filter_map(|item| entry(item.1).copied()).collect();
    *entries = sorted;
    if let (Some(first), Some(e)) = (splits.first_mut(), entries.first()) {
        first.byte = key(e).first().copied().unwrap_or(0);
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_pad_with_zeros() {
        assert_eq!(chunk(b"abcdefghijklmnopqr", 0), u128::from_be_bytes(*b"abcdefghijklmnop"));
        assert_eq!(
            chunk(b"abcdefghijklmnopqr", 1),
            u128::from_be_bytes(*b"qr\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
        );
        assert_eq!(chunk(b"abcdefghijklmnop", 1), 0);
        assert_eq!(chunk(b"", 0), 0);
        assert_eq!(chunk(b"ab", 3), 0);
    }
}
