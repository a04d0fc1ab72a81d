//! Measures the module cache on a real tree: its size beside the indexes, and the time to write
//! it, to check it, and to look up every module in it and make its `ModuleInfo`.
//!
//! Usage: `cargo run --release -p depmod-core --example cache_timing -- MODULEDIR INDEXDIR [RUNS]`
//!
//! MODULEDIR is a `lib/modules/VERSION` directory (`.ko`, `.ko.xz`, `.ko.zst` or `.ko.gz`
//! modules; compressed ones are decompressed by the `xz`, `zstd` and `gzip` commands), INDEXDIR
//! holds the eleven indexes depmod wrote for it, and nothing else (`depmod -o`). Prints the fastest and the median of RUNS.
// A measuring tool, not library code: it stops at the first surprise.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use depmod_core::bytes::Shared;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use depmod_core::ModuleInfo;
use depmod_core::cache::{Cache, CacheWriter, Identity, NotCached, Stamp, Time};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            walk(&p, out);
        } else if [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
            .iter()
            .any(|x| p.as_os_str().as_bytes().ends_with(x.as_bytes()))
        {
            out.push(p);
        }
    }
}

fn stamp(p: &Path) -> Stamp {
    let m = std::fs::metadata(p).unwrap();
    Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: Time { sec: m.mtime(), nsec: m.mtime_nsec() as u32 },
        ctime: Time { sec: m.ctime(), nsec: m.ctime_nsec() as u32 },
    }
}

fn contents(p: &Path) -> Vec<u8> {
    let name = p.as_os_str().as_bytes();
    let tool = [(".xz", "xz"), (".zst", "zstd"), (".gz", "gzip")]
        .iter()
        .find(|(x, _)| name.ends_with(x.as_bytes()))
        .map(|t| t.1);
    match tool {
        None => std::fs::read(p).unwrap(),
        Some(tool) => {
            let out = Command::new(tool).arg("-dc").arg(p).output().unwrap();
            assert!(out.status.success(), "{tool} -dc {}", p.display());
            out.stdout
        }
    }
}

type Summary =
    (Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<(Vec<u8>, u64)>, Vec<(Vec<u8>, u64, bool)>);

fn summary(i: &ModuleInfo) -> Summary {
    (
        i.aliases().map(<[u8]>::to_vec).collect(),
        i.softdeps().map(<[u8]>::to_vec).collect(),
        i.weakdeps().map(<[u8]>::to_vec).collect(),
        i.exports().map(|(n, c)| (n.to_vec(), c)).collect(),
        i.imports().map(|n| (n.name.to_vec(), n.crc, n.weak)).collect(),
    )
}

fn timed(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[0], t[runs / 2])
}

fn ms(d: (Duration, Duration)) -> String {
    format!("min {:7.3} ms  median {:7.3} ms", d.0.as_secs_f64() * 1e3, d.1.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, indexes) = (PathBuf::from(&args[1]), PathBuf::from(&args[2]));
    let runs: usize = args.get(3).map_or(20, |r| r.parse().unwrap());
    let mut paths = Vec::new();
    walk(&dir, &mut paths);
    let start = Instant::now();
    let modules: Vec<(Vec<u8>, Stamp, ModuleInfo)> = paths
        .iter()
        .map(|p| (p.as_os_str().as_bytes().to_vec(), stamp(p), ModuleInfo::parse(&contents(p))))
        .collect();
    eprintln!("read {} modules in {:.1} s", modules.len(), start.elapsed().as_secs_f64());

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let settled = Time { sec: now.as_secs() as i64 - 1, nsec: 0 };
    let id = Identity { program: b"depmod-rs cache_timing", tree: dir.as_os_str().as_bytes() };
    let write = || {
        let mut w = CacheWriter::new(id, settled);
        let mut skipped: Vec<NotCached> = Vec::new();
        for (p, s, info) in &modules {
            if let Err(e) = w.add(p, *s, info) {
                skipped.push(e);
            }
        }
        (w.finish().unwrap(), skipped)
    };
    let (file, skipped) = write();
    let file: Shared = file.into();
    let sizes: Vec<u64> = std::fs::read_dir(&indexes)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    assert_eq!(sizes.len(), 11, "INDEXDIR holds the eleven indexes and nothing else");
    let index_bytes: u64 = sizes.iter().sum();
    let items: usize = modules
        .iter()
        .map(|m| {
            let i = &m.2;
            i.aliases().len()
                + i.softdeps().len()
                + i.weakdeps().len()
                + i.exports().len()
                + i.imports().len()
        })
        .sum();
    println!(
        "{} modules ({} list items), {} cached; not cached: {:?}",
        modules.len(),
        items,
        modules.len() - skipped.len(),
        skipped
    );
    println!(
        "cache {} bytes; the 11 indexes {} bytes; ratio {:.2}",
        file.len(),
        index_bytes,
        file.len() as f64 / index_bytes as f64
    );
    if let Some(out) = args.get(4) {
        std::fs::write(out, &file).unwrap();
    }

    // Every module comes back as it was read.
    let cache = Cache::parse(&file, id).unwrap();
    for (p, s, info) in &modules {
        if !info.is_clean() {
            continue;
        }
        let r = cache.get(p).unwrap();
        assert_eq!(r.stamp(), *s);
        assert_eq!(summary(&r.info()), summary(info));
    }

    // CACHE_TIMING_ONLY=load (or write) repeats that part alone, for a profiler.
    match std::env::var("CACHE_TIMING_ONLY").as_deref() {
        Ok("load") => {
            for _ in 0..runs {
                let cache = Cache::parse(&file, id).unwrap();
                let n =
                    modules.iter().filter_map(|(p, _, _)| cache.get(p).map(|r| r.info())).count();
                assert!(n > 0);
            }
            return;
        }
        Ok("write") => {
            (0..runs).for_each(|_| drop(write()));
            return;
        }
        Ok("update") => {
            for _ in 0..runs {
                let mut w = CacheWriter::update(&cache, id, settled);
                cache.records().for_each(|r| w.keep(&r).unwrap());
                drop(w.finish().unwrap());
            }
            return;
        }
        _ => {}
    }
    println!("write (add every module, finish):   {}", ms(timed(runs, || drop(write()))));
    println!(
        "write (update: keep every record but one, add it, finish): {}",
        ms(timed(runs, || {
            let mut w = CacheWriter::update(&cache, id, settled);
            let changed = modules.len() / 2;
            for (i, r) in cache.records().enumerate() {
                if i == changed {
                    let (p, s, info) = &modules[i];
                    w.add(p, *s, info).unwrap();
                } else {
                    w.keep(&r).unwrap();
                }
            }
            drop(w.finish().unwrap());
        }))
    );
    println!(
        "check (parse: checksum, every part): {}",
        ms(timed(runs, || drop(Cache::parse(&file, id).unwrap())))
    );
    println!(
        "load (parse, get and info of all):   {}",
        ms(timed(runs, || {
            let cache = Cache::parse(&file, id).unwrap();
            let infos: Vec<ModuleInfo> = modules
                .iter()
                .filter_map(|(p, s, _)| {
                    let r = cache.get(p)?;
                    (r.stamp() == *s).then(|| r.info())
                })
                .collect();
            assert_eq!(infos.len(), modules.len() - skipped.len());
        }))
    );
    println!(
        "load on two threads:                 {}",
        ms(timed(runs, || {
            let cache = Cache::parse(&file, id).unwrap();
            let (a, b) = modules.split_at(modules.len() / 2);
            let half = |part: &[(Vec<u8>, Stamp, ModuleInfo)]| {
                part.iter()
                    .filter_map(|(p, s, _)| {
                        let r = cache.get(p)?;
                        (r.stamp() == *s).then(|| r.info())
                    })
                    .collect::<Vec<ModuleInfo>>()
            };
            let (x, y) = std::thread::scope(|sc| {
                let t = sc.spawn(|| half(b));
                (half(a), t.join().unwrap())
            });
            assert_eq!(x.len() + y.len(), modules.len() - skipped.len());
        }))
    );
}
