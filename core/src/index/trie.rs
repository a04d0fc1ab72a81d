//! The trie over a sorted builder's keys: planned in one pass over the keys, then written in
//! kmod 34's order (each node followed by its children's subtrees in byte order).
//!
//! A node covers the keys sharing its path. The root has no prefix; any other node is reached
//! through one byte of its parent's child table and takes, as its prefix, the longest run of
//! bytes all its keys share after that. Over sorted keys, that trie is the compressed trie of
//! the keys, and knowing how many bytes each key shares with the one before it is enough to
//! build it: the nodes on the path of the previous key that are deeper than that shared length
//! are complete. The nodes are kept on a stack along the path of the last key; a node is closed
//! (its children known) when a key leaves its subtree, which numbers the nodes in post-order
//! and gives each closed node's subtree size, so that the writer knows every child's offset
//! when it writes its parent.

use alloc::vec::Vec;

use super::sort::{SAME, Split};
use super::{Entry, FLAG_CHILDS, FLAG_PREFIX, FLAG_VALUES, IndexBuilder, IndexError};
use super::{MAGIC, OFFSET_MASK, VERSION};

/// A closed node.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    /// The first key group of the subtree. The node's values, if it has any, are this group's.
    lo: u32,
    /// Where the node's path ends: its key bytes are `key(lo)[..end]`.
    end: u32,
    /// The node's children, as a range of [`Plan::kids`].
    kids: u32,
    kid_count: u32,
    /// Bytes of the values of key `lo` if it ends here (count, priorities, texts), else 0.
    values: u64,
    /// Bytes of the node itself (prefix, child table, values), once its parent is known.
    body: u64,
    /// Bytes of the children's subtrees.
    below: u64,
    /// The byte of the parent's child table that leads here, once the parent is known.
    byte: u8,
    /// The first and last bytes of the node's child table.
    first: u8,
    last: u8,
}

impl Node {
    /// Bytes of the subtree, once the parent is known.
    fn size(&self) -> u64 {
        self.body + self.below
    }

    fn has_values(&self) -> bool {
        self.values > 0
    }
}

/// A node still open: on the path of the last key seen.
#[derive(Clone, Copy, Debug)]
struct Open {
    lo: u32,
    end: u32,
    values: u64,
    /// The byte of the parent's child table that leads here.
    byte: u8,
    /// Where its children start in [`Plan::pending`].
    pending: usize,
}

/// The planned trie.
struct Plan<'b> {
    builder: &'b IndexBuilder,
    /// Key groups: `groups[g]..groups[g + 1]` are the entries of distinct key `g`.
    groups: Vec<u32>,
    /// Each key group's key, as (start, length) in the builder's arena.
    keys: Vec<(u32, u32)>,
    /// Closed nodes, in post-order; the root is last.
    nodes: Vec<Node>,
    /// Children of the closed nodes (node numbers), each node's in byte order.
    kids: Vec<u32>,
    /// Children of the open nodes, the deepest node's last.
    pending: Vec<u32>,
    open: Vec<Open>,
}

/// Writes `word` big-endian at `at` in `out`, and moves `at` past it.
fn put(out: &mut [u8], at: &mut usize, word: u32) {
    bytes(out, at, &word.to_be_bytes());
}

/// Writes `data` at `at` in `out`, and moves `at` past it.
fn bytes(out: &mut [u8], at: &mut usize, data: &[u8]) {
    if let Some(dst) = out.get_mut(*at..*at + data.len()) {
        dst.copy_from_slice(data);
    }
    *at += data.len();
}

impl<'b> Plan<'b> {
    fn key(&self, g: u32) -> &'b [u8] {
        let arena: &'b [u8] = &self.builder.arena;
        match self.keys.get(g as usize) {
            Some(&(start, len)) => arena.get(start as usize..(start + len) as usize),
            None => None,
        }
        .unwrap_or_default()
    }

    fn values(&self, g: u32) -> &'b [Entry] {
        let (lo, hi) = (self.groups.get(g as usize), self.groups.get(g as usize + 1));
        match (lo, hi) {
            (Some(&lo), Some(&hi)) => self.builder.entries.get(lo as usize..hi as usize),
            _ => None,
        }
        .unwrap_or_default()
    }

    fn node(&self, n: u32) -> Node {
        self.nodes.get(n as usize).copied().unwrap_or_default()
    }

    fn children(&self, node: &Node) -> &[u32] {
        let start = node.kids as usize;
        self.kids.get(start..start + node.kid_count as usize).unwrap_or_default()
    }

    /// Bytes of `node` itself under a parent whose path ends at `parent_end` (none: the root).
    fn body(node: &Node, parent_end: Option<u32>) -> u64 {
        let mut size = node.values;
        let prefix = parent_end.map_or(0, |p| node.end.saturating_sub(p + 1));
        if prefix > 0 {
            size += u64::from(prefix) + 1;
        }
        if node.kid_count > 0 {
            size += 2 + 4 * (u64::from(node.last) - u64::from(node.first) + 1);
        }
        size
    }

    /// Opens a node reached by `byte`; `values` says whether key `lo` ends there.
    fn open(&mut self, lo: u32, end: u32, values: bool, byte: u8) {
        let values = if values {
            let texts = self.values(lo).iter().map(|v| 4 + u64::from(v.value_len) + 1);
            4 + texts.sum::<u64>()
        } else {
            0
        };
        self.open.push(Open { lo, end, values, byte, pending: self.pending.len() });
    }

    /// Closes the deepest open node: its children are final, and so are their sizes.
    fn close(&mut self) {
        let Some(o) = self.open.pop() else { return };
        let mut node = Node {
            lo: o.lo,
            end: o.end,
            values: o.values,
            byte: o.byte,
            kids: self.kids.len() as u32,
            kid_count: self.pending.len().saturating_sub(o.pending) as u32,
            ..Node::default()
        };
        for i in o.pending..self.pending.len() {
            let Some(&kid) = self.pending.get(i) else { break };
            let mut k = self.node(kid);
            k.body = Self::body(&k, Some(o.end));
            node.below += k.size();
            if i == o.pending {
                node.first = k.byte;
            }
            node.last = k.byte;
            if let Some(slot) = self.nodes.get_mut(kid as usize) {
                *slot = k;
            }
            self.kids.push(kid);
        }
        self.pending.truncate(o.pending);
        self.pending.push(self.nodes.len() as u32);
        self.nodes.push(node);
    }

    /// Builds the trie of `builder`'s sorted entries, `splits` saying how each entry's key
    /// differs from the previous one.
    fn new(builder: &'b IndexBuilder, splits: &[Split]) -> Self {
        let mut groups = Vec::new();
        let mut keys = Vec::new();
        let mut group_splits = Vec::new();
        for (i, (&s, e)) in splits.iter().zip(&builder.entries).enumerate() {
            if s.shared != SAME || i == 0 {
                groups.push(i as u32);
                keys.push((e.key, e.key_len));
                group_splits.push(s);
            }
        }
        groups.push(builder.entries.len() as u32);
        let count = group_splits.len();
        let mut plan = Plan {
            builder,
            groups,
            keys,
            nodes: Vec::with_capacity(2 * count + 1),
            kids: Vec::with_capacity(2 * count),
            pending: Vec::new(),
            open: Vec::new(),
        };
        let root_values = count > 0 && plan.key(0).is_empty();
        plan.open(0, 0, root_values, 0);
        for (g, split) in group_splits.iter().enumerate() {
            let g = g as u32;
            let len = plan.key(g).len() as u32;
            if g == 0 {
                if !root_values {
                    plan.open(0, len, true, split.byte);
                }
                continue;
            }
            let s = split.shared;
            let top = |p: &Plan<'_>| p.open.last().map_or(0, |o| o.end);
            while top(&plan) > s {
                plan.close();
            }
            if top(&plan) < s {
                // The last closed node and the new key part after `s` bytes: a node at `s`
                // takes the closed one as its first child.
                // The closed node keeps its first byte after `s`, the previous key's.
                if let Some(last) = plan.pending.pop() {
                    let closed = plan.node(last);
                    plan.open(closed.lo, s, false, closed.byte);
                    if let Some(n) = plan.nodes.get_mut(last as usize) {
                        n.byte = split.prev;
                    }
                    plan.pending.push(last);
                }
            }
            plan.open(g, len, true, split.byte);
        }
        while !plan.open.is_empty() {
            plan.close();
        }
        if let Some(root) = plan.nodes.last_mut() {
            root.body = Self::body(root, None);
        }
        plan
    }

    fn root(&self) -> Node {
        self.nodes.last().copied().unwrap_or_default()
    }

    fn flags(node: &Node, parent_end: Option<u32>) -> u32 {
        let mut f = 0;
        if parent_end.is_some_and(|p| node.end > p + 1) {
            f |= FLAG_PREFIX;
        }
        if node.has_values() {
            f |= FLAG_VALUES;
        }
        if node.kid_count > 0 {
            f |= FLAG_CHILDS;
        }
        f
    }

    /// Writes the header and every node, in pre-order, into `out`, which has the index's size
    /// and is zeroed (the empty slots of child tables are left as they are).
    fn write(&self, out: &mut [u8]) {
        let root = self.root();
        let mut at = 0;
        put(out, &mut at, MAGIC);
        put(out, &mut at, VERSION);
        put(out, &mut at, 12 | Self::flags(&root, None));
        let top = self.nodes.len() as u32 - 1;
        self.write_subtree(out.get_mut(at..).unwrap_or_default(), top, None, at as u64);
    }

    /// Writes node `top` (under a parent whose path ends at `parent_end`; none: the root) and
    /// its subtree, in pre-order, into `out`, which has the subtree's size, is zeroed, and
    /// starts at offset `base` of the index.
    fn write_subtree(&self, out: &mut [u8], top: u32, parent_end: Option<u32>, base: u64) {
        let mut at = 0;
        // Nodes still to write, next on top: (node number, the parent's path end).
        let mut stack: Vec<(u32, Option<u32>)> = alloc::vec![(top, parent_end)];
        while let Some((n, parent_end)) = stack.pop() {
            let node = self.node(n);
            let offset = at as u64;
            if let Some(p) = parent_end.filter(|&p| node.end > p + 1) {
                let key = self.key(node.lo);
                bytes(out, &mut at, key.get(p as usize + 1..node.end as usize).unwrap_or_default());
                at += 1;
            }
            let kids = self.children(&node);
            if node.kid_count > 0 {
                bytes(out, &mut at, &[node.first, node.last]);
                let table = at;
                let mut child = base + offset + node.body;
                for &kid in kids {
                    let k = self.node(kid);
                    let mut slot = table + 4 * usize::from(k.byte.wrapping_sub(node.first));
                    put(out, &mut slot, child as u32 | Self::flags(&k, Some(node.end)));
                    child += k.size();
                }
                at += 4 * (usize::from(node.last) - usize::from(node.first) + 1);
            }
            if node.has_values() {
                let values = self.values(node.lo);
                put(out, &mut at, values.len() as u32);
                for v in values {
                    put(out, &mut at, v.priority);
                    bytes(out, &mut at, self.builder.value(v));
                    at += 1;
                }
            }
            stack.extend(kids.iter().rev().map(|&k| (k, Some(node.end))));
        }
        debug_assert_eq!(at, out.len());
    }
}

/// Serialises `builder`, whose entries are sorted, `splits` saying how each entry's key differs
/// from the previous one; appends the index to `out`.
pub(super) fn write(
    builder: &IndexBuilder,
    splits: &[Split],
    out: &mut Vec<u8>,
) -> Result<(), IndexError> {
    let plan = Plan::new(builder, splits);
    let total = 12 + plan.root().size();
    if total > u64::from(OFFSET_MASK) + 1 {
        return Err(IndexError::TooLarge { size: total });
    }
    let start = out.len();
    out.resize(start + total as usize, 0);
    plan.write(out.get_mut(start..).unwrap_or_default());
    Ok(())
}

/// A subtree planned from a builder whose keys all start with one byte: the root's only child,
/// which a patch puts under that byte of a parent in another index ([`super::patch`]).
pub(super) struct Subtree<'b> {
    plan: Plan<'b>,
    /// The child's node number; `None` when the builder is empty.
    top: Option<u32>,
}

impl<'b> Subtree<'b> {
    /// Plans the subtree of `builder`'s sorted entries, `splits` saying how each entry's key
    /// differs from the previous one; `None` unless every key starts with the same byte.
    pub(super) fn plan(builder: &'b IndexBuilder, splits: &[Split]) -> Option<Self> {
        let plan = Plan::new(builder, splits);
        let root = plan.root();
        let top = match plan.children(&root) {
            [] => None,
            [top] if !root.has_values() => Some(*top),
            _ => return None,
        };
        Some(Subtree { plan, top })
    }

    /// Bytes of the subtree.
    pub(super) fn size(&self) -> u64 {
        self.top.map_or(0, |t| self.plan.node(t).size())
    }

    /// The flags of the parent's word that leads to the subtree.
    pub(super) fn flags(&self) -> u32 {
        self.top.map_or(0, |t| Plan::flags(&self.plan.node(t), Some(0)))
    }

    /// Writes the subtree into `out`, which has its size, is zeroed, and starts at offset
    /// `base` of the index.
    pub(super) fn write(&self, out: &mut [u8], base: u64) {
        if let Some(top) = self.top {
            self.plan.write_subtree(out, top, Some(0), base);
        }
    }
}
