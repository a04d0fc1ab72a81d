//! kmod's binary index (`modules.*.bin`): a radix trie of 7-bit keys, each with a list of
//! prioritised values, serialised big-endian in kmod 34's node order.
//!
//! [`IndexBuilder`] collects entries with kmod's value ordering; [`IndexBuilder::write`] plans
//! every node's offset and writes the file. [`reader::Index`] reads such a file back, and
//! [`patch::patch`] makes a new one from an old one and a few changed keys.

mod fnmatch;
pub mod patch;
pub mod reader;
mod sort;
mod trie;

pub use fnmatch::fnmatch;

use alloc::vec::Vec;
use core::fmt;

use crate::bytes::{cmp, eq};

/// `0xB007F457`, the first word of every index.
pub const MAGIC: u32 = 0xB007_F457;
/// Format version 2.1.
pub const VERSION: u32 = 0x0002_0001;
/// Node offset flag: the node has a prefix.
pub const FLAG_PREFIX: u32 = 0x8000_0000;
/// Node offset flag: the node has values.
pub const FLAG_VALUES: u32 = 0x4000_0000;
/// Node offset flag: the node has children.
pub const FLAG_CHILDS: u32 = 0x2000_0000;
/// The offset bits of a node offset word.
pub const OFFSET_MASK: u32 = 0x0FFF_FFFF;

/// Why an index cannot be built or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexError {
    /// A key or value byte is not 7-bit ASCII (kmod 34: `Module index: bad character`), or is a
    /// NUL, which the format cannot hold.
    BadCharacter {
        /// The byte.
        byte: u8,
        /// Whether it was in the key (else in the value).
        in_key: bool,
    },
    /// The index would be larger than the 28-bit node offsets can address.
    TooLarge {
        /// Bytes the index would take.
        size: u64,
    },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IndexError::BadCharacter { byte, in_key } => write!(
                f,
                "byte {byte:#x} in an index {} is not 7-bit ASCII",
                if in_key { "key" } else { "value" }
            ),
            IndexError::TooLarge { size } => write!(
                f,
                "index of {size} bytes exceeds the 256 MiB that 28-bit node offsets address"
            ),
        }
    }
}

impl core::error::Error for IndexError {}

/// One value under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Lower sorts first.
    pub priority: u32,
    /// The value text.
    pub text: Vec<u8>,
}

/// One inserted entry: key and value as ranges of the builder's byte arena.
#[derive(Clone, Copy, Debug)]
struct Entry {
    key: u32,
    key_len: u32,
    value: u32,
    value_len: u32,
    priority: u32,
    /// Insertion order.
    seq: u32,
}

/// Collects index entries in one byte arena; they are ordered only when written.
#[derive(Clone, Debug, Default)]
pub struct IndexBuilder {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

/// Keys and values are C strings of 7-bit characters: no byte above 0x7f, and no NUL.
fn check_ascii(bytes: &[u8], in_key: bool) -> Result<(), IndexError> {
    // Eight bytes at a time: no high bit set, and no zero byte (the classic `haszero`).
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut words = bytes.chunks_exact(8);
    let clean = words.all(|w| {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        (w | (w.wrapping_sub(ONES) & !w)) & HIGH == 0
    });
    if clean && words.remainder().iter().all(|&b| b != 0 && b < 0x80) {
        return Ok(());
    }
    match bytes.iter().find(|&&b| b >= 0x80 || b == 0) {
        Some(&byte) => Err(IndexError::BadCharacter { byte, in_key }),
        None => Ok(()),
    }
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `key` with `priority`. Under one key, values are written by ascending
    /// priority, equal priorities newest first; duplicates are kept. Returns the entry's
    /// insertion number (from 0).
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<u32, IndexError> {
        check_ascii(key, true)?;
        check_ascii(value, false)?;
        let too_large = || IndexError::TooLarge { size: u64::MAX };
        let seq = u32::try_from(self.entries.len()).map_err(|_| too_large())?;
        let at = |len: usize| u32::try_from(len).map_err(|_| too_large());
        let (k, v) = (at(self.arena.len())?, at(self.arena.len() + key.len())?);
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        at(self.arena.len())?;
        self.entries.push(Entry {
            key: k,
            key_len: key.len() as u32,
            value: v,
            value_len: value.len() as u32,
            priority,
            seq,
        });
        Ok(seq)
    }

    fn key(&self, e: &Entry) -> &[u8] {
        let start = e.key as usize;
        self.arena.get(start..start + e.key_len as usize).unwrap_or_default()
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let start = e.value as usize;
        self.arena.get(start..start + e.value_len as usize).unwrap_or_default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries whose key already had the same value text when they were inserted (kmod's
    /// `-w` "duplicate" condition), in insertion order: `(insertion number, key, value)`.
    pub fn duplicates(&self) -> Vec<(u32, &[u8], &[u8])> {
        let mut order: Vec<&Entry> = self.entries.iter().collect();
        order.sort_unstable_by(|a, b| {
            cmp(self.key(a), self.key(b))
                .then_with(|| cmp(self.value(a), self.value(b)))
                .then(a.seq.cmp(&b.seq))
        });
        let mut dups: Vec<(u32, &[u8], &[u8])> = order
            .windows(2)
            .filter_map(|w| match w {
                [a, b] if eq(self.key(a), self.key(b)) && eq(self.value(a), self.value(b)) => {
                    Some((b.seq, self.key(b), self.value(b)))
                }
                _ => None,
            })
            .collect();
        dups.sort_unstable_by_key(|d| d.0);
        dups
    }

    /// Puts the entries in writing order: by key, then priority, then newest first. Returns
    /// how each entry's key differs from the previous one ([`sort::sort`]).
    fn sort(&mut self) -> Vec<sort::Split> {
        let mut entries = core::mem::take(&mut self.entries);
        let arena = &self.arena;
        let shared = sort::sort(&mut entries, |e| {
            let start = e.key as usize;
            arena.get(start..start + e.key_len as usize).unwrap_or_default()
        });
        self.entries = entries;
        shared
    }

    /// The keys with their values, in key order (for tests and tools).
    pub fn entries(&mut self) -> Vec<(Vec<u8>, Vec<Value>)> {
        self.sort();
        let mut out: Vec<(Vec<u8>, Vec<Value>)> = Vec::new();
        for e in &self.entries {
            let value = Value { priority: e.priority, text: self.value(e).to_vec() };
            match out.last_mut() {
                Some((k, values)) if k.as_slice() == self.key(e) => values.push(value),
                _ => out.push((self.key(e).to_vec(), alloc::vec![value])),
            }
        }
        out
    }

    /// Serialises the index (kmod 34 layout: root at offset 12, each node followed by its
    /// children's subtrees in byte order) and appends it to `out`.
    pub fn write(&mut self, out: &mut Vec<u8>) -> Result<(), IndexError> {
        let shared = self.sort();
        trie::write(self, &shared, out)
    }
}

#[cfg(test)]
mod tests;
