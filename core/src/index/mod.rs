//! kmod's binary index (`modules.*.bin`): a radix trie of 7-bit keys, each with a list of
//! prioritised values, serialised big-endian in kmod 34's node order.
//!
//! [`IndexBuilder`] collects entries with kmod's value ordering; [`IndexBuilder::write`] plans
//! every node's offset and writes the file. [`reader::Index`] reads such a file back.

mod fnmatch;
pub mod reader;

pub use fnmatch::fnmatch;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

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

/// Collects index entries.
#[derive(Clone, Debug, Default)]
pub struct IndexBuilder {
    entries: BTreeMap<Vec<u8>, Vec<Value>>,
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

    /// Adds `value` under `key`, before the first existing value whose priority is not lower
    /// (so equal priorities end up newest first). Returns whether the key already had the same
    /// value text (kmod's `-w` "duplicate" condition); duplicates are kept.
    pub fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) -> Result<bool, IndexError> {
        check_ascii(key, true)?;
        check_ascii(value, false)?;
        let values = match self.entries.get_mut(key) {
            Some(v) => v,
            None => self.entries.entry(key.to_vec()).or_default(),
        };
        let duplicate = values.iter().any(|v| v.text == value);
        let at = values
            .iter()
            .position(|v| v.priority >= priority)
            .unwrap_or(values.len());
        values.insert(
            at,
            Value {
                priority,
                text: value.to_vec(),
            },
        );
        Ok(duplicate)
    }

    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&[u8], &[Value])> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// Serialises the index (kmod 34 layout: root at offset 12, each node followed by its
    /// children's subtrees in byte order) and appends it to `out`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), IndexError> {
        let entries: Vec<(&[u8], &[Value])> = self.entries().collect();
        let mut nodes = Vec::new();
        build(&entries, 0, true, &mut nodes);
        let total = layout(&mut nodes, 12);
        if total > u64::from(OFFSET_MASK) + 1 {
            return Err(IndexError::TooLarge { size: total });
        }
        out.reserve(total as usize);
        let start = out.len();
        put(out, MAGIC);
        put(out, VERSION);
        put(out, nodes.first().map_or(12, |n| n.offset | n.flags()));
        for node in &nodes {
            node.write(&nodes, out);
        }
        debug_assert_eq!((out.len() - start) as u64, total);
        Ok(())
    }
}

fn put(out: &mut Vec<u8>, word: u32) {
    out.extend_from_slice(&word.to_be_bytes());
}

/// A trie node, in pre-order position.
struct Node<'a> {
    prefix: &'a [u8],
    values: &'a [Value],
    /// `(byte, node index)`, ascending.
    children: Vec<(u8, usize)>,
    /// Absolute file offset, set by [`layout`].
    offset: u32,
}

impl Node<'_> {
    fn flags(&self) -> u32 {
        let mut f = 0;
        if !self.prefix.is_empty() {
            f |= FLAG_PREFIX;
        }
        if !self.values.is_empty() {
            f |= FLAG_VALUES;
        }
        if !self.children.is_empty() {
            f |= FLAG_CHILDS;
        }
        f
    }

    fn body_size(&self) -> u64 {
        let mut size = 0u64;
        if !self.prefix.is_empty() {
            size += self.prefix.len() as u64 + 1;
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (self.children.first(), self.children.last())
        {
            size += 2 + 4 * (u64::from(last) - u64::from(first) + 1);
        }
        if !self.values.is_empty() {
            size += 4 + self
                .values
                .iter()
                .map(|v| 4 + v.text.len() as u64 + 1)
                .sum::<u64>();
        }
        size
    }

    fn write(&self, nodes: &[Node<'_>], out: &mut Vec<u8>) {
        if !self.prefix.is_empty() {
            out.extend_from_slice(self.prefix);
            out.push(0);
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (self.children.first(), self.children.last())
        {
            out.push(first);
            out.push(last);
            let mut kids = self.children.iter().peekable();
            for byte in first..=last {
                match kids.next_if(|&&(b, _)| b == byte) {
                    Some(&(_, i)) => {
                        put(out, nodes.get(i).map_or(0, |c| c.offset | c.flags()));
                    }
                    None => put(out, 0),
                }
            }
        }
        if !self.values.is_empty() {
            put(out, self.values.len() as u32);
            for v in self.values {
                put(out, v.priority);
                out.extend_from_slice(&v.text);
                out.push(0);
            }
        }
    }
}

/// Builds, in pre-order, the node for `entries` (sorted, all sharing their first `depth` bytes).
/// The root has no prefix; any other node takes the longest prefix its keys share.
fn build<'a>(
    entries: &[(&'a [u8], &'a [Value])],
    depth: usize,
    root: bool,
    nodes: &mut Vec<Node<'a>>,
) {
    let first = entries.first().map_or(&[][..], |e| e.0);
    let rest = first.get(depth..).unwrap_or_default();
    let mut prefix_len = if root { 0 } else { rest.len() };
    if !root {
        for (key, _) in entries.iter().skip(1) {
            let other = key.get(depth..).unwrap_or_default();
            prefix_len = rest
                .iter()
                .zip(other)
                .take(prefix_len)
                .take_while(|(a, b)| a == b)
                .count();
        }
    }
    let end = depth + prefix_len;
    let (values, branching) = match entries.first() {
        Some((k, v)) if k.len() == end => (*v, entries.get(1..).unwrap_or_default()),
        _ => (&[][..], entries),
    };
    let me = nodes.len();
    nodes.push(Node {
        prefix: rest.get(..prefix_len).unwrap_or_default(),
        values,
        children: Vec::new(),
        offset: 0,
    });
    let mut i = 0;
    while i < branching.len() {
        let byte = branching
            .get(i)
            .and_then(|(k, _)| k.get(end))
            .copied()
            .unwrap_or(0);
        let n = branching
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|(k, _)| k.get(end) == Some(&byte))
            .count()
            .max(1);
        let child = nodes.len();
        if let Some(node) = nodes.get_mut(me) {
            node.children.push((byte, child));
        }
        build(
            branching.get(i..i + n).unwrap_or_default(),
            end + 1,
            false,
            nodes,
        );
        i += n;
    }
}

/// Assigns offsets in pre-order starting at `start`; returns the end of the file.
fn layout(nodes: &mut [Node<'_>], start: u64) -> u64 {
    let mut at = start;
    for node in nodes.iter_mut() {
        node.offset = (at as u32) & OFFSET_MASK;
        at += node.body_size();
    }
    at
}

#[cfg(test)]
mod tests;
