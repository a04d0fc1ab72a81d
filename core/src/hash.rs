//! kmod's hash table, reproduced for its iteration order.
//!
//! kmod keeps modules (512 buckets) and symbols (2048 buckets) in a table hashed with Paul Hsieh's
//! SuperFastHash; each bucket is an array sorted by `strcmp`. Iterating it, bucket by bucket, gives
//! the order of `modules.symbols` and the initial order of modules. [`Table`] has the same shape,
//! so lookups and iteration both follow kmod.

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

/// A map with kmod's bucket structure: `bucket = superfast(key) & (buckets - 1)`, and each bucket
/// sorted by key bytes. Adding an existing key replaces its value, as `hash_add` does.
///
/// Each entry keeps its key's full hash: a lookup compares hashes and reads the bytes of a key
/// only when they agree, rather than reading a key (somewhere in a module's memory) at every
/// step of a binary search.
#[derive(Clone, Debug)]
pub struct Table<K, V> {
    buckets: Vec<Vec<(u32, K, V)>>,
    len: usize,
}

impl<K: AsRef<[u8]>, V> Table<K, V> {
    /// An empty table; `buckets` must be a power of two.
    pub fn new(buckets: usize) -> Self {
        debug_assert!(buckets.is_power_of_two());
        let mut v = Vec::with_capacity(buckets);
        v.resize_with(buckets, Vec::new);
        Table { buckets: v, len: 0 }
    }

    /// The key's hash and its bucket.
    fn locate(&self, key: &[u8]) -> (u32, usize) {
        let hash = superfast(key);
        (hash, hash as usize & (self.buckets.len() - 1))
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let (hash, b) = self.locate(key.as_ref());
        let bucket = self.buckets.get_mut(b)?;
        match bucket.binary_search_by(|(_, k, _)| crate::bytes::cmp(k.as_ref(), key.as_ref())) {
            Ok(i) => bucket.get_mut(i).map(|slot| core::mem::replace(&mut slot.2, value)),
            Err(i) => {
                bucket.insert(i, (hash, key, value));
                self.len += 1;
                None
            }
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let (hash, b) = self.locate(key);
        let bucket = self.buckets.get(b)?;
        bucket.iter().find(|(h, k, _)| *h == hash && k.as_ref() == key).map(|(_, _, v)| v)
    }

    /// The value stored under `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let (hash, b) = self.locate(key);
        let bucket = self.buckets.get_mut(b)?;
        bucket.iter_mut().find(|(h, k, _)| *h == hash && k.as_ref() == key).map(|(_, _, v)| v)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries in kmod's iteration order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.buckets.iter().flatten().map(|(_, k, v)| (k, v))
    }

    /// Entries in kmod's iteration order, consuming the table.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.buckets.into_iter().flatten().map(|(_, _, v)| v)
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
}
