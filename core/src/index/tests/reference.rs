//! The trie writer as it was before it was planned from shared prefix lengths (a node's shape
//! recomputed from its range of keys at each visit): the oracle the new writer must match byte
//! for byte.

use alloc::vec::Vec;

use super::super::{
    Entry, FLAG_CHILDS, FLAG_PREFIX, FLAG_VALUES, IndexBuilder, MAGIC, OFFSET_MASK, VERSION,
};
use crate::bytes::eq;

/// Sorts and writes `builder` the old way.
pub fn write(builder: &IndexBuilder) -> Vec<u8> {
    let mut b = builder.clone();
    let mut entries = core::mem::take(&mut b.entries);
    entries.sort_unstable_by(|x, y| {
        b.key(x).cmp(b.key(y)).then(x.priority.cmp(&y.priority)).then(y.seq.cmp(&x.seq))
    });
    b.entries = entries;
    let mut groups: Vec<u32> = Vec::new();
    for (i, e) in b.entries.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| b.entries.get(p));
        if prev.is_none_or(|p| !eq(b.key(p), b.key(e))) {
            groups.push(i as u32);
        }
    }
    groups.push(b.entries.len() as u32);
    let trie = Trie { builder: &b, groups: &groups };
    let sizes = trie.sizes();
    let total = 12 + sizes.first().map_or(0, |s| s.bytes);
    assert!(total <= u64::from(OFFSET_MASK) + 1);
    let mut out = Vec::new();
    trie.write(&sizes, &mut out);
    assert_eq!(out.len() as u64, total);
    out
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
