//! Times the trie writer on real indexes: each `modules.*.bin` of a directory (as depmod wrote
//! it) is read back, its entries inserted again into an [`IndexBuilder`] in an order like
//! depmod's (by priority, then pseudo-random), and written; the result must equal the file byte
//! for byte. Prints the fastest and the median of `RUNS` builds (insert + write) of each index.
//!
//! Usage: `cargo run --release -p depmod-core --example index_timing -- DIR [RUNS [NAME]]` (NAME:
//! only the index of that file name).
// A measuring tool, not library code: it stops at the first surprise.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use depmod_core::index::IndexBuilder;
use depmod_core::index::reader::Index;

/// One insertion: key, value, priority.
type Insert = (Vec<u8>, Vec<u8>, u32);

/// The insertions that rebuild `file`: by priority, then in an order fixed by a hash of the key
/// (depmod inserts module by module), values of one key and priority oldest first (the index
/// lists them newest first).
fn insertions(file: &[u8]) -> Vec<Insert> {
    let entries = Index::parse(file).expect("index").entries().expect("dump");
    let mut all: Vec<(u32, u64, usize, Insert)> = Vec::new();
    for (key, values) in entries {
        let mix = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        for (i, v) in values.into_iter().enumerate() {
            all.push((v.priority, mix, usize::MAX - i, (key.clone(), v.text, v.priority)));
        }
    }
    all.sort_by_key(|a| (a.0, a.1, a.2));
    all.into_iter().map(|a| a.3).collect()
}

/// Insertions with their texts in one buffer, in insertion order (as depmod's come from the
/// modules' records, one after the other): (key end, value end, priority) in `texts`.
struct Packed {
    texts: Vec<u8>,
    inserts: Vec<(usize, usize, u32)>,
}

fn pack(inserts: &[Insert]) -> Packed {
    let mut texts = Vec::new();
    let mut packed = Vec::new();
    for (k, v, p) in inserts {
        texts.extend_from_slice(k);
        let key_end = texts.len();
        texts.extend_from_slice(v);
        packed.push((key_end, texts.len(), *p));
    }
    Packed { texts, inserts: packed }
}

fn build(packed: &Packed, out: &mut Vec<u8>) {
    let mut b = IndexBuilder::new();
    let mut start = 0;
    for &(key_end, value_end, p) in &packed.inserts {
        b.insert(&packed.texts[start..key_end], &packed.texts[key_end..value_end], p)
            .expect("insert");
        start = value_end;
    }
    out.clear();
    b.write(out).expect("write");
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: index_timing DIR [RUNS]");
    let runs: usize = args.next().map_or(50, |r| r.parse().expect("RUNS"));
    let only = args.next();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("DIR")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .filter(|p| only.as_ref().is_none_or(|o| p.file_name().is_some_and(|n| n == o.as_str())))
        .collect();
    names.sort();
    let mut total_min = Duration::ZERO;
    for path in names {
        let file = std::fs::read(&path).expect("read");
        // Empty indexes, and `.bin` files that are not indexes (this depmod's own
        // `modules.cache.bin`), are left out; a damaged index stops the tool.
        if !file.starts_with(&depmod_core::index::MAGIC.to_be_bytes()) {
            continue;
        }
        let inserts = insertions(&file);
        let packed = pack(&inserts);
        let mut out = Vec::new();
        build(&packed, &mut out);
        assert!(out == file, "{}: rebuilt index differs", path.display());
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                build(&packed, &mut out);
                start.elapsed()
            })
            .collect();
        times.sort();
        total_min += times[0];
        println!(
            "{:<28} {:>7} entries {:>9} bytes  min {:>7.3} ms  median {:>7.3} ms",
            path.file_name().unwrap_or_default().to_string_lossy(),
            inserts.len(),
            file.len(),
            times[0].as_secs_f64() * 1e3,
            times[runs / 2].as_secs_f64() * 1e3
        );
    }
    println!("total of the minimums: {:.3} ms", total_min.as_secs_f64() * 1e3);
}
