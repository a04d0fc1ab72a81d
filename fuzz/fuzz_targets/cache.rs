//! The module cache reader (core/src/cache/) on arbitrary files. The first byte picks the mode:
//! odd, the rest is the file as it is (mostly stopped by the checksum); even, its checksum is
//! stored again first, so that the checks behind it are reached.
//!
//! Whatever the reader accepts: every string it returns lies inside the file; each record is
//! found again by its path, with its stamp; its `ModuleInfo` says what the record says;
//! each directory listing is found again by its path, and its entries' names can be opened in
//! place; encoded again (a new writer, and one updating this cache) it reads back the same, and
//! encoding that again gives the same bytes.
#![no_main]

use depmod_core::bytes::Shared;
use std::ops::Range;

use depmod_core::cache::listing;
use depmod_core::cache::{Cache, CacheWriter, Identity, Record, Stamp, Time, reseal};
use libfuzzer_sys::fuzz_target;

/// The identity the seeds are written with (fuzz/examples/make_seeds.rs).
const ID: Identity<'static> = Identity { program: b"depmod-rs fuzz", tree: b"/lib/modules/1.0" };
/// Later than any stamp but one: every record may be kept unless one of its times is this.
const NEVER: Time = Time { sec: i64::MAX, nsec: u32::MAX };

fn settled(s: &Stamp) -> bool {
    s.mtime < NEVER && s.ctime < NEVER
}

type Lists =
    (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<(Vec<u8>, u64)>, Vec<(Vec<u8>, u64, bool)>);

/// What a record says.
fn lists(r: &Record<'_>) -> Lists {
    (
        r.aliases().map(<[u8]>::to_vec).collect(),
        r.softdeps().map(<[u8]>::to_vec).collect(),
        r.weakdeps().map(<[u8]>::to_vec).collect(),
        r.exports().map(|(n, c)| (n.to_vec(), c)).collect(),
        r.imports().map(|(n, c, w)| (n.to_vec(), c, w)).collect(),
    )
}

/// Everything a cache says that a writer keeps, comparable: its options, its file entries, its
/// directory listings and its records.
type Contents =
    (Vec<u8>, Vec<(Vec<u8>, Stamp)>, Vec<(Vec<u8>, Stamp, Vec<u8>)>, Vec<(Vec<u8>, Stamp, Lists)>);

/// The [`Contents`] of `cache`.
fn contents(cache: &Cache<'_>) -> Contents {
    (
        cache.options().to_vec(),
        cache.files().filter(|f| settled(&f.1)).map(|(p, s)| (p.to_vec(), s)).collect(),
        cache
            .listings()
            .filter(|l| settled(&l.1))
            .map(|(p, s, e)| (p.to_vec(), s, e.to_vec()))
            .collect(),
        cache
            .records()
            .filter(|r| settled(&r.stamp()))
            .map(|r| (r.path().to_vec(), r.stamp(), lists(&r)))
            .collect(),
    )
}

fn inside(file: &[u8], s: &[u8]) -> bool {
    let f: Range<usize> = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
    let start = s.as_ptr() as usize;
    s.is_empty() || (f.start <= start && start + s.len() <= f.end)
}

/// The cache encoded again from its records: by a new writer, or by one updating it.
fn encode(cache: &Cache<'_>, update: bool) -> Vec<u8> {
    let mut w =
        if update { CacheWriter::update(cache, ID, NEVER) } else { CacheWriter::new(ID, NEVER) };
    w.set_options(cache.options());
    for (path, stamp) in cache.files() {
        if settled(&stamp) {
            w.add_file(path, stamp).expect("a file entry the reader accepted");
        }
    }
    for (path, stamp, entries) in cache.listings() {
        if settled(&stamp) {
            w.add_listing(path, stamp, entries).expect("a listing the reader accepted");
        }
    }
    for r in cache.records().filter(|r| settled(&r.stamp())) {
        w.keep(&r).expect("a record the reader accepted");
    }
    w.finish().expect("no larger than the input")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode % 2 == 0 {
        reseal(&mut bytes);
    }
    let file: Shared = bytes.into();
    let Ok(cache) = Cache::parse(&file, ID) else { return };
    for r in cache.records() {
        let (path, stamp, l) = (r.path(), r.stamp(), lists(&r));
        assert!(inside(&file, path));
        for s in l.0.iter().chain(&l.1).chain(&l.2) {
            assert!(s.len() <= u16::MAX as usize);
        }
        for s in r.aliases().chain(r.softdeps()).chain(r.weakdeps()) {
            assert!(inside(&file, s));
        }
        assert!(r.exports().all(|(n, c)| inside(&file, n) && c <= u64::from(u32::MAX)));
        assert!(r.imports().all(|(n, c, _)| inside(&file, n) && c <= u64::from(u32::MAX)));
        let found = cache.get(path).expect("each record is found by its path");
        assert_eq!((found.path(), found.stamp()), (path, stamp));
        let info = r.info();
        assert!(info.is_clean());
        assert!(info.aliases().eq(r.aliases()));
        assert!(info.softdeps().eq(r.softdeps()));
        assert!(info.weakdeps().eq(r.weakdeps()));
        assert!(info.exports().eq(r.exports()));
        assert!(info.imports().map(|i| (i.name, i.crc, i.weak)).eq(r.imports()));
    }
    for (path, _) in cache.files() {
        assert!(inside(&file, path));
    }
    for (path, stamp, entries) in cache.listings() {
        assert!(inside(&file, path) && inside(&file, entries));
        assert_eq!(
            cache.listing(path),
            Some((stamp, entries)),
            "each listing is found by its path"
        );
        assert!(listing::check(entries).is_ok());
        for (_, name) in listing::entries(entries) {
            assert!(!name.is_empty() && name != b"." && name != b"..");
            assert!(!name.contains(&b'/') && !name.contains(&0));
        }
    }
    let said = contents(&cache);
    for update in [false, true] {
        let again: Shared = encode(&cache, update).into();
        let reread = Cache::parse(&again, ID).expect("own output parses");
        assert!(contents(&reread) == said, "encoded again (update: {update}), it says otherwise");
        let third = encode(&reread, false);
        assert!(third[..] == again[..] || update, "encoding is not idempotent");
    }
});
