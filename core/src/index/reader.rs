//! Reading a `modules.*.bin` index: exact lookups, kmod's wildcard search, and a full dump.
//! Works with both node layouts (kmod ≤ 33 post-order, kmod 34 pre-order) and never trusts an
//! offset: every read is bounds-checked, walks are depth-limited, and a walk over many keys
//! (dump, wildcard search) stops once it has read more nodes and prefix bytes than the file
//! holds: in a file kmod wrote, each node is reached once, but offsets may point many parents
//! at one child, which makes the walk exponential in the file's size.

use alloc::vec::Vec;
use core::fmt;

use super::fnmatch::fnmatch;
use super::{FLAG_CHILDS, FLAG_PREFIX, FLAG_VALUES, MAGIC, OFFSET_MASK, VERSION, Value};
use crate::bytes::{Endian, cstr_at};

/// Longest chain of nodes followed from the root; deeper means a corrupt (looping) file.
const MAX_DEPTH: usize = 1024;

/// What is wrong with an index file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// Shorter than the 12-byte header.
    Truncated { len: usize },
    /// The first word is not `0xB007F457`.
    BadMagic(u32),
    /// The version word is not `0x00020001`.
    BadVersion(u32),
    /// A node or one of its fields lies outside the file.
    NodeOutOfBounds { offset: u32 },
    /// A node's child range has `first > last`.
    BadChildRange { offset: u32 },
    /// Nodes nest deeper than any real key could (a loop of offsets).
    TooDeep,
    /// A walk reached more nodes and prefix bytes than the file holds: nodes are shared by
    /// several parents, or loop.
    WalkTooLong,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReadError::Truncated { len } => write!(f, "{len} bytes is too short for an index"),
            ReadError::BadMagic(m) => write!(f, "bad magic {m:#010x}"),
            ReadError::BadVersion(v) => write!(f, "unsupported version {v:#010x}"),
            ReadError::NodeOutOfBounds { offset } => {
                write!(f, "node at offset {offset:#x} runs past the end of the file")
            }
            ReadError::BadChildRange { offset } => {
                write!(f, "node at offset {offset:#x} has first child after last")
            }
            ReadError::TooDeep => write!(f, "nodes nest more than {MAX_DEPTH} deep"),
            ReadError::WalkTooLong => {
                write!(f, "the walk reaches more nodes than the file holds (shared or looping)")
            }
        }
    }
}

impl core::error::Error for ReadError {}

/// A key with its values, as [`Index::entries`] lists them.
pub type Entry = (Vec<u8>, Vec<Value>);

/// A parsed index file.
#[derive(Clone, Copy, Debug)]
pub struct Index<'a> {
    data: &'a [u8],
    root: u32,
}

/// One decoded node.
pub(super) struct Node<'a> {
    pub(super) prefix: &'a [u8],
    pub(super) first: u8,
    /// Child offset words for bytes `first..=last`.
    pub(super) children: &'a [u8],
    /// Where its values start (their count), if it has any; else where the node ends.
    pub(super) values_at: Option<usize>,
    /// Where the node ends when it has no values.
    pub(super) end: usize,
    data: &'a [u8],
}

impl<'a> Node<'a> {
    pub(super) fn child(&self, byte: u8) -> Option<u32> {
        let slot = usize::from(byte.checked_sub(self.first)?);
        let word = Endian::Big.u32(self.children, slot * 4)?;
        (word != 0).then_some(word)
    }

    pub(super) fn child_words(&self) -> impl DoubleEndedIterator<Item = (u8, u32)> + '_ {
        self.children.chunks_exact(4).enumerate().filter_map(move |(i, w)| {
            let word = Endian::Big.u32(w, 0)?;
            let byte = u8::try_from(usize::from(self.first) + i).ok()?;
            (word != 0).then_some((byte, word))
        })
    }

    fn values(&self) -> Result<Vec<Value>, ReadError> {
        let mut out = Vec::new();
        if let Some(at) = self.values_at {
            let oob = ReadError::NodeOutOfBounds { offset: at as u32 };
            each_value(self.data, at, |_, priority, text| {
                out.push(Value { priority, text: text.to_vec() });
                Ok(())
            })
            .map_err(|()| oob)?;
        }
        Ok(out)
    }
}

/// The values of a node, which start at `at` in `data`: calls `f` with where each one starts (its
/// priority), its priority and its text, in file order; returns where they end. `Err(())` for
/// values outside `data`, or when `f` says so.
pub(super) fn each_value<'d>(
    data: &'d [u8],
    mut at: usize,
    mut f: impl FnMut(usize, u32, &'d [u8]) -> Result<(), ()>,
) -> Result<usize, ()> {
    let count = Endian::Big.u32(data, at).ok_or(())?;
    at += 4;
    for _ in 0..count {
        let priority = Endian::Big.u32(data, at).ok_or(())?;
        let text = cstr_at(data, at + 4).ok_or(())?;
        f(at, priority, text)?;
        at += 4 + text.len() + 1;
    }
    Ok(at)
}

/// Counts a node reached by a walk against `budget` (the file's size): each node of a file kmod
/// wrote takes at least one byte more than its prefix, and is reached once.
fn spend(budget: &mut usize, node: &Node<'_>) -> Result<(), ReadError> {
    *budget = budget.checked_sub(1 + node.prefix.len()).ok_or(ReadError::WalkTooLong)?;
    Ok(())
}

/// Inserts like kmod's result lists: sorted by priority, a newcomer before equal priorities.
fn add_sorted(out: &mut Vec<Value>, v: Value) {
    let at = out.iter().position(|x| x.priority >= v.priority).unwrap_or(out.len());
    out.insert(at, v);
}

impl<'a> Index<'a> {
    /// The file's bytes.
    pub(super) fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The root's word (offset and flags), from the header.
    pub(super) fn root_word(&self) -> u32 {
        self.root
    }

    /// Checks the header of `data`.
    pub fn parse(data: &'a [u8]) -> Result<Self, ReadError> {
        let word = |at| Endian::Big.u32(data, at).ok_or(ReadError::Truncated { len: data.len() });
        let magic = word(0)?;
        if magic != MAGIC {
            return Err(ReadError::BadMagic(magic));
        }
        let version = word(4)?;
        if version != VERSION {
            return Err(ReadError::BadVersion(version));
        }
        Ok(Index { data, root: word(8)? })
    }

    pub(super) fn node(&self, word: u32) -> Result<Node<'a>, ReadError> {
        let offset = word & OFFSET_MASK;
        let oob = ReadError::NodeOutOfBounds { offset };
        let mut at = offset as usize;
        if at > self.data.len() {
            return Err(oob);
        }
        let mut prefix: &[u8] = &[];
        if word & FLAG_PREFIX != 0 {
            prefix = cstr_at(self.data, at).ok_or(oob)?;
            at += prefix.len() + 1;
        }
        let (mut first, mut children): (u8, &[u8]) = (0, &[]);
        if word & FLAG_CHILDS != 0 {
            let f = *self.data.get(at).ok_or(oob)?;
            let l = *self.data.get(at + 1).ok_or(oob)?;
            if f > l {
                return Err(ReadError::BadChildRange { offset });
            }
            let n = (usize::from(l) - usize::from(f) + 1) * 4;
            children = self.data.get(at + 2..at + 2 + n).ok_or(oob)?;
            first = f;
            at += 2 + n;
        }
        let values_at = (word & FLAG_VALUES != 0).then_some(at);
        Ok(Node { prefix, first, children, values_at, end: at, data: self.data })
    }

    /// The values stored under exactly `key`, best (lowest priority) first.
    pub fn lookup(&self, key: &[u8]) -> Result<Vec<Value>, ReadError> {
        let mut word = self.root;
        let mut i = 0;
        for _ in 0..MAX_DEPTH {
            let node = self.node(word)?;
            let rest = key.get(i..).unwrap_or_default();
            if !rest.starts_with(node.prefix) {
                return Ok(Vec::new());
            }
            i += node.prefix.len();
            let Some(&c) = key.get(i) else {
                return node.values();
            };
            match node.child(c) {
                Some(next) => word = next,
                None => return Ok(Vec::new()),
            }
            i += 1;
        }
        Err(ReadError::TooDeep)
    }

    /// kmod's alias search: the values of every key that equals `name` or is a shell pattern
    /// matching it, sorted by priority (a later find goes before equal priorities).
    pub fn lookup_wild(&self, name: &[u8]) -> Result<Vec<Value>, ReadError> {
        let mut out = Vec::new();
        let mut word = self.root;
        let mut i = 0;
        let mut pattern = Vec::new();
        // Where the name itself has a wildcard byte, the walk goes on into the subtree the
        // search of that wildcard walked already: one more walk of the file, at most.
        let wild = name.iter().filter(|c| matches!(c, b'*' | b'?' | b'[')).count();
        let budget = &mut self.data.len().saturating_mul(wild.saturating_add(2));
        for _ in 0..MAX_DEPTH {
            let node = self.node(word)?;
            spend(budget, &node)?;
            for (j, &c) in node.prefix.iter().enumerate() {
                if matches!(c, b'*' | b'?' | b'[') {
                    let subkey = name.get(i + j..).unwrap_or_default();
                    self.wild_all(&node, j, &mut pattern, subkey, &mut out, budget, 0)?;
                    return Ok(out);
                }
                if name.get(i + j) != Some(&c) {
                    return Ok(out);
                }
            }
            i += node.prefix.len();
            let subkey = name.get(i..).unwrap_or_default();
            for special in [b'*', b'?', b'['] {
                if let Some(child) = node.child(special) {
                    pattern.push(special);
                    let child = self.node(child)?;
                    spend(budget, &child)?;
                    self.wild_all(&child, 0, &mut pattern, subkey, &mut out, budget, 0)?;
                    pattern.pop();
                }
            }
            let Some(&c) = name.get(i) else {
                node.values()?.into_iter().for_each(|v| add_sorted(&mut out, v));
                return Ok(out);
            };
            match node.child(c) {
                Some(next) => word = next,
                None => return Ok(out),
            }
            i += 1;
        }
        Err(ReadError::TooDeep)
    }

    /// Every key below `node` (from prefix position `j`), matched as a pattern against `subkey`.
    #[allow(clippy::too_many_arguments)]
    fn wild_all(
        &self,
        node: &Node<'a>,
        j: usize,
        pattern: &mut Vec<u8>,
        subkey: &[u8],
        out: &mut Vec<Value>,
        budget: &mut usize,
        depth: usize,
    ) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        let mark = pattern.len();
        pattern.extend_from_slice(node.prefix.get(j..).unwrap_or_default());
        // Each byte of a key is a byte of its own in the file (a prefix byte, or a child slot):
        // a longer one was made by going round a loop, and would make every `fnmatch` slow.
        if pattern.len() > self.data.len() {
            return Err(ReadError::WalkTooLong);
        }
        for (byte, word) in node.child_words() {
            pattern.push(byte);
            let child = self.node(word)?;
            spend(budget, &child)?;
            self.wild_all(&child, 0, pattern, subkey, out, budget, depth + 1)?;
            pattern.pop();
        }
        if node.values_at.is_some() && fnmatch(pattern, subkey) {
            node.values()?.into_iter().for_each(|v| add_sorted(out, v));
        }
        pattern.truncate(mark);
        Ok(())
    }

    /// Every key with its values, in key order.
    pub fn entries(&self) -> Result<Vec<Entry>, ReadError> {
        let mut out = Vec::new();
        let mut key = Vec::new();
        self.dump(self.root, &mut key, &mut out, &mut self.data.len(), 0)?;
        Ok(out)
    }

    fn dump(
        &self,
        word: u32,
        key: &mut Vec<u8>,
        out: &mut Vec<Entry>,
        budget: &mut usize,
        depth: usize,
    ) -> Result<(), ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::TooDeep);
        }
        let node = self.node(word)?;
        spend(budget, &node)?;
        let mark = key.len();
        key.extend_from_slice(node.prefix);
        if key.len() > self.data.len() {
            return Err(ReadError::WalkTooLong);
        }
        if node.values_at.is_some() {
            out.push((key.clone(), node.values()?));
        }
        for (byte, child) in node.child_words() {
            key.push(byte);
            self.dump(child, key, out, budget, depth + 1)?;
            key.pop();
        }
        key.truncate(mark);
        Ok(())
    }
}
