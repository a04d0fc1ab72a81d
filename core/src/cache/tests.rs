use crate::bytes::Shared;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::listing::{Listed, ListingBuf};
use super::*;
use crate::Endian;
use crate::elf::writer::{Class, ModuleSpec};

const ID: Identity<'static> =
    Identity { program: b"depmod-rs test build 1", tree: b"/lib/modules/6.1" };
const SETTLED: Time = Time { sec: 1_700_000_000, nsec: 0 };

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// A module built by core's ELF writer: `n` picks its shape (class, byte order, CRCs or a
/// namespace, how many of each list).
fn spec(n: usize) -> ModuleSpec {
    let mut m = ModuleSpec::new();
    m.class = if n % 2 == 0 { Class::Elf64 } else { Class::Elf32 };
    m.endian = if n % 4 < 2 { Endian::Little } else { Endian::Big };
    m.modinfo = vec![
        format!("alias=pci:v0000{n:04X}d*sv*sd*bc*sc*i*").into_bytes(),
        format!("alias=of:N*T*Cvendor,chip-{n}").into_bytes(),
        b("license=GPL"),
        b("depends=base"),
    ];
    if n % 3 == 0 {
        m.modinfo.push(b("softdep=pre: crc32c post: other"));
        m.modinfo.push(b("weakdep=helper"));
        m.modinfo.push(b("softdep=pre: second"));
    }
    m.exports = (0..n % 5).map(|i| format!("export_{n}_{i}").into_bytes()).collect();
    m.exports.push(b("shared_export_name"));
    if n % 2 == 0 {
        m.crcs = Some((0..m.exports.len() as u32).map(|i| 0x1000 * n as u32 + i).collect());
    } else {
        m.namespace = Some(b("SOME_NS"));
    }
    m.imports = vec![(b("printk"), false), (b("kfree"), false), (b("maybe_there"), true)];
    m.imports.extend((0..n % 7).map(|i| (format!("export_{}_{i}", n + 1).into_bytes(), false)));
    m.versions = vec![(b("module_layout"), 0xdead), (b("printk"), 0x1234_5678)];
    m
}

fn stamp(n: usize) -> Stamp {
    Stamp {
        dev: 0x0803 + n as u64,
        ino: 1_000_000 + n as u64 * 7,
        size: 40_000 + n as u64,
        mtime: Time { sec: 1_600_000_000 + n as i64, nsec: 123_456_789 },
        ctime: Time { sec: 1_650_000_000 - n as i64, nsec: 999_999_999 },
    }
}

fn path(n: usize) -> Vec<u8> {
    format!("/lib/modules/6.1/kernel/drivers/m{n}.ko").into_bytes()
}

/// Everything a [`ModuleInfo`] says, comparable.
type Summary = (
    Vec<Vec<u8>>,
    Vec<Vec<u8>>,
    Vec<Vec<u8>>,
    Vec<(Vec<u8>, u64)>,
    Vec<(Vec<u8>, u64, bool)>,
    usize,
);

fn summary(info: &ModuleInfo) -> Summary {
    assert!(info.is_clean());
    (
        info.aliases().map(<[u8]>::to_vec).collect(),
        info.softdeps().map(<[u8]>::to_vec).collect(),
        info.weakdeps().map(<[u8]>::to_vec).collect(),
        info.exports().map(|(n, c)| (n.to_vec(), c)).collect(),
        info.imports().map(|i| (i.name.to_vec(), i.crc, i.weak)).collect(),
        info.exports().len() + info.imports().len(),
    )
}

fn modules(count: usize) -> Vec<(Vec<u8>, Stamp, ModuleInfo)> {
    (0..count).map(|n| (path(n), stamp(n), ModuleInfo::parse(&spec(n).build()))).collect()
}

fn cache_of(modules: &[(Vec<u8>, Stamp, ModuleInfo)]) -> Shared {
    let mut w = CacheWriter::new(ID, SETTLED);
    for (p, s, info) in modules {
        w.add(p, *s, info).unwrap();
    }
    w.finish().unwrap().into()
}

#[test]
fn records_round_trip() {
    let modules = modules(24);
    let file = cache_of(&modules);
    let cache = Cache::parse(&file, ID).unwrap();
    assert_eq!(cache.len(), modules.len());
    for (p, s, info) in &modules {
        let record = cache.get(p).unwrap();
        assert_eq!(record.path(), &p[..]);
        assert_eq!(record.stamp(), *s);
        let recalled = record.info();
        assert_eq!(summary(&recalled), summary(info), "{}", p.escape_ascii());
        // It is the record, read in place: nothing of it is its own.
        assert_eq!(recalled.heap_size(), 0);
        assert!(recalled.is_clean());
        // The record's own lists say the same.
        assert!(record.aliases().eq(info.aliases()));
        assert!(record.softdeps().eq(info.softdeps()));
        assert!(record.weakdeps().eq(info.weakdeps()));
        assert!(record.exports().eq(info.exports()));
        assert!(record.imports().eq(info.imports().map(|i| (i.name, i.crc, i.weak))));
        assert_eq!(record.aliases().len(), info.aliases().len());
    }
    // The shapes the test meant to cover are there.
    let all: Vec<Summary> = modules.iter().map(|m| summary(&m.2)).collect();
    assert!(all.iter().any(|s| !s.1.is_empty() && !s.2.is_empty()));
    assert!(all.iter().any(|s| s.3.iter().any(|e| e.1 != 0)));
    assert!(all.iter().any(|s| s.4.iter().any(|i| i.2)));
    assert!(all.iter().any(|s| s.4.iter().any(|i| i.1 == 0x1234_5678)));
    // In the order they were added; unknown paths are not found.
    let order: Vec<&[u8]> = cache.records().map(|r| r.path()).collect();
    assert!(order.iter().zip(&modules).all(|(a, m)| **a == m.0[..]));
    assert!(cache.get(b"/lib/modules/6.1/kernel/drivers/m99.ko").is_none());
    assert!(cache.get(b"").is_none());
}

#[test]
fn kept_records_encode_to_the_same_bytes() {
    let file = cache_of(&modules(16));
    let cache = Cache::parse(&file, ID).unwrap();
    let mut w = CacheWriter::new(ID, SETTLED);
    for record in cache.records() {
        w.keep(&record).unwrap();
    }
    assert_eq!(w.finish().unwrap(), file[..]);
}

/// What a cache says, comparable: each record's path, stamp and lists.
fn contents(file: &Shared) -> Vec<(Vec<u8>, Stamp, Summary)> {
    let cache = Cache::parse(file, ID).unwrap();
    cache.records().map(|r| (r.path().to_vec(), r.stamp(), summary(&r.info()))).collect()
}

/// A writer that takes over the old cache copies its records as they are. With few records
/// left out, the file holds the same records as a new writer's (some unused symbols stay);
/// with many, it is byte for byte a new writer's: symbols numbered in the order the records
/// use them, those no record uses any more dropped.
/// Records kept from the old cache stay in it until the file is written: the sealed file's
/// parts are runs of the old file between the new bytes, they make the file [`finish`] makes,
/// and a path already kept, in any run, is refused again.
///
/// [`finish`]: CacheWriter::finish
#[test]
fn kept_records_are_runs_of_the_old_file() {
    let all = modules(26);
    let old = cache_of(&all[..24]);
    let cache = Cache::parse(&old, ID).unwrap();
    // Kept 0-2 (one run), a new one, kept 4-21 (3 left out), a new one, kept 23 (22 left out):
    // too few left out for the symbols to be numbered again (which copies every record).
    let order: Vec<usize> = [0, 1, 2, 24].into_iter().chain(4..22).chain([25, 23]).collect();
    let write = || {
        let mut w = CacheWriter::update(&cache, ID, SETTLED);
        for &n in &order {
            let (p, s, info) = &all[n];
            match cache.get(p) {
                Some(record) => w.keep(&record).unwrap(),
                None => w.add(p, *s, info).unwrap(),
            }
        }
        for n in [0, 2, 5, 23, 24] {
            let (p, s, info) = &all[n];
            assert_eq!(w.add(p, *s, info), Err(NotCached::Duplicate), "m{n}");
        }
        w
    };
    let sealed = write().seal().unwrap();
    let whole: Vec<u8> = sealed.parts().flatten().copied().collect();
    assert_eq!(whole, write().finish().unwrap());
    assert_eq!(sealed.len(), whole.len());
    assert!(sealed.is(&whole));
    assert!(!sealed.is(&whole[..whole.len() - 1]));
    assert!(!sealed.is(&[&whole[..], b"!"].concat()));
    // Three runs of the old file (0-2, 4-21, 23), each after new bytes (the header, m24, m25) and
    // before the rest (empty after the last), then the tail's five counts and parts.
    let parts: Vec<&[u8]> = sealed.parts().collect();
    assert_eq!(parts.len(), 7 + 10);
    for run in [1, 3, 5] {
        assert!(old.windows(parts[run].len()).any(|w| w == parts[run]), "part {run}");
    }
    assert_eq!(parts[6], b"");
    let file: Shared = whole.into();
    let got = Cache::parse(&file, ID).unwrap();
    let paths: Vec<&[u8]> = got.records().map(|r| r.path()).collect();
    let expected: Vec<Vec<u8>> = order.iter().map(|&n| path(n)).collect();
    assert_eq!(paths, expected.iter().map(|p| &p[..]).collect::<Vec<_>>());
    for (n, r) in order.iter().zip(got.records()) {
        assert_eq!(summary(&r.info()), summary(&all[*n].2), "m{n}");
    }
}

#[test]
fn updated_cache_equals_a_new_one() {
    let all = modules(30);
    let old = cache_of(&all[..20]);
    let cache = Cache::parse(&old, ID).unwrap();
    let few: fn(usize) -> bool = |n| n == 7;
    let many: fn(usize) -> bool = |n| n % 4 == 1;
    for (left_out, same_bytes) in [(few, false), (many, true)] {
        // Some modules left out, others added, the order changed.
        let order: Vec<usize> = (0..30).rev().filter(|&n| !left_out(n)).collect();
        let mut updated = CacheWriter::update(&cache, ID, SETTLED);
        let mut fresh = CacheWriter::new(ID, SETTLED);
        for &n in &order {
            let (p, s, info) = &all[n];
            match cache.get(p) {
                Some(record) => updated.keep(&record).unwrap(),
                None => updated.add(p, *s, info).unwrap(),
            }
            fresh.add(p, *s, info).unwrap();
        }
        assert_eq!(updated.len(), order.len());
        let updated: Shared = updated.finish().unwrap().into();
        let fresh: Shared = fresh.finish().unwrap().into();
        assert_eq!(contents(&updated), contents(&fresh));
        assert_eq!(updated[..] == fresh[..], same_bytes);
    }
    // Every old record kept in order, then new ones: the same bytes.
    let mut updated = CacheWriter::update(&cache, ID, SETTLED);
    let mut fresh = CacheWriter::new(ID, SETTLED);
    for r in cache.records() {
        updated.keep(&r).unwrap();
        fresh.keep(&r).unwrap();
    }
    for (p, s, info) in &all[20..] {
        updated.add(p, *s, info).unwrap();
        fresh.add(p, *s, info).unwrap();
    }
    let (updated, fresh) = (updated.finish().unwrap(), fresh.finish().unwrap());
    let first = updated.iter().zip(&fresh).position(|(a, b)| a != b);
    assert!(
        updated == fresh,
        "{} and {} bytes, first difference at {first:?}",
        updated.len(),
        fresh.len()
    );
    // Nothing kept: nothing of the old table is left.
    let empty = CacheWriter::update(&cache, ID, SETTLED).finish().unwrap();
    assert!(empty == CacheWriter::new(ID, SETTLED).finish().unwrap());
    // A record of another cache is re-encoded (with the symbol numbers of this writer).
    let other = cache_of(&all[20..]);
    let other = Cache::parse(&other, ID).unwrap();
    let mut w = CacheWriter::update(&cache, ID, SETTLED);
    let mut f = CacheWriter::new(ID, SETTLED);
    for r in other.records().chain(cache.records()) {
        w.keep(&r).unwrap();
        f.keep(&r).unwrap();
    }
    let (w, f): (Shared, Shared) = (w.finish().unwrap().into(), f.finish().unwrap().into());
    assert_eq!(contents(&w), contents(&f));
}

#[test]
fn symbols_are_shared() {
    let modules = modules(40);
    assert!(modules.iter().all(|m| m.2.imports().any(|i| i.name == b"printk")));
    let file = cache_of(&modules);
    // Each distinct name with its CRC is stored once, however many modules import it.
    assert_eq!(file.windows(6).filter(|w| w == b"printk").count(), 1);
    let mut crcs: Vec<u64> = modules
        .iter()
        .flat_map(|m| m.2.exports().filter(|e| e.0 == b"shared_export_name").map(|e| e.1))
        .collect();
    crcs.sort_unstable();
    crcs.dedup();
    assert!(crcs.len() > 1);
    let shared = file.windows(18).filter(|w| w == b"shared_export_name").count();
    assert_eq!(shared, crcs.len(), "once for each CRC it has");
}

#[test]
fn empty_cache() {
    let file: Shared = CacheWriter::new(ID, SETTLED).finish().unwrap().into();
    let cache = Cache::parse(&file, ID).unwrap();
    assert!(cache.is_empty());
    assert_eq!(cache.records().count(), 0);
    assert!(cache.get(b"/x.ko").is_none());
    assert_eq!(cache.files().count(), 0);
    assert_eq!(cache.options(), b"");
}

#[test]
fn files_and_options_round_trip() {
    let mut w = CacheWriter::new(ID, SETTLED);
    w.set_options(b"-a -e -F System.map");
    w.add_file(b"/lib/modules/6.1/modules.order", stamp(1)).unwrap();
    let odd = Stamp {
        dev: u64::MAX,
        ino: 0,
        size: u64::MAX - 1,
        mtime: Time { sec: -5, nsec: 1 },
        ctime: Time { sec: i64::MIN, nsec: 999_999_999 },
    };
    w.add_file(b"/etc/depmod.d", odd).unwrap();
    let file: Shared = w.finish().unwrap().into();
    let cache = Cache::parse(&file, ID).unwrap();
    assert_eq!(cache.options(), b"-a -e -F System.map");
    let files: Vec<(&[u8], Stamp)> = cache.files().collect();
    assert_eq!(
        files,
        [(&b"/lib/modules/6.1/modules.order"[..], stamp(1)), (b"/etc/depmod.d", odd)]
    );
}

#[test]
fn what_is_not_cached() {
    let good = ModuleInfo::parse(&spec(2).build());
    let mut w = CacheWriter::new(ID, SETTLED);
    let before = w.clone().finish().unwrap();
    // Unusable or partly unreadable records are read again each run.
    let not_elf = ModuleInfo::parse(b"not an ELF file");
    assert_eq!(w.add(b"/a.ko", stamp(0), &not_elf), Err(NotCached::Unclean));
    let mut elf = spec(2).build();
    elf.truncate(elf.len() - 1);
    let cut = ModuleInfo::parse(&elf);
    assert!(!cut.is_clean());
    assert_eq!(w.add(b"/a.ko", stamp(0), &cut), Err(NotCached::Unclean));
    // Changed in the settling time: either time, to the nanosecond.
    for (m, c) in [(SETTLED, Time::default()), (Time::default(), SETTLED)] {
        let s = Stamp { mtime: m, ctime: c, ..stamp(0) };
        assert_eq!(w.add(b"/a.ko", s, &good), Err(NotCached::Unsettled));
        assert_eq!(w.add_file(b"/a.conf", s), Err(NotCached::Unsettled));
    }
    let just = Time { sec: SETTLED.sec - 1, nsec: 999_999_999 };
    // Too long for the format.
    let long = vec![b'x'; 70_000];
    assert_eq!(w.add(&long, stamp(0), &good), Err(NotCached::LongPath));
    let mut spec = ModuleSpec::new();
    spec.modinfo = vec![[&b"alias="[..], &long].concat()];
    let long_alias = ModuleInfo::parse(&spec.build());
    assert_eq!(w.add(b"/a.ko", stamp(0), &long_alias), Err(NotCached::LongString));
    // A CRC wider than 32 bits (of `__versions`, 64-bit here), after a symbol that was new: it
    // is forgotten.
    let mut spec = ModuleSpec::new();
    (spec.exports, spec.crcs) = (vec![b"brand_new_symbol".to_vec()], Some(vec![7]));
    spec.imports = vec![(b"bad_crc".to_vec(), false)];
    spec.versions = vec![(b"bad_crc".to_vec(), u64::MAX)];
    let wide = ModuleInfo::parse(&spec.build());
    assert!(wide.is_clean());
    assert_eq!(wide.imports().next().map(|i| (i.name, i.crc)), Some((&b"bad_crc"[..], u64::MAX)));
    assert_eq!(w.add(b"/a.ko", stamp(0), &wide), Err(NotCached::WideCrc));
    assert_eq!(w.clone().finish().unwrap(), before, "a refused record leaves nothing behind");
    // A path once.
    let s = Stamp { mtime: just, ctime: just, ..stamp(0) };
    w.add(b"/a.ko", s, &good).unwrap();
    assert_eq!(w.add(b"/a.ko", stamp(1), &good), Err(NotCached::Duplicate));
    assert_eq!(w.len(), 1);
}

/// A valid cache of a few modules and some files, for the rejection tests.
fn sample() -> Vec<u8> {
    let mut w = CacheWriter::new(ID, SETTLED);
    w.set_options(b"opts");
    w.add_file(b"/lib/modules/6.1/modules.order", stamp(9)).unwrap();
    for (p, s, info) in modules(3) {
        w.add(&p, s, &info).unwrap();
    }
    for (path, n) in [(&b"/lib/modules/6.1/kernel/"[..], 10), (b"/lib/modules/6.1/kernel/net/", 11)]
    {
        w.add_listing(
            path,
            stamp(n),
            &listing_of(&[(Listed::Module, "a.ko"), (Listed::Directory, "net")]),
        )
        .unwrap();
    }
    w.finish().unwrap()
}

/// The encoded listing of `entries`.
fn listing_of(entries: &[(Listed, &str)]) -> Vec<u8> {
    let mut buf = ListingBuf::new();
    for (kind, name) in entries {
        buf.push(*kind, name.as_bytes());
    }
    buf.encoded().unwrap().to_vec()
}

#[test]
fn listings_round_trip() {
    let mut w = CacheWriter::new(ID, SETTLED);
    let net = listing_of(&[(Listed::Module, "dummy.ko"), (Listed::Directory, "wireless")]);
    let top = listing_of(&[(Listed::Directory, "kernel"), (Listed::Module, "extra.ko.xz")]);
    w.add_listing(b"/lib/modules/6.1/kernel/net/", stamp(1), &net).unwrap();
    w.add_listing(b"/lib/modules/6.1/", stamp(2), &top).unwrap();
    w.add_listing(b"/lib/modules/6.1/empty/", stamp(3), &[]).unwrap();
    // Refused: a path listed already, a stamp not settled, a malformed listing.
    assert_eq!(w.add_listing(b"/lib/modules/6.1/", stamp(4), &top), Err(NotCached::Duplicate));
    let fresh = Stamp { ctime: SETTLED, ..stamp(5) };
    assert_eq!(w.add_listing(b"/x/", fresh, &top), Err(NotCached::Unsettled));
    assert_eq!(w.add_listing(b"/y/", stamp(6), &[0, 9, b'a']), Err(NotCached::BadListing));
    let file: Shared = w.finish().unwrap().into();
    let cache = Cache::parse(&file, ID).unwrap();
    assert_eq!(cache.listing(b"/lib/modules/6.1/kernel/net/"), Some((stamp(1), &net[..])));
    assert_eq!(cache.listing(b"/lib/modules/6.1/"), Some((stamp(2), &top[..])));
    assert_eq!(cache.listing(b"/lib/modules/6.1/empty/"), Some((stamp(3), &[][..])));
    for absent in [&b"/lib/modules/6.1"[..], b"/x/", b"/y/", b"/lib/modules/6.1/kernel/"] {
        assert_eq!(cache.listing(absent), None, "{absent:?}");
    }
    let all: Vec<_> = cache.listings().map(|(p, s, _)| (p.to_vec(), s)).collect();
    assert_eq!(
        all,
        [
            (b"/lib/modules/6.1/kernel/net/".to_vec(), stamp(1)),
            (b"/lib/modules/6.1/".to_vec(), stamp(2)),
            (b"/lib/modules/6.1/empty/".to_vec(), stamp(3)),
        ]
    );
    let (_, entries) = cache.listing(b"/lib/modules/6.1/kernel/net/").unwrap();
    let names: Vec<_> = listing::entries(entries).collect();
    assert_eq!(names, [(Listed::Module, &b"dummy.ko"[..]), (Listed::Directory, &b"wireless"[..])]);
}

#[test]
fn listings_that_no_writer_writes() {
    let file = sample();
    let Parts { dirs, .. } = parts(&file);
    // The first listing's entries: its path, stamp, and the length of its entries come first.
    let path_len = usize::from(u16::from_le_bytes([file[dirs + 4], file[dirs + 5]]));
    let entries = dirs + 4 + 2 + path_len + STAMP + 4;
    // An entry of kind 2; a name with a slash in it ("a.ko" is the first name).
    let f = edited(&file, |f| f[entries] = 2);
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: entries as u64, what: "directory entry" }));
    let f = edited(&file, |f| f[entries + 3] = b'/');
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: entries as u64, what: "directory entry" }));
    // A listing count larger than the rest of the file.
    let f = edited(&file, |f| put32(f, dirs, 0x4000_0000));
    assert_eq!(
        parse(&f),
        Err(Rejected::TooMany { at: dirs as u64, what: "directory listings", count: 0x4000_0000 })
    );
    // The same directory twice ("net/" made "net" + a second final slash... of equal length:
    // the second path made the first's).
    let second = dirs + 4 + 2 + path_len + STAMP + 4 + word(&file, entries - 4) as usize;
    let f = edited(&file, |f| {
        let first = f[dirs + 6..dirs + 6 + path_len].to_vec();
        f.splice(second + 2..second + 2 + path_len + 4, first);
        f[second..second + 2].copy_from_slice(&(path_len as u16).to_le_bytes());
        let len = f.len() as u64;
        f[16..24].copy_from_slice(&len.to_le_bytes());
    });
    let Err(Rejected::Corrupt { what, .. }) = parse(&f) else { panic!("{:?}", parse(&f)) };
    assert_eq!(what, "directory listed twice");
}

fn parse(file: &[u8]) -> Result<usize, Rejected> {
    let file: Shared = file.to_vec().into();
    Cache::parse(&file, ID).map(|c| c.len())
}

#[test]
fn truncated_anywhere() {
    let file = sample();
    let full = file.len() as u64;
    for cut in 0..file.len() {
        let expected = if cut < HEADER { HEADER as u64 } else { full };
        assert_eq!(
            parse(&file[..cut]),
            Err(Rejected::Truncated { len: cut as u64, expected }),
            "cut at {cut}"
        );
    }
    let mut longer = file.clone();
    longer.push(0);
    assert_eq!(parse(&longer), Err(Rejected::TrailingBytes { len: full + 1, expected: full }));
}

#[test]
fn one_byte_flipped_anywhere() {
    let file = sample();
    let recorded = u32::from_le_bytes(file[CRC_AT..CRC_AT + 4].try_into().unwrap());
    for at in 0..file.len() {
        for bit in [0x01u8, 0x80] {
            let mut bad = file.clone();
            bad[at] ^= bit;
            let got = parse(&bad);
            let len = file.len() as u64;
            match at {
                0..8 => assert_eq!(got, Err(Rejected::NotACache)),
                8..12 => {
                    let format = u32::from_le_bytes(bad[8..12].try_into().unwrap());
                    assert_eq!(got, Err(Rejected::OtherFormat { format }));
                }
                12..16 => {
                    assert_eq!(got, Err(Rejected::Corrupt { at: 12, what: "byte-order mark" }))
                }
                16..24 => {
                    let expected = u64::from_le_bytes(bad[16..24].try_into().unwrap());
                    let want = if expected > len {
                        Rejected::Truncated { len, expected }
                    } else {
                        Rejected::TrailingBytes { len, expected }
                    };
                    assert_eq!(got, Err(want));
                }
                24..28 => {
                    let flipped = u32::from_le_bytes(bad[24..28].try_into().unwrap());
                    assert_eq!(
                        got,
                        Err(Rejected::Checksum { recorded: flipped, computed: recorded })
                    );
                }
                _ => assert!(
                    matches!(got, Err(Rejected::Checksum { recorded: r, .. }) if r == recorded),
                    "byte {at}: {got:?}"
                ),
            }
        }
    }
}

/// Changes `file` with `edit` and stores its checksum again, as a writer with that difference
/// would have.
fn edited(file: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = file.to_vec();
    edit(&mut f);
    reseal(&mut f);
    f
}

fn put32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn other_writers_and_trees() {
    let file = sample();
    let other_format = edited(&file, |f| put32(f, 8, FORMAT + 1));
    assert_eq!(parse(&other_format), Err(Rejected::OtherFormat { format: FORMAT + 1 }));
    let swapped = edited(&file, |f| f[12..16].reverse());
    assert_eq!(parse(&swapped), Err(Rejected::OtherByteOrder));
    let shared: Shared = file.clone().into();
    let other_program = Identity { program: b"depmod-rs test build 2", ..ID };
    assert_eq!(Cache::parse(&shared, other_program).unwrap_err(), Rejected::OtherProgram);
    let other_tree = Identity { tree: b"/lib/modules/6.2", ..ID };
    assert_eq!(Cache::parse(&shared, other_tree).unwrap_err(), Rejected::OtherTree);
    let not_a_cache = edited(b"modules.dep.bin is not a cache at all", |_| {});
    assert_eq!(parse(&not_a_cache), Err(Rejected::NotACache));
    for tail in [0, file.len() as u32 + 1, HEADER as u32] {
        let f = edited(&file, |f| put32(f, TAIL_AT, tail));
        assert_eq!(parse(&f), Err(Rejected::Corrupt { at: 28, what: "tail offset" }), "{tail}");
    }
}

/// Where the parts of a cache lie.
struct Parts {
    /// The record count, and the first record.
    records: usize,
    first: usize,
    /// The tail: options, files' count, listings' count, symbols' count, the pool's length.
    tail: usize,
    files: usize,
    dirs: usize,
    symbols: usize,
    pool: usize,
}

fn word(file: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(file[at..at + 4].try_into().unwrap())
}

fn parts(file: &[u8]) -> Parts {
    let mut at = HEADER;
    for _ in 0..2 {
        at += 4 + word(file, at) as usize;
    }
    let tail = word(file, TAIL_AT) as usize;
    let files = tail + 4 + word(file, tail) as usize;
    let mut dirs = files + 4;
    for _ in 0..word(file, files) {
        dirs += 2 + usize::from(u16::from_le_bytes([file[dirs], file[dirs + 1]])) + STAMP;
    }
    let mut symbols = dirs + 4;
    for _ in 0..word(file, dirs) {
        symbols += 2 + usize::from(u16::from_le_bytes([file[symbols], file[symbols + 1]])) + STAMP;
        symbols += 4 + word(file, symbols) as usize;
    }
    let pool = symbols + 4 + 8 * word(file, symbols) as usize;
    Parts { records: at, first: at + 4, tail, files, dirs, symbols, pool }
}

/// Where the list counts of the record at `at` lie.
fn counts(file: &[u8], at: usize) -> usize {
    at + 2 + usize::from(u16::from_le_bytes([file[at], file[at + 1]])) + STAMP
}

#[test]
fn counts_larger_than_the_input() {
    let file = sample();
    let Parts { records, first, files, symbols, pool, .. } = parts(&file);
    let huge = 0x4000_0000;
    let too_many = |at: usize, what: &'static str| {
        let f = edited(&file, |f| put32(f, at, huge));
        assert_eq!(parse(&f), Err(Rejected::TooMany { at: at as u64, what, count: huge as u64 }));
    };
    too_many(files, "files");
    too_many(symbols, "symbols");
    too_many(records, "records");
    // The pool's length is not a count of items: it runs past the end.
    let f = edited(&file, |f| put32(f, pool, huge));
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: pool as u64 + 4, what: "symbol names" }));
    // A record's list lengths.
    let counts = counts(&file, first);
    for (i, what) in ["strings", "strings", "strings", "export", "import"].iter().enumerate() {
        let at = counts + 4 * i;
        let f = edited(&file, |f| put32(f, at, huge));
        let Err(Rejected::TooMany { what: w, count, .. }) = parse(&f) else {
            panic!("list {i}: {:?}", parse(&f));
        };
        assert_eq!((w, count), (*what, huge as u64), "list {i}");
    }
}

#[test]
fn records_that_no_writer_writes() {
    let file = sample();
    let Parts { first, tail, symbols, pool, .. } = parts(&file);
    let nsym = word(&file, symbols);
    // The last word before the tail is the last record's last import.
    let last = tail - 4;
    let f = edited(&file, |f| put32(f, last, nsym));
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: last as u64, what: "import" }));
    // A weak export.
    let counts = counts(&file, first);
    let exports = word(&file, counts + 12) as usize;
    assert!(exports > 0, "the first module exports something");
    let strings_end = (0..3).fold(counts + 20, |mut at, list| {
        for _ in 0..word(&file, counts + 4 * list) {
            at += 2 + usize::from(u16::from_le_bytes([file[at], file[at + 1]]));
        }
        at
    });
    let f = edited(&file, |f| f[strings_end + 3] |= 0x80);
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: strings_end as u64, what: "export" }));
    // Names ending before the previous one's end, or past the pool.
    let f = edited(&file, |f| put32(f, symbols + 4 + 8, 0));
    let Err(Rejected::Corrupt { what, .. }) = parse(&f) else { panic!("{:?}", parse(&f)) };
    assert_eq!(what, "symbol name end");
    let f = edited(&file, |f| put32(f, pool - 8, word(&file, pool) + 1));
    assert_eq!(parse(&f), Err(Rejected::Corrupt { at: pool as u64 - 8, what: "symbol name end" }));
    // Bytes after the pool (the length says so, the checksum agrees).
    let f = edited(&file, |f| {
        f.extend_from_slice(&[0; 3]);
        let len = f.len() as u64;
        f[16..24].copy_from_slice(&len.to_le_bytes());
    });
    assert_eq!(
        parse(&f),
        Err(Rejected::Corrupt { at: file.len() as u64, what: "bytes after the symbol names" })
    );
    // Bytes between the last record and the tail.
    let f = edited(&file, |f| {
        f.splice(tail..tail, [0u8; 5]);
        let len = f.len() as u64;
        f[16..24].copy_from_slice(&len.to_le_bytes());
        let t = word(f, TAIL_AT) + 5;
        put32(f, TAIL_AT, t);
    });
    assert_eq!(
        parse(&f),
        Err(Rejected::Corrupt { at: tail as u64, what: "bytes between the records and the tail" })
    );
    // The same path twice: the writer refuses it, a crafted file is rejected.
    let mut w = CacheWriter::new(ID, SETTLED);
    let info = ModuleInfo::parse(&spec(1).build());
    w.add(b"/lib/modules/6.1/a.ko", stamp(0), &info).unwrap();
    w.add(b"/lib/modules/6.1/b.ko", stamp(0), &info).unwrap();
    let two = w.finish().unwrap();
    let at = two.windows(4).rposition(|w| w == b"b.ko").unwrap();
    let f = edited(&two, |f| f[at] = b'a');
    let Err(Rejected::Corrupt { what, .. }) = parse(&f) else { panic!("{:?}", parse(&f)) };
    assert_eq!(what, "module path recorded twice");
}

#[test]
fn reasons_read_well() {
    let reasons = [
        (Rejected::Truncated { len: 10, expected: 32 }, "truncated: 10 bytes of 32"),
        (Rejected::OtherFormat { format: 1 }, "format 1, not 2 (another version wrote it)"),
        (Rejected::OtherByteOrder, "written on a host of the other byte order"),
        (
            Rejected::TooMany { at: 40, what: "records", count: 7 },
            "7 records at offset 40 cannot fit in the file",
        ),
    ];
    for (r, text) in reasons {
        assert_eq!(format!("{r}"), text);
    }
}

/// Recalled modules have their needed symbols looked up by the cache's numbers, each name once:
/// the same edges, in the same order, as looking every needed symbol up by name (a prefix to
/// strip, a weak symbol, names the table lacks and names owned by the kernel included).
#[test]
fn needed_symbols_resolved_by_number_as_by_name() {
    use crate::graph::Graph;
    use crate::resolve::{ResolveOptions, Symbols, add_exports, resolve_run};
    let all = modules(30);
    let file = cache_of(&all);
    let cache = Cache::parse(&file, ID).unwrap();
    let recalled: Vec<ModuleInfo> = cache.records().map(|r| r.info()).collect();
    for prefix in [None, Some(b'e')] {
        let mut symbols = Symbols::new(prefix);
        symbols.add_kernel(b"printk", 0);
        add_exports(&mut symbols, &recalled);
        let known: Vec<_> = cache.symbol_names().map(|n| symbols.find(n)).collect();
        let graph = |known: Option<&crate::resolve::Known<'_>>| {
            let mut graph = Graph::new(recalled.len());
            let options = ResolveOptions::default();
            let run = resolve_run(&symbols, known, &recalled, 0, options);
            run.add_to(&mut graph);
            (0..recalled.len() as u32).map(|m| graph.deps(m).to_vec()).collect::<Vec<_>>()
        };
        let by_name = graph(None);
        assert!(by_name.iter().filter(|d| !d.is_empty()).count() > 10, "{by_name:?}");
        assert_eq!(graph(Some(&known)), by_name);
    }
}
