//! kmod's hash table, reproduced for its iteration order.
//!
//! kmod keeps modules (512 buckets) and symbols (2048 buckets) in a table hashed with Paul Hsieh's
//! SuperFastHash; each bucket is an array sorted by `strcmp`. Iterating it, bucket by bucket, gives
//! the order of `modules.symbols` and the initial order of modules. [`Table`] has the same
//! buckets, so its iteration follows kmod; its lookups go through an open-addressing table,
//! `Numbers`, which the module cache also uses.

use alloc::vec::Vec;

/// Buckets of kmod's module-name table.
pub const MODULE_BUCKETS: usize = 512;
/// Buckets of kmod's symbol table.
pub const SYMBOL_BUCKETS: usize = 2048;

/// SuperFastHash as kmod computes it on x86: 16-bit reads are little endian and single
/// leftover bytes are sign-extended C `char`s.
pub fn superfast(key: &[u8]) -> u32 {
    let read16 = |b: &[u8]| match b {
        [lo, hi, ..] => u32::from(u16::from_le_bytes([*lo, *hi])),
        _ => 0,
    };
    let signed = |b: u8| b as i8 as i32 as u32;
    let mut hash = key.len() as u32;
    let mut chunks = key.chunks_exact(4);
    for c in &mut chunks {
        hash = hash.wrapping_add(read16(c));
        let tmp = (read16(c.get(2..).unwrap_or_default()) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            hash = hash.wrapping_add(read16(&[a, b]));
            hash ^= hash << 16;
            hash ^= signed(c) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        [a, b] => {
            hash = hash.wrapping_add(read16(&[a, b]));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        [a] => {
            hash = hash.wrapping_add(signed(a));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// Keys to values, for lookups: the entries in the order added, found through a `Numbers`
/// table on `word_hash`. Adding an existing key replaces its value. [`Table`] adds kmod's
/// iteration order.
#[derive(Clone, Debug)]
pub struct Map<K, V> {
    /// The entries, in the order they were added.
    entries: Vec<(K, V)>,
    lookup: Numbers,
}

impl<K: AsRef<[u8]>, V> Default for Map<K, V> {
    fn default() -> Self {
        Map { entries: Vec::new(), lookup: Numbers::default() }
    }
}

/// Where [`Map::insert`] put a value.
enum Put<V> {
    /// Under a key that was there: the value it replaced.
    Replaced(V),
    /// Under a new key.
    New,
}

impl<K: AsRef<[u8]>, V> Map<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of the entry whose key is `key`, whose [`word_hash`] is `h`.
    fn find(&self, key: &[u8], h: u64) -> Option<u32> {
        let entries = &self.entries;
        let is = |n: u32| entries.get(n as usize).is_some_and(|(k, _)| k.as_ref() == key);
        self.lookup.find(h, is)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.put(key, value)? {
            Put::Replaced(old) => Some(old),
            Put::New => None,
        }
    }

    fn put(&mut self, key: K, value: V) -> Option<Put<V>> {
        let h = word_hash(key.as_ref(), 0);
        if let Some(n) = self.find(key.as_ref(), h) {
            let (_, old) = self.entries.get_mut(n as usize)?;
            return Some(Put::Replaced(core::mem::replace(old, value)));
        }
        let n = u32::try_from(self.entries.len()).ok()?;
        self.lookup.insert(h, n);
        self.entries.push((key, value));
        Some(Put::New)
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let n = self.find(key, word_hash(key, 0))?;
        self.entries.get(n as usize).map(|(_, v)| v)
    }

    /// The value stored under `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let n = self.find(key, word_hash(key, 0))?;
        self.entries.get_mut(n as usize).map(|(_, v)| v)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A map with kmod's bucket structure: `bucket = superfast(key) & (buckets - 1)`, and each bucket
/// sorted by key bytes. Adding an existing key replaces its value, as `hash_add` does.
///
/// kmod's buckets give only the order: a lookup goes through the [`Map`], whose `Numbers` table
/// on a cheaper hash (`word_hash`) finds a key in one or two probes, and a key that is not there
/// (most of the symbols a module needs, when no `System.map` is given) without reading any, where
/// kmod's SuperFastHash and a walk along its bucket cost twice the instructions. The order is
/// made when the table is iterated (each entry's bucket noted as it was added, then the
/// entries counted into their buckets and each bucket sorted), not kept as keys come: most
/// buckets hold a few keys, and a vector for each would be grown and shifted at every key.
#[derive(Clone, Debug)]
pub struct Table<K, V> {
    /// Each entry's bucket, by its number in the map.
    buckets: Vec<u32>,
    /// The number of buckets, less one.
    mask: u32,
    map: Map<K, V>,
}

impl<K: AsRef<[u8]>, V> Table<K, V> {
    /// An empty table; `buckets` must be a power of two.
    pub fn new(buckets: usize) -> Self {
        Self::with_capacity(buckets, 0)
    }

    /// An empty table that holds `count` keys without growing; `buckets` must be a power of
    /// two.
    pub fn with_capacity(buckets: usize, count: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        let map = Map { entries: Vec::with_capacity(count), lookup: Numbers::with_capacity(count) };
        Table { buckets: Vec::with_capacity(count), mask: buckets as u32 - 1, map }
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let bucket = superfast(key.as_ref()) & self.mask;
        match self.map.put(key, value)? {
            Put::Replaced(old) => Some(old),
            Put::New => {
                self.buckets.push(bucket);
                None
            }
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.map.get(key)
    }

    /// The value stored under `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The entries' numbers in kmod's order ([`bucket_order`]).
    fn order(&self) -> Vec<u32> {
        let entries = &self.map.entries;
        let key = |n: u32| entries.get(n as usize).map_or(&[][..], |(k, _)| k.as_ref());
        bucket_order(&self.buckets, self.mask, &key)
    }

    /// Entries in kmod's iteration order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let entries = &self.map.entries;
        let entry = move |n: u32| entries.get(n as usize).map(|(k, v)| (k, v));
        self.order().into_iter().filter_map(entry)
    }

    /// Entries in kmod's iteration order, consuming the table.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        let order = self.order();
        let mut values: Vec<Option<V>> =
            self.map.entries.into_iter().map(|(_, v)| Some(v)).collect();
        order.into_iter().filter_map(move |n| values.get_mut(n as usize).and_then(Option::take))
    }
}

/// Numbers `0..buckets.len()` in kmod's order: by bucket (`buckets[n]`, at most `mask`), then
/// by key bytes within each. Counted into their buckets, then each bucket sorted by insertion
/// (a few keys each; kmod inserts into its sorted arrays one key at a time). One copy for every
/// table: a generic sort took 65 KB of the static binary.
fn bucket_order<'k>(buckets: &[u32], mask: u32, key: &dyn Fn(u32) -> &'k [u8]) -> Vec<u32> {
    let mut starts = alloc::vec![0u32; mask as usize + 2];
    for &b in buckets {
        if let Some(s) = starts.get_mut(b as usize + 1) {
            *s += 1;
        }
    }
    for i in 1..starts.len() {
        let before = starts.get(i - 1).copied().unwrap_or(0);
        if let Some(s) = starts.get_mut(i) {
            *s += before;
        }
    }
    let mut order = alloc::vec![0u32; buckets.len()];
    let mut ends = starts.clone();
    for (n, &b) in buckets.iter().enumerate() {
        if let Some(at) = ends.get_mut(b as usize) {
            if let Some(slot) = order.get_mut(*at as usize) {
                *slot = n as u32;
            }
            *at += 1;
        }
    }
    for pair in starts.windows(2) {
        let (Some(&start), Some(&end)) = (pair.first(), pair.get(1)) else { continue };
        let Some(run) = order.get_mut(start as usize..end as usize) else { continue };
        for i in 1..run.len() {
            let mut j = i;
            while j > 0 {
                let (Some(&a), Some(&b)) = (run.get(j - 1), run.get(j)) else { break };
                if crate::bytes::cmp(key(a), key(b)).is_le() {
                    break;
                }
                run.swap(j - 1, j);
                j -= 1;
            }
        }
    }
    order
}

/// A hash of `bytes` and `seed`, eight bytes at a time (lookup tables only; nothing depends on
/// its values across runs).
pub(crate) fn word_hash(bytes: &[u8], seed: u64) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (seed ^ bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    for (t, &b) in tail.iter_mut().zip(words.remainder()) {
        *t = b;
    }
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 32;
    h = h.wrapping_mul(K);
    h ^ (h >> 29)
}

/// An open-addressing table of numbers (stored plus one; zero is empty), each with the low 32
/// bits of its key's hash: [`Table`]'s lookups, and a module cache's paths and symbols as it is
/// written or read. The caller hashes and compares keys: the table only knows where the numbers
/// are, and compares keys only when their hashes agree.
#[derive(Clone, Debug, Default)]
pub(crate) struct Numbers {
    /// (number plus one, hash).
    slots: Vec<(u32, u32)>,
    len: usize,
}

impl Numbers {
    /// A table that holds `count` numbers without growing.
    pub(crate) fn with_capacity(count: usize) -> Self {
        let slots = alloc::vec![(0, 0); (count * 2).next_power_of_two().max(64)];
        Numbers { slots, len: 0 }
    }

    /// The number stored under `h` for which `is` holds.
    pub(crate) fn find(&self, h: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = h as usize & mask;
        loop {
            match self.slots.get(i) {
                Some((0, _)) | None => return None,
                Some(&(n, k)) if k == h as u32 && is(n - 1) => return Some(n - 1),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Puts `n` in the first free slot from `h`'s.
    fn place(&mut self, h: u32, n: u32) {
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = h as usize & mask;
        while self.slots.get(i).is_some_and(|s| s.0 != 0) {
            i = (i + 1) & mask;
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = (n + 1, h);
        }
    }

    /// Stores `n` under `h` unless a number `same` says has its key is there already; whether
    /// it stored it.
    pub(crate) fn insert_new(&mut self, h: u64, n: u32, same: impl Fn(u32) -> bool) -> bool {
        let new = self.find(h, same).is_none();
        if new {
            self.insert(h, n);
        }
        new
    }

    /// Stores `n` under `h`, growing the table to keep it at most half full.
    pub(crate) fn insert(&mut self, h: u64, n: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let old =
                core::mem::replace(&mut self.slots, alloc::vec![(0, 0); (self.len * 4).max(64)]);
            for (m, k) in old.into_iter().filter(|s| s.0 != 0) {
                self.place(k, m - 1);
            }
        }
        self.place(h as u32, n);
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values printed by kmod's C hash_superfast, compiled with gcc on x86-64.
        assert_eq!(superfast(b""), 0);
        assert_eq!(superfast(b"a"), 0x115e_a782);
        assert_eq!(superfast(b"ab"), 0x516b_8b44);
        assert_eq!(superfast(b"abc"), 0xd2be_198a);
        assert_eq!(superfast(b"abcd"), 0xdad8_b8db);
        assert_eq!(superfast(b"usb_storage"), 0x9f9b_2fab);
        assert_eq!(superfast(b"\xe9"), 0x69ea_06c0);
        assert_eq!(superfast(b"ab\xe9"), 0xb4df_d4b5);
    }

    #[test]
    fn iterates_by_bucket_then_key_and_replaces() {
        let mut t = Table::new(4);
        for k in ["delta", "alpha", "charlie", "bravo", "echo", "alpha"] {
            t.insert(k, k.len());
        }
        assert_eq!(t.len(), 5);
        let order: Vec<&str> = t.iter().map(|(k, _)| *k).collect();
        let mut expected: Vec<&str> = ["alpha", "bravo", "charlie", "delta", "echo"].into();
        expected.sort_by_key(|k| (superfast(k.as_bytes()) & 3, *k));
        assert_eq!(order, expected);
        assert_eq!(t.get(b"charlie"), Some(&7));
        assert_eq!(t.get(b"zulu"), None);
    }

    #[test]
    fn many_keys_keep_their_order_through_growth_and_replacement() {
        let keys: Vec<alloc::string::String> =
            (0..1000).map(|i| alloc::format!("sym_{}", (i * 7919) % 1000)).collect();
        let mut t = Table::new(16);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(t.insert(k.clone(), i), None);
        }
        let before: Vec<alloc::string::String> = t.iter().map(|(k, _)| k.clone()).collect();
        let mut expected = keys.clone();
        expected.sort_by(|a, b| {
            let bucket = |k: &str| superfast(k.as_bytes()) & 15;
            bucket(a).cmp(&bucket(b)).then_with(|| a.cmp(b))
        });
        assert_eq!(before, expected);

        // Replacing a value keeps the key where it was; get_mut changes it in place.
        assert_eq!(t.insert(keys[500].clone(), 5000), Some(500));
        if let Some(v) = t.get_mut(keys[3].as_bytes()) {
            *v = 3000;
        }
        assert_eq!(t.get(keys[500].as_bytes()), Some(&5000));
        assert_eq!(t.get(keys[3].as_bytes()), Some(&3000));
        assert_eq!(t.get(b"sym_1000"), None);
        assert_eq!(t.len(), 1000);
        let after: Vec<alloc::string::String> = t.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(after, before);

        // into_values follows the same order as iter.
        let values: Vec<usize> = t.iter().map(|(_, v)| *v).collect();
        assert_eq!(t.into_values().collect::<Vec<_>>(), values);
    }

    #[test]
    fn numbers_find_only_what_was_inserted() {
        let keys: Vec<[u8; 3]> = (0..300u32).map(|i| [b'k', (i / 256) as u8, i as u8]).collect();
        let mut n = Numbers::default();
        for (i, k) in keys.iter().enumerate() {
            let same = |m: u32| keys.get(m as usize) == Some(k);
            assert!(n.insert_new(word_hash(k, 7), i as u32, same));
            assert!(!n.insert_new(word_hash(k, 7), i as u32, same));
        }
        for (i, k) in keys.iter().enumerate() {
            let same = |m: u32| keys.get(m as usize) == Some(k);
            assert_eq!(n.find(word_hash(k, 7), same), Some(i as u32));
        }
        assert_eq!(n.find(word_hash(b"absent", 7), |_| true), None);
    }
}
