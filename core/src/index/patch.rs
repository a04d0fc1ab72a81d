//! An index changed in place of being built again: when a re-run changes a few modules, their
//! keys are a few small subtrees of the old index, and every other byte of it is the old one,
//! moved and with new priorities (each value's priority is its module's place in the array,
//! which an added or removed module shifts).
//!
//! kmod 34 writes each node followed by its children's subtrees in byte order, so a subtree is
//! one run of bytes. Each touched key is found in the old index: the deepest node whose path
//! starts it (the node where it ends, if it is there) roots its *region*, whose entries (the
//! old ones, changed, and the added ones) are planned again; a region left without entries
//! gives way to its parent's subtree. A region never is the root, so the node above it keeps
//! every child it had and only that child's word changes. The new index is then the old one,
//! node by node in the old order, with each region's subtree written anew, every child word
//! moved by the size the regions before its child changed by, and every value's priority
//! mapped to its new one. What comes out equals what [`IndexBuilder::write`] writes of the new
//! entries (the tests check it against random changes of random indexes).
//!
//! Anything unexpected (a file not laid out as kmod 34 lays it, a value whose priority has no
//! new one outside the touched keys, a region that would be the root) is an error: the caller
//! then builds the index in full.

use alloc::vec::Vec;

use super::reader::{Index as Reader, each_value};
use super::trie::Subtree;
use super::{IndexBuilder, IndexError, OFFSET_MASK};

/// Why an index could not be patched (it is then built in full).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// The old index cannot be read, or is not laid out as kmod 34 lays one out.
    Unreadable,
    /// A value outside the touched keys has no new priority, or the new priorities of one
    /// key's values are out of order.
    Unmapped {
        /// The value's old priority.
        priority: u32,
    },
    /// An added entry's key is not among the touched keys.
    Untouched,
    /// A change reaches the root node.
    AtRoot,
    /// The index has something to report that only a full build sees (`-w`'s duplicates, a new
    /// alias with unmatched brackets).
    Reports,
    /// An added entry cannot be written, or the index would be too large.
    Index(IndexError),
}

impl core::fmt::Display for PatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PatchError::Unreadable => f.write_str("the old index is not laid out as kmod 34's"),
            PatchError::Unmapped { priority } => {
                write!(f, "a value of priority {priority} has no new priority in order")
            }
            PatchError::Untouched => f.write_str("an added key is not among the touched keys"),
            PatchError::AtRoot => f.write_str("a change reaches the root node"),
            PatchError::Reports => f.write_str("the index has messages only a full build gives"),
            PatchError::Index(e) => e.fmt(f),
        }
    }
}

impl From<IndexError> for PatchError {
    fn from(e: IndexError) -> Self {
        PatchError::Index(e)
    }
}

impl core::error::Error for PatchError {}

/// What changes between the old index and the new one.
pub struct Changes<'a> {
    /// The keys whose values change, sorted (byte order) and without repeats.
    pub touched: &'a [&'a [u8]],
    /// Under a touched key, every old value is dropped (else only those `remap` drops).
    pub drop_touched: bool,
    /// Each old priority's new one; `None` drops the value (only under a touched key).
    /// Priorities keep their order.
    pub remap: &'a dyn Fn(u32) -> Option<u32>,
    /// The entries added, in insertion order: key (among the touched ones), value, priority.
    pub added: &'a [(&'a [u8], &'a [u8], u32)],
}

impl Changes<'_> {
    fn is_touched(&self, key: &[u8]) -> bool {
        self.touched.binary_search(&key).is_ok()
    }
}

/// A subtree of the old index planned again.
struct Region {
    /// Where its root starts in the old index, and where its last node ends.
    start: usize,
    end: usize,
    builder: IndexBuilder,
}

/// Appends to `out` the index that `old` (written by kmod 34 or [`IndexBuilder::write`])
/// becomes with `changes`.
pub fn patch(old: &[u8], changes: &Changes<'_>, out: &mut Vec<u8>) -> Result<(), PatchError> {
    let reader = Reader::parse(old).map_err(|_| PatchError::Unreadable)?;
    let root = reader.root_word();
    if root & OFFSET_MASK != 12 {
        return Err(PatchError::Unreadable);
    }
    if changes.added.iter().any(|a| !changes.is_touched(a.0)) {
        return Err(PatchError::Untouched);
    }
    let mut regions: Vec<Region> = Vec::new();
    for key in changes.touched {
        let path = path(&reader, key)?;
        // Already inside a region (keys come sorted; a subtree is one run of bytes).
        if path.iter().any(|&(word, _)| {
            let at = (word & OFFSET_MASK) as usize;
            regions.iter().any(|r| r.start <= at && at < r.end)
        }) {
            continue;
        }
        // The deepest node on the key's path, or the first above it left with entries.
        let mut found = None;
        for &(word, lead) in path.iter().skip(1).rev() {
            let lead = key.get(..lead).ok_or(PatchError::Unreadable)?;
            let (builder, end) = collect(&reader, word, lead, changes)?;
            if !builder.is_empty() {
                found = Some(Region { start: (word & OFFSET_MASK) as usize, end, builder });
                break;
            }
        }
        let region = found.ok_or(PatchError::AtRoot)?;
        // A region planned earlier may lie inside this one. Kept in order of their starts.
        regions.retain(|r| !(region.start <= r.start && r.start < region.end));
        let at = regions.partition_point(|r| r.start < region.start);
        regions.insert(at, region);
    }
    let mut planned = Vec::with_capacity(regions.len());
    for r in &mut regions {
        let splits = r.builder.sort();
        planned.push(splits);
    }
    let subtrees: Vec<Subtree<'_>> = regions
        .iter()
        .zip(&planned)
        .map(|(r, splits)| Subtree::plan(&r.builder, splits).ok_or(PatchError::Unreadable))
        .collect::<Result<_, _>>()?;
    // Where each region starts in the new index, and how much the bytes after it move.
    let mut moved: Vec<(usize, i64)> = Vec::with_capacity(regions.len());
    let mut shift: i64 = 0;
    for (r, s) in regions.iter().zip(&subtrees) {
        shift += s.size() as i64 - (r.end - r.start) as i64;
        moved.push((r.start, shift));
    }
    let size = old.len() as i64 + shift;
    if size > i64::from(OFFSET_MASK) + 1 || size < 12 {
        return Err(IndexError::TooLarge { size: size.max(0) as u64 }.into());
    }
    let base = out.len();
    out.resize(base + size as usize, 0);
    let new = out.get_mut(base..).unwrap_or_default();
    let copier =
        Copier { old, reader, changes, regions: &regions, subtrees: &subtrees, moved: &moved };
    copier.run(new).inspect_err(|_| out.truncate(base))
}

/// The nodes on `key`'s path from the root: each one's word, and how many of the key's bytes
/// come before its prefix (for the root, none). The last is the deepest node whose path starts
/// `key`.
fn path(reader: &Reader<'_>, key: &[u8]) -> Result<Vec<(u32, usize)>, PatchError> {
    let mut word = reader.root_word();
    let mut path = alloc::vec![(word, 0)];
    let mut consumed = 0;
    loop {
        let node = reader.node(word).map_err(|_| PatchError::Unreadable)?;
        consumed += node.prefix.len();
        let Some(&c) = key.get(consumed) else { break };
        let Some(child) = node.child(c) else { break };
        let next = reader.node(child).map_err(|_| PatchError::Unreadable)?;
        if !key.get(consumed + 1..).unwrap_or_default().starts_with(next.prefix) {
            break;
        }
        consumed += 1;
        path.push((child, consumed));
        word = child;
    }
    Ok(path)
}

/// [`each_value`] with the patch's errors: `f`'s, or [`PatchError::Unreadable`].
fn values<'d>(
    data: &'d [u8],
    at: usize,
    mut f: impl FnMut(usize, u32, &'d [u8]) -> Result<(), PatchError>,
) -> Result<usize, PatchError> {
    let mut failed = None;
    let end = each_value(data, at, |at, priority, text| {
        f(at, priority, text).map_err(|e| failed = Some(e))
    });
    end.map_err(|()| failed.unwrap_or(PatchError::Unreadable))
}

/// The new entries of the subtree under `word`, whose keys start with `lead` (the bytes before
/// its root's prefix): its old values as `changes` leaves them, and the added entries under it.
/// The builder's keys start with the last byte of `lead`. Returns where the subtree ends in the
/// old index (checking that its nodes follow one another).
fn collect(
    reader: &Reader<'_>,
    word: u32,
    lead: &[u8],
    changes: &Changes<'_>,
) -> Result<(IndexBuilder, usize), PatchError> {
    let strip = lead.len().checked_sub(1).ok_or(PatchError::AtRoot)?;
    let mut builder = IndexBuilder::new();
    let mut key = lead.to_vec();
    let mut at = (word & OFFSET_MASK) as usize;
    // Nodes to visit, next on top: word, the key's length before it, the byte leading to it.
    let mut stack: Vec<(u32, usize, Option<u8>)> = alloc::vec![(word, key.len(), None)];
    let mut kept: Vec<(u32, &[u8])> = Vec::new();
    while let Some((word, len, byte)) = stack.pop() {
        if (word & OFFSET_MASK) as usize != at {
            return Err(PatchError::Unreadable);
        }
        key.truncate(len);
        key.extend(byte);
        let node = reader.node(word).map_err(|_| PatchError::Unreadable)?;
        key.extend_from_slice(node.prefix);
        at = node.end;
        if let Some(values_at) = node.values_at {
            let touched = changes.is_touched(&key);
            kept.clear();
            at = values(reader.data(), values_at, |_, priority, text| {
                match (changes.remap)(priority) {
                    Some(p) if !(touched && changes.drop_touched) => kept.push((p, text)),
                    Some(_) => {}
                    None if touched => {}
                    None => return Err(PatchError::Unmapped { priority }),
                }
                Ok(())
            })?;
            // Equal priorities stay in file order: the builder puts the newest first.
            for &(p, text) in kept.iter().rev() {
                builder.insert(key.get(strip..).unwrap_or_default(), text, p)?;
            }
        }
        let len = key.len();
        // Backwards: pushed on the stack, the children come off in byte order.
        stack.extend(node.child_words().rev().map(|(b, w)| (w, len, Some(b))));
    }
    for &(k, v, p) in changes.added {
        if k.starts_with(lead) {
            builder.insert(k.get(strip..).unwrap_or_default(), v, p)?;
        }
    }
    Ok((builder, at))
}

/// The copy of the old index into the new one.
struct Copier<'a, 'r> {
    old: &'a [u8],
    reader: Reader<'a>,
    changes: &'a Changes<'a>,
    regions: &'r [Region],
    subtrees: &'r [Subtree<'r>],
    /// Each region's old start, and how far the bytes after it move.
    moved: &'r [(usize, i64)],
}

impl Copier<'_, '_> {
    /// Where the node at `old` starts in the new index (not inside a region).
    fn moved(&self, old: usize) -> u64 {
        let before = self.moved.partition_point(|&(start, _)| start < old);
        let shift = before.checked_sub(1).and_then(|i| self.moved.get(i)).map_or(0, |m| m.1);
        (old as i64 + shift) as u64
    }

    /// The region rooted at `old`, with its subtree.
    fn region(&self, old: usize) -> Option<(&Region, &Subtree<'_>)> {
        let i = self.regions.binary_search_by_key(&old, |r| r.start).ok()?;
        Some((self.regions.get(i)?, self.subtrees.get(i)?))
    }

    /// Writes the new index into `new`, which has its size and is zeroed: the old bytes between
    /// the regions copied whole and each region's subtree written, then the child words and
    /// priorities of the copied nodes set, node by node in the old order.
    fn run(&self, new: &mut [u8]) -> Result<(), PatchError> {
        let (mut from, mut to) = (0, 0);
        for (region, subtree) in self.regions.iter().zip(self.subtrees) {
            let gap = self.old.get(from..region.start).ok_or(PatchError::Unreadable)?;
            to = put(new, to, gap)?;
            let size = subtree.size() as usize;
            subtree.write(new.get_mut(to..to + size).ok_or(PatchError::Unreadable)?, to as u64);
            (from, to) = (region.end, to + size);
        }
        let rest = self.old.get(from..).ok_or(PatchError::Unreadable)?;
        if put(new, to, rest)? != new.len() {
            return Err(PatchError::Unreadable);
        }
        // Where the next node must start (the old layout: each node right after the one
        // before it), and how far the copied nodes from there on have moved.
        let mut cursor = 12;
        let mut shift: i64 = 0;
        let mut next_region = 0;
        let mut stack: Vec<u32> = alloc::vec![self.reader.root_word()];
        while let Some(word) = stack.pop() {
            let start = (word & OFFSET_MASK) as usize;
            if start != cursor {
                return Err(PatchError::Unreadable);
            }
            if let Some(region) = self.regions.get(next_region).filter(|r| r.start == start) {
                cursor = region.end;
                shift = self.moved.get(next_region).map_or(shift, |m| m.1);
                next_region += 1;
                continue;
            }
            let node = self.reader.node(word).map_err(|_| PatchError::Unreadable)?;
            let here = |old: usize| (old as i64 + shift) as usize;
            let table = node.end - node.children.len();
            // Backwards: pushed on the stack, the children come off in byte order.
            for (i, slot) in node.children.chunks_exact(4).enumerate().rev() {
                let w = u32::from_be_bytes(slot.try_into().map_err(|_| PatchError::Unreadable)?);
                if w == 0 {
                    continue;
                }
                stack.push(w);
                let target = (w & OFFSET_MASK) as usize;
                let flags = match self.region(target) {
                    Some((_, subtree)) => subtree.flags(),
                    None => w & !OFFSET_MASK,
                };
                put_word(new, here(table + 4 * i), self.moved(target) as u32 | flags)?;
            }
            cursor = node.end;
            if let Some(values_at) = node.values_at {
                let mut last = None;
                cursor = values(self.old, values_at, |at, priority, _| {
                    let p = (self.changes.remap)(priority)
                        .filter(|&p| last.is_none_or(|l| l <= p))
                        .ok_or(PatchError::Unmapped { priority })?;
                    last = Some(p);
                    put_word(new, here(at), p)
                })?;
            }
        }
        if cursor != self.old.len() || next_region != self.regions.len() {
            return Err(PatchError::Unreadable);
        }
        Ok(())
    }
}

/// Writes `word` big-endian at `at` in `out`.
fn put_word(out: &mut [u8], at: usize, word: u32) -> Result<(), PatchError> {
    let slot: &mut [u8; 4] =
        out.get_mut(at..at + 4).and_then(|s| s.try_into().ok()).ok_or(PatchError::Unreadable)?;
    *slot = word.to_be_bytes();
    Ok(())
}

/// Writes `data` at `at` in `out`; returns where it ends.
fn put(out: &mut [u8], at: usize, data: &[u8]) -> Result<usize, PatchError> {
    let end = at + data.len();
    out.get_mut(at..end).ok_or(PatchError::Unreadable)?.copy_from_slice(data);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::super::tests::Rng;
    use super::*;
    use alloc::format;
    use alloc::vec;

    /// A number below `n` (0 for 0).
    fn pick(rng: &mut Rng, n: usize) -> usize {
        rng.below(n.max(1) as u64) as usize
    }

    /// A key shaped like the indexes' keys: long shared prefixes, wildcards, short ones.
    fn key(rng: &mut Rng) -> Vec<u8> {
        let hex = |r: &mut Rng, n: usize| -> alloc::string::String {
            (0..n).map(|_| b"0123456789ABCDEF"[pick(r, 3)] as char).collect()
        };
        let k = match pick(rng, 12) {
            0 => format!("pci:v0000{}d0000{}sv*sd*bc*sc*i*", hex(rng, 2), hex(rng, 3)),
            1 => format!("usb:v{}p{}d*dc*", hex(rng, 2), hex(rng, 2)),
            2 => format!("symbol:fn_{}", hex(rng, 3)),
            3 => format!("of:N*T*C{}", hex(rng, 1)),
            4 => {
                let n = 1 + pick(rng, 3);
                hex(rng, n)
            }
            5 => format!("platform:{}", hex(rng, 2)),
            _ => format!("pci:v0000{}d*sv*sd*bc02sc{}i*", hex(rng, 3), hex(rng, 2)),
        };
        k.into_bytes()
    }

    /// A module of the model: its name, and its keys in the order it gives them (repeats too).
    #[derive(Clone)]
    struct Module {
        name: Vec<u8>,
        keys: Vec<Vec<u8>>,
    }

    /// The index of `modules` as the alias index is built: each module's keys in array order,
    /// its name as value and its place as priority.
    fn alias_index(modules: &[Module]) -> Vec<u8> {
        let mut b = IndexBuilder::new();
        for (i, m) in modules.iter().enumerate() {
            for k in &m.keys {
                b.insert(k, &m.name, i as u32).unwrap();
            }
        }
        let mut out = Vec::new();
        b.write(&mut out).unwrap();
        out
    }

    /// The index of `modules` as the symbol index is built: each key once, under its last
    /// giver (by array place).
    fn symbol_index(modules: &[Module]) -> Vec<u8> {
        let mut b = IndexBuilder::new();
        for (key, owner) in owners(modules) {
            b.insert(&key, &modules[owner].name, owner as u32).unwrap();
        }
        let mut out = Vec::new();
        b.write(&mut out).unwrap();
        out
    }

    fn owners(modules: &[Module]) -> alloc::collections::BTreeMap<Vec<u8>, usize> {
        let mut owners = alloc::collections::BTreeMap::new();
        for (i, m) in modules.iter().enumerate() {
            for k in &m.keys {
                owners.insert(k.clone(), i);
            }
        }
        owners
    }

    /// A random change of `modules`: some removed, some added, some given new keys. Returns
    /// the new modules and, for each old place, the new one of an unchanged module.
    fn change(
        rng: &mut Rng,
        modules: &[Module],
        serial: &mut usize,
    ) -> (Vec<Module>, Vec<Option<usize>>) {
        // Each old module: kept as it is, removed, or replaced (its old version goes).
        let mut new: Vec<(Module, Option<usize>)> = Vec::new();
        for (i, m) in modules.iter().enumerate() {
            match pick(rng, 12) {
                0 => {}
                1 => {
                    let mut m = m.clone();
                    let n = pick(rng, 4);
                    m.keys = (0..n).map(|_| key(rng)).collect();
                    new.push((m, None));
                }
                _ => new.push((m.clone(), Some(i))),
            }
        }
        for _ in 0..pick(rng, 3) {
            *serial += 1;
            let keys = (0..pick(rng, 5)).map(|_| key(rng)).collect();
            let at = pick(rng, new.len() + 1);
            new.insert(at, (Module { name: format!("m{serial}").into_bytes(), keys }, None));
        }
        let mut remap = vec![None; modules.len()];
        for (j, (_, old)) in new.iter().enumerate() {
            if let Some(i) = old {
                remap[*i] = Some(j);
            }
        }
        (new.into_iter().map(|(m, _)| m).collect(), remap)
    }

    fn touched_keys(modules: &[Module], new: &[Module], remap: &[Option<usize>]) -> Vec<Vec<u8>> {
        let mut kept = vec![false; new.len()];
        remap.iter().flatten().for_each(|&j| kept[j] = true);
        let old = modules.iter().zip(remap).filter(|(_, r)| r.is_none()).map(|(m, _)| m);
        let added = new.iter().zip(&kept).filter(|(_, k)| !**k).map(|(m, _)| m);
        let mut touched: Vec<Vec<u8>> = old.chain(added).flat_map(|m| m.keys.clone()).collect();
        touched.sort();
        touched.dedup();
        touched
    }

    fn patched(
        old: &[u8],
        touched: &[Vec<u8>],
        drop: bool,
        remap: &[Option<usize>],
        added: &[(Vec<u8>, Vec<u8>, u32)],
    ) -> Result<Vec<u8>, PatchError> {
        let touched: Vec<&[u8]> = touched.iter().map(|k| &k[..]).collect();
        let added: Vec<(&[u8], &[u8], u32)> =
            added.iter().map(|(k, v, p)| (&k[..], &v[..], *p)).collect();
        let remap = |p: u32| remap.get(p as usize).copied().flatten().map(|j| j as u32);
        let changes =
            Changes { touched: &touched, drop_touched: drop, remap: &remap, added: &added };
        let mut out = Vec::new();
        patch(old, &changes, &mut out).map(|()| out)
    }

    /// Random indexes changed at random, alias-like (values of a key from many modules) and
    /// symbol-like (one owner per key): the patch writes what a full build writes, or says it
    /// cannot (only when a change reaches the root, which large trees hardly see).
    #[test]
    fn patches_equal_full_builds() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut patched_count, mut at_root) = (0, 0);
        for round in 0..400 {
            let mut serial = 0;
            let count = 1 + pick(&mut rng, if round % 4 == 0 { 200 } else { 30 });
            let modules: Vec<Module> = (0..count)
                .map(|i| Module {
                    name: format!("mod{i}").into_bytes(),
                    keys: (0..pick(&mut rng, 6)).map(|_| key(&mut rng)).collect(),
                })
                .collect();
            let (new, remap) = change(&mut rng, &modules, &mut serial);
            let touched = touched_keys(&modules, &new, &remap);
            let mut kept = vec![false; new.len()];
            remap.iter().flatten().for_each(|&j| kept[j] = true);
            // Alias-like.
            let added: Vec<(Vec<u8>, Vec<u8>, u32)> = new
                .iter()
                .enumerate()
                .filter(|(j, _)| !kept[*j])
                .flat_map(|(j, m)| {
                    m.keys.iter().map(move |k| (k.clone(), m.name.clone(), j as u32))
                })
                .collect();
            match patched(&alias_index(&modules), &touched, false, &remap, &added) {
                Ok(out) => {
                    assert_eq!(out, alias_index(&new), "round {round}: alias-like");
                    patched_count += 1;
                }
                Err(PatchError::AtRoot) => at_root += usize::from(count > 100),
                Err(e) => panic!("round {round}: alias-like: {e}"),
            }
            // Symbol-like: every touched key gets its new owner, if any.
            let owners = owners(&new);
            let added: Vec<(Vec<u8>, Vec<u8>, u32)> = touched
                .iter()
                .filter_map(|k| owners.get(k).map(|&j| (k.clone(), new[j].name.clone(), j as u32)))
                .collect();
            match patched(&symbol_index(&modules), &touched, true, &remap, &added) {
                Ok(out) => {
                    assert_eq!(out, symbol_index(&new), "round {round}: symbol-like");
                    patched_count += 1;
                }
                Err(PatchError::AtRoot) => at_root += usize::from(count > 100),
                Err(e) => panic!("round {round}: symbol-like: {e}"),
            }
        }
        // Only small trees have changes at the root (a first byte or a top prefix of their own).
        assert!(
            patched_count > 400 && at_root < 5,
            "{patched_count} patched, {at_root} at the root"
        );
    }

    #[test]
    fn a_value_outside_the_touched_keys_must_keep_a_priority() {
        let modules = vec![
            Module { name: b"a".to_vec(), keys: vec![b"pci:1".to_vec()] },
            Module { name: b"b".to_vec(), keys: vec![b"pci:2".to_vec()] },
        ];
        let old = alias_index(&modules);
        let remap = [Some(0), None];
        assert_eq!(
            patched(&old, &[], false, &remap, &[]),
            Err(PatchError::Unmapped { priority: 1 })
        );
        let added = [(b"pci:3".to_vec(), b"c".to_vec(), 2)];
        assert_eq!(
            patched(&old, &[], false, &[Some(0), Some(1)], &added),
            Err(PatchError::Untouched)
        );
        assert_eq!(patched(b"garbage", &[], false, &remap, &[]), Err(PatchError::Unreadable));
    }
}
