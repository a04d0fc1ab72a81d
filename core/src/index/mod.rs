//! kmod's binary index (`modules.*.bin`): a radix trie of 7-bit keys, each with a list of
//! prioritised values, serialised big-endian in kmod 34's node order.
//!
//! [`IndexBuilder`] collects entries with kmod's value ordering; [`IndexBuilder::write`] plans
//! every node's offset and writes the file. [`reader::Index`] reads such a file back.

mod fnmatch;
pub mod reader;

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

    /// Puts the entries in writing order: by key, then priority, then newest first.
    fn sort(&mut self) {
        let mut entries = core::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| {
            self.key(a).cmp(self.key(b)).then(a.priority.cmp(&b.priority)).then(b.seq.cmp(&a.seq))
        });
        self.entries = entries;
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
        self.sort();
        // Distinct keys: `groups[g]..groups[g + 1]` are the entries of key `g`.
        let mut groups: Vec<u32> = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let prev = i.checked_sub(1).and_then(|p| self.entries.get(p));
            if prev.is_none_or(|p| !eq(self.key(p), self.key(e))) {
                groups.push(i as u32);
            }
        }
        groups.push(self.entries.len() as u32);
        let trie = Trie { builder: self, groups: &groups };
        let sizes = trie.sizes();
        let total = 12 + sizes.first().map_or(0, |s| s.bytes);
        if total > u64::from(OFFSET_MASK) + 1 {
            return Err(IndexError::TooLarge { size: total });
        }
        out.reserve(total as usize);
        let start = out.len();
        trie.write(&sizes, out);
        debug_assert_eq!((out.len() - start) as u64, total);
        Ok(())
    }
}

fn put(out: &mut Vec<u8>, word: u32) {
    out.extend_from_slice(&word.to_be_bytes());
}

/// The trie over a sorted builder's distinct keys. A node covers a range of keys sharing its
/// path; the root has no prefix, any other node takes the longest prefix its keys share.
struct Trie<'b> {
    builder: &'b IndexBuilder,
    /// Key group boundaries (see [`IndexBuilder::write`]).
    groups: &'b [u32],
}

/// A node of the trie: keys `lo..hi` (group numbers), whose paths are known up to `depth`.
#[derive(Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    depth: usize,
    root: bool,
}

/// Subtree sizes of one node, in pre-order.
#[derive(Clone, Copy, Default)]
struct Size {
    /// Bytes of the subtree (the node and all below it).
    bytes: u64,
    /// Nodes in the subtree.
    nodes: u32,
}

/// What a node holds, derived from its span.
struct NodeShape<'a> {
    prefix: &'a [u8],
    /// The key group ending at this node, if any.
    values: Option<usize>,
    /// Where the node's path ends: the key byte at this position picks a child.
    end: usize,
    /// The key groups below the children (empty for a leaf).
    kids: core::ops::Range<usize>,
    /// First and last child bytes.
    span: Option<(u8, u8)>,
}

impl<'b> Trie<'b> {
    fn key(&self, g: usize) -> &'b [u8] {
        let first = self.groups.get(g).and_then(|&e| self.builder.entries.get(e as usize));
        first.map_or(&[][..], |e| self.builder.key(e))
    }

    fn values(&self, g: usize) -> &'b [Entry] {
        let (lo, hi) = (self.groups.get(g), self.groups.get(g + 1));
        match (lo, hi) {
            (Some(&lo), Some(&hi)) => self.builder.entries.get(lo as usize..hi as usize),
            _ => None,
        }
        .unwrap_or_default()
    }

    fn shape(&self, span: Span) -> NodeShape<'b> {
        let first = self.key(span.lo);
        let rest = first.get(span.depth..).unwrap_or_default();
        let mut prefix_len = if span.root { 0 } else { rest.len() };
        if !span.root && span.hi > span.lo + 1 {
            // Keys are sorted: the prefix all of them share is the one the first and the last
            // share.
            let last = self.key(span.hi - 1).get(span.depth..).unwrap_or_default();
            prefix_len = rest.iter().zip(last).take_while(|(a, b)| a == b).count();
        }
        let end = span.depth + prefix_len;
        let values = (first.len() == end && span.lo < span.hi).then_some(span.lo);
        let kids = span.lo + usize::from(values.is_some())..span.hi;
        let byte = |g: usize| self.key(g).get(end).copied().unwrap_or(0);
        let span = (!kids.is_empty()).then(|| (byte(kids.start), byte(kids.end - 1)));
        NodeShape { prefix: rest.get(..prefix_len).unwrap_or_default(), values, end, kids, span }
    }

    /// The child after the one starting at key group `from` (or the first, from the start of
    /// `shape.kids`): its byte and span.
    fn next_child(&self, shape: &NodeShape<'_>, from: usize) -> Option<(u8, Span)> {
        if from >= shape.kids.end {
            return None;
        }
        let byte = self.key(from).get(shape.end).copied().unwrap_or(0);
        let mut hi = from + 1;
        while hi < shape.kids.end && self.key(hi).get(shape.end) == Some(&byte) {
            hi += 1;
        }
        Some((byte, Span { lo: from, hi, depth: shape.end + 1, root: false }))
    }

    fn body_size(&self, shape: &NodeShape<'_>) -> u64 {
        let mut size = 0u64;
        if !shape.prefix.is_empty() {
            size += shape.prefix.len() as u64 + 1;
        }
        if let Some((first, last)) = shape.span {
            size += 2 + 4 * (u64::from(last) - u64::from(first) + 1);
        }
        if let Some(g) = shape.values {
            let values = self.values(g);
            size += 4 + values.iter().map(|v| 4 + u64::from(v.value_len) + 1).sum::<u64>();
        }
        size
    }

    fn flags(shape: &NodeShape<'_>) -> u32 {
        let mut f = 0;
        if !shape.prefix.is_empty() {
            f |= FLAG_PREFIX;
        }
        if shape.values.is_some() {
            f |= FLAG_VALUES;
        }
        if shape.span.is_some() {
            f |= FLAG_CHILDS;
        }
        f
    }

    fn root(&self) -> Span {
        Span { lo: 0, hi: self.groups.len().saturating_sub(1), depth: 0, root: true }
    }

    /// Subtree sizes of every node, in pre-order, without recursion (keys can nest deeply) and
    /// without allocating per node.
    fn sizes(&self) -> Vec<Size> {
        let mut sizes: Vec<Size> = Vec::new();
        // (pre-order index, the node's shape, key group where its next child starts)
        let mut stack: Vec<(usize, NodeShape<'b>, usize)> = Vec::new();
        let root = self.shape(self.root());
        sizes.push(Size { bytes: self.body_size(&root), nodes: 1 });
        let next = root.kids.start;
        stack.push((0, root, next));
        while let Some((index, shape, next)) = stack.last_mut() {
            let index = *index;
            match self.next_child(shape, *next) {
                Some((_, child)) => {
                    *next = child.hi;
                    let shape = self.shape(child);
                    sizes.push(Size { bytes: self.body_size(&shape), nodes: 1 });
                    let start = shape.kids.start;
                    stack.push((sizes.len() - 1, shape, start));
                }
                None => {
                    stack.pop();
                    let done = sizes.get(index).copied().unwrap_or_default();
                    if let Some((parent, ..)) = stack.last() {
                        if let Some(p) = sizes.get_mut(*parent) {
                            p.bytes += done.bytes;
                            p.nodes += done.nodes;
                        }
                    }
                }
            }
        }
        sizes
    }

    /// Writes the header and every node, in pre-order.
    fn write(&self, sizes: &[Size], out: &mut Vec<u8>) {
        let shape = self.shape(self.root());
        put(out, MAGIC);
        put(out, VERSION);
        put(out, 12 | Self::flags(&shape));
        // Nodes still to write: (span, pre-order index, file offset), next on top.
        let mut stack: Vec<(Span, usize, u64)> = alloc::vec![(self.root(), 0, 12)];
        let mut placed: Vec<(u8, Span, usize, u64)> = Vec::new();
        while let Some((span, index, offset)) = stack.pop() {
            let shape = self.shape(span);
            if !shape.prefix.is_empty() {
                out.extend_from_slice(shape.prefix);
                out.push(0);
            }
            // Children follow the body in byte order, each taking its subtree's bytes.
            placed.clear();
            let (mut child_index, mut child_offset) = (index + 1, offset + self.body_size(&shape));
            let mut from = shape.kids.start;
            while let Some((byte, child)) = self.next_child(&shape, from) {
                from = child.hi;
                let size = sizes.get(child_index).copied().unwrap_or_default();
                placed.push((byte, child, child_index, child_offset));
                child_index += size.nodes as usize;
                child_offset += size.bytes;
            }
            if let Some((first, last)) = shape.span {
                out.push(first);
                out.push(last);
                let mut kids = placed.iter().peekable();
                for byte in first..=last {
                    match kids.next_if(|k| k.0 == byte) {
                        Some(&(_, child, _, off)) => {
                            put(out, off as u32 | Self::flags(&self.shape(child)));
                        }
                        None => put(out, 0),
                    }
                }
            }
            if let Some(g) = shape.values {
                let values = self.values(g);
                put(out, values.len() as u32);
                for v in values {
                    put(out, v.priority);
                    out.extend_from_slice(self.builder.value(v));
                    out.push(0);
                }
            }
            stack.extend(placed.iter().rev().map(|&(_, span, i, off)| (span, i, off)));
        }
    }
}

#[cfg(test)]
mod tests;
