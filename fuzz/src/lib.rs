//! What the fuzz targets share: the binary's decompression (bin/src/decompress/, compiled here
//! unchanged, with every decoder), the binary's choice of which parts of a module file to read
//! (core's `read_plan::wanted_ranges`), and a comparable summary of a parsed module.
//!
//! The targets check properties, not just the absence of crashes: a module read in part (as the
//! binary reads large files) parses as the whole file does, reused working space changes
//! nothing, and a sparse decode agrees with a full one.

use std::cell::RefCell;
use std::ops::Range;

use depmod_core::ModuleInfo;
use depmod_core::elf::LocalSymbols;
use depmod_core::error::Error;
use depmod_core::read_plan::{self, StreamPlan};

#[allow(dead_code, clippy::all)]
#[path = "../../bin/src/decompress/mod.rs"]
pub mod decompress;

use decompress::{Decoders, Format};

/// Everything a [`ModuleInfo`] says, in a form that can be compared.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub aliases: Vec<Vec<u8>>,
    pub softdeps: Vec<Vec<u8>>,
    pub weakdeps: Vec<Vec<u8>>,
    pub exports: Vec<(Vec<u8>, u64)>,
    pub imports: Vec<(Vec<u8>, u64, bool)>,
    pub errors: [Option<Error>; 3],
}

/// The comparable form of `info`.
pub fn summary(info: &ModuleInfo) -> Summary {
    let texts = |it: &mut dyn Iterator<Item = &[u8]>| it.map(<[u8]>::to_vec).collect();
    Summary {
        aliases: texts(&mut info.aliases()),
        softdeps: texts(&mut info.softdeps()),
        weakdeps: texts(&mut info.weakdeps()),
        exports: info.exports().map(|(n, c)| (n.to_vec(), c)).collect(),
        imports: info.imports().map(|i| (i.name.to_vec(), i.crc, i.weak)).collect(),
        errors: [info.elf_error, info.exports_error, info.imports_error],
    }
}

/// The parts of a module file depmod reads, as far as `data` tells ([`read_plan::wanted_ranges`],
/// which the binary uses).
pub fn wanted_ranges(data: &[u8], filled: &dyn Fn(&Range<usize>) -> bool) -> Vec<Range<usize>> {
    let mut want = Vec::new();
    read_plan::wanted_ranges(data, filled, &mut want);
    want
}

/// Which bytes of a file have been read.
struct Known(Vec<bool>);

impl Known {
    fn covers(&self, r: &Range<usize>) -> bool {
        let r = r.start.min(self.0.len())..r.end.min(self.0.len());
        self.0.get(r).is_none_or(|s| s.iter().all(|&k| k))
    }
}

/// What the binary's `read_sparse` leaves in its buffer for an uncompressed file: the head, the
/// tail, then what [`wanted_ranges`] asks for, round after round (six at most, then the whole
/// file). Bytes never read hold `junk` (the binary leaves the previous file's bytes there).
/// Unlike the binary, nearby ranges are not joined, so less is read: a stricter test.
pub fn read_sparse(data: &[u8], junk: u8) -> Vec<u8> {
    let len = data.len();
    let mut buf = vec![junk; len];
    let mut known = Known(vec![false; len]);
    let fill = |buf: &mut [u8], known: &mut Known, r: Range<usize>| {
        let r = r.start.min(len)..r.end.min(len);
        if let (Some(dst), Some(src)) = (buf.get_mut(r.clone()), data.get(r.clone())) {
            dst.copy_from_slice(src);
        }
        if let Some(k) = known.0.get_mut(r) {
            k.fill(true);
        }
    };
    fill(&mut buf, &mut known, 0..4096);
    // The tail usually holds the section table and names.
    let mut want = Vec::new();
    want.push(len.saturating_sub(16 * 1024)..len);
    for _ in 0..6 {
        for r in want.drain(..) {
            fill(&mut buf, &mut known, r);
        }
        want = wanted_ranges(&buf, &|r| known.covers(r));
        want.retain(|r| !known.covers(r));
        if want.is_empty() {
            return buf;
        }
    }
    data.to_vec()
}

/// What `Decoders::decode_sparse` leaves, with the binary's plan (core's `StreamPlan`, scanning
/// local parts of `min_scan` bytes or more), for a file whose decoded bytes are `data`: head
/// and tail, then the planned ranges, zeros elsewhere, the watched range shown to the plan in
/// pieces of `piece` bytes as the passes stream past; and the plan's summary of the local
/// symbols when it scanned them. `None` when the plan was still changing after six passes (the
/// binary then decodes the whole file).
pub fn decode_sparse(
    data: &[u8],
    min_scan: usize,
    piece: usize,
) -> Option<(Vec<u8>, Option<LocalSymbols>)> {
    let size = data.len();
    let clip = |r: &Range<usize>| r.start.min(size)..r.end.min(size);
    let mut plan = StreamPlan::new(min_scan);
    let mut out = vec![0u8; size];
    let mut known = Known(vec![false; size]);
    let mut fresh: Vec<Range<usize>> =
        vec![0..size.min(4096), size.saturating_sub(64 * 1024)..size];
    let mut watch: Option<Range<usize>> = None;
    for _ in 0..6 {
        for r in &fresh {
            if let Some(k) = known.0.get_mut(clip(r)) {
                k.fill(true);
            }
        }
        for at in (0..size).step_by(piece.max(1)) {
            let end = (at + piece.max(1)).min(size);
            for r in &fresh {
                let (lo, hi) = (r.start.max(at), r.end.min(end));
                if let (Some(dst), Some(src)) = (out.get_mut(lo..hi), data.get(lo..hi)) {
                    dst.copy_from_slice(src);
                }
            }
            if watch.as_ref().is_some_and(|w| w.start < end && at < w.end) {
                plan.feed(at, &data[at..end], &out);
            }
        }
        let mut want = Vec::new();
        watch = plan.next(&out, &|r| known.covers(r), &mut want);
        fresh = want.iter().map(clip).filter(|r| !known.covers(r)).collect();
        if fresh.is_empty() && watch.is_none() {
            let locals = plan.locals().cloned();
            return Some((out, locals));
        }
    }
    None
}

thread_local! {
    /// One set of decoders for the whole run, as the binary keeps one per thread: state left by
    /// one input (even a corrupt one) must not change the next one's result.
    static DECODERS: RefCell<Decoders> = RefCell::default();
}

/// The plan of a sparse decode: the binary's, plus a range that depends on the decoded bytes
/// when they are not a module (so that several passes are made on any input too).
fn plan(out: &[u8]) -> Vec<Range<usize>> {
    let mut want = wanted_ranges(out, &|_| true);
    if want.is_empty() {
        let at = out.get(1).map_or(0, |&b| usize::from(b) * 1024);
        want.push(at..at + usize::from(out.first().copied().unwrap_or(0)) * 64);
    }
    want
}

/// The body of the decompression targets: `data` decoded as `format` in full, then sparsely,
/// the way the binary does; the two must agree.
pub fn decoder_target(format: Format, data: &[u8]) {
    DECODERS.with_borrow_mut(|d| {
        let _ = Format::detect(data);
        let announced = d.sparse_size(format, data);
        let full = d.decode(format, data).map(<[u8]>::to_vec);
        let size = match (&full, announced) {
            (Ok(out), _) => out.len(),
            (Err(_), Some(size)) => size,
            // Some size, to exercise the error paths of the sparse decoder.
            (Err(_), None) => data.len().saturating_mul(3).min(1 << 20),
        };
        // As Decoders::sparse_size: a zstd file of several frames is only decoded whole.
        let single_frame =
            zstd::zstd_safe::find_frame_compressed_size(data).is_ok_and(|n| n == data.len());
        if format == Format::Zstd && !single_frame {
            return;
        }
        let mut asked: Vec<Range<usize>> =
            vec![0..size.min(4096), size.saturating_sub(64 * 1024)..size];
        let sparse = d
            .decode_sparse(format, data, size, &mut |out: &[u8]| {
                let p = plan(out);
                asked.extend(p.iter().cloned());
                p
            })
            .map(|s| s.data);
        let Ok(full) = full else {
            // Sparse decoding reads the stream through a different path; it must not accept
            // what the full decoder refused.
            if let Ok(s) = &sparse {
                panic!(
                    "sparse decode accepted a stream the full decode refused ({} bytes)",
                    s.len()
                );
            }
            return;
        };
        let sparse = match sparse {
            Ok(s) => s,
            Err(e) if e.to_string().contains("still changing") => return,
            Err(e) => panic!("full decode gave {} bytes, sparse decode failed: {e}", full.len()),
        };
        assert_eq!(sparse.len(), full.len());
        let mut kept = vec![false; size];
        for r in &asked {
            let r = r.start.min(size)..r.end.min(size);
            if let Some(k) = kept.get_mut(r) {
                k.fill(true);
            }
        }
        for (i, ((&s, &f), &k)) in sparse.iter().zip(&full).zip(&kept).enumerate() {
            assert_eq!(s, if k { f } else { 0 }, "byte {i} of the sparse decode (kept: {k})");
        }
        assert_eq!(summary(&ModuleInfo::parse(&sparse)), summary(&ModuleInfo::parse(&full)));
    });
}
