//! Compressed modules: the format is taken from the magic bytes, as kmod does (the file name only
//! decides whether a file is a candidate). One [`Decoders`] per thread keeps its decoder state
//! and output buffer between files.
//!
//! Each format is one decoding step, `step(input, output) -> Step { read, written, end }`
//! ([`xz`], [`zstd`], [`gzip`]), which both readers drive: [`Decoders::decode`] into a whole
//! buffer, and [`Decoders::decode_sparse`], which keeps only the parts the parser reads of a
//! big module. zstd files whose first frame records its size are decoded as kmod 34.2 decodes
//! them instead, in one call ([`zstd::Zstd::decode_like_kmod`], which says why).
//!
//! The decoders are cargo features (`xz`, `zstd`, `gzip`, all on by default): a module in a
//! format left out is one [`DecodeError::NotBuiltIn`], and the build links no library for it.

use std::fmt;

#[cfg(feature = "gzip")]
mod gzip;
mod limits;
#[cfg(feature = "xz")]
mod xz;
#[cfg(feature = "zstd")]
mod zstd;

use depmod_core::read_plan::{RangeSet, StreamPlan};

pub use limits::Limits;

/// A module file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Not compressed (anything without a known magic).
    Raw,
    Xz,
    Zstd,
    Gzip,
}

impl Format {
    /// The format of a file starting with `head`, by kmod's magic numbers.
    pub fn detect(head: &[u8]) -> Format {
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else {
            Format::Raw
        }
    }

    /// The format's name, which is also the cargo feature of its decoder.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
        }
    }

    /// Whether this build can decode the format.
    pub fn is_built_in(self) -> bool {
        match self {
            Format::Raw => true,
            Format::Xz => cfg!(feature = "xz"),
            Format::Zstd => cfg!(feature = "zstd"),
            Format::Gzip => cfg!(feature = "gzip"),
        }
    }
}

/// A stream that could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Corrupt, truncated, or larger than [`MAX_OUTPUT`].
    Corrupt { format: Format, detail: String },
    /// This depmod was built without the format's decoder.
    NotBuiltIn(Format),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Corrupt { format, detail } => {
                write!(f, "corrupt {} stream: {detail}", format.name())
            }
            DecodeError::NotBuiltIn(format) => write!(
                f,
                "compressed with {0}, which this depmod cannot read: it was built without the \
                 \"{0}\" feature",
                format.name()
            ),
        }
    }
}

/// What one decoding step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub read: usize,
    /// Output bytes written.
    pub written: usize,
    /// The file's last stream ended, with all its input consumed.
    pub end: bool,
}

/// Decompressed modules larger than this are refused: no kernel module comes near it, and a
/// small bomb must not take the machine's memory.
const MAX_OUTPUT: usize = 1 << 30;

/// Output buffers larger than this are given back once the module they held is parsed.
const KEEP: usize = 1 << 20;

/// Held while a big module is decoded.
static BIG_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Size of the pieces the sparse reader decodes into.
const CHUNK: usize = 256 * 1024;

/// Passes [`Decoders::decode_sparse`] makes at most: the first, one keeping the parts the
/// parser reads (scanning the local symbols), one scanning them again with their names, one
/// for the sections CRC symbols point into, and one keeping the symbol table whole when a scan
/// failed.
const MAX_PASSES: usize = 6;

/// What [`Decoders::decode_sparse`] keeps of a stream, decided after each pass.
pub trait Plan {
    /// After a pass: sets `keep` to the ranges the next pass must keep, given the output so
    /// far (`out`, zero where nothing was kept; `kept` says what was), and returns the range
    /// whose bytes the next pass must show [`Plan::watch`] as they stream past. Nothing new to
    /// keep and nothing to watch ends the decode.
    fn next(
        &mut self,
        out: &[u8],
        kept: &dyn Fn(&Range) -> bool,
        keep: &mut Vec<Range>,
    ) -> Option<Range>;

    /// `piece`, the output at offset `at`, streaming past (`out`: the output so far).
    fn watch(&mut self, at: usize, piece: &[u8], out: &[u8]);
}

/// core's plan for a module decoded in passes.
impl Plan for StreamPlan {
    fn next(
        &mut self,
        out: &[u8],
        kept: &dyn Fn(&Range) -> bool,
        keep: &mut Vec<Range>,
    ) -> Option<Range> {
        StreamPlan::next(self, out, kept, keep)
    }

    fn watch(&mut self, at: usize, piece: &[u8], out: &[u8]) {
        self.feed(at, piece, out);
    }
}

/// A plan that keeps what a function of the output asks for, and watches nothing.
impl<F: FnMut(&[u8]) -> Vec<Range>> Plan for F {
    fn next(
        &mut self,
        out: &[u8],
        _: &dyn Fn(&Range) -> bool,
        keep: &mut Vec<Range>,
    ) -> Option<Range> {
        *keep = self(out);
        None
    }

    fn watch(&mut self, _: usize, _: &[u8], _: &[u8]) {}
}

/// A module decoded by [`Decoders::decode_sparse`].
#[derive(Debug)]
pub struct Sparse {
    /// The decompressed file, zero where nothing was kept.
    pub data: Vec<u8>,
    /// How many times the stream was decoded (in full or in part).
    pub passes: usize,
    /// How many bytes of `data` were kept.
    pub kept: usize,
}

/// A byte range of the decompressed file.
pub type Range = std::ops::Range<usize>;

/// The uncompressed size a stream announces, to size the output buffer exactly: the xz index,
/// the zstd frame header, the gzip trailer (modulo 4 GiB). Only a hint.
fn size_hint(format: Format, input: &[u8]) -> Option<usize> {
    let size: Option<u64> = match format {
        #[cfg(feature = "xz")]
        Format::Xz => xz::uncompressed_size(input),
        #[cfg(feature = "zstd")]
        Format::Zstd => zstd::content_size(input),
        #[cfg(feature = "gzip")]
        Format::Gzip => gzip::recorded_size(input),
        _ => {
            let _ = input;
            None
        }
    };
    usize::try_from(size?).ok().filter(|&s| s <= MAX_OUTPUT)
}

/// The decoders of the formats built in, each kept from one file to the next.
#[derive(Default)]
struct Steppers {
    #[cfg(feature = "xz")]
    xz: xz::XzDecoder,
    #[cfg(feature = "zstd")]
    zstd: zstd::Zstd,
    #[cfg(feature = "gzip")]
    gzip: gzip::Gzip,
}

impl Steppers {
    /// Prepares `format`'s decoder for a new file.
    fn start(&mut self, format: Format) -> Result<(), DecodeError> {
        let started: Result<(), String> = match format {
            #[cfg(feature = "xz")]
            Format::Xz => self.xz.start(),
            #[cfg(feature = "zstd")]
            Format::Zstd => self.zstd.start(),
            #[cfg(feature = "gzip")]
            Format::Gzip => {
                self.gzip.start();
                Ok(())
            }
            _ => Err(String::new()),
        };
        started.map_err(|detail| match format.is_built_in() {
            true => DecodeError::Corrupt { format, detail },
            false => DecodeError::NotBuiltIn(format),
        })
    }

    /// One step of `format`'s decoder from `input` (the rest of the file) into `output` (not
    /// empty). A step that makes no progress before the end is a truncated file.
    fn step(&mut self, format: Format, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        let step: Result<Step, String> = match format {
            #[cfg(feature = "xz")]
            Format::Xz => self.xz.step(input, output),
            #[cfg(feature = "zstd")]
            Format::Zstd => self.zstd.step(input, output),
            #[cfg(feature = "gzip")]
            Format::Gzip => self.gzip.step(input, output),
            _ => {
                let _ = (input, output);
                Err(DecodeError::NotBuiltIn(format).to_string())
            }
        };
        let step = step?;
        if !step.end && step.read == 0 && step.written == 0 {
            return Err("truncated".into());
        }
        Ok(step)
    }
}

/// Per-thread decoder state and output buffer.
pub struct Decoders {
    /// Which modules are decoded one at a time, or in passes.
    limits: Limits,
    steppers: Steppers,
    /// Output, zero-filled as far as decoders wrote into it; `used` says how much holds the file.
    out: Vec<u8>,
    used: usize,
    /// What the sparse reader decodes into.
    chunk: Vec<u8>,
}

impl Default for Decoders {
    /// Decoders with this machine's [`Limits`].
    fn default() -> Self {
        Decoders::with_limits(Limits::here())
    }
}

impl Decoders {
    /// Decoders with the given [`Limits`].
    pub fn with_limits(limits: Limits) -> Self {
        Decoders {
            limits,
            steppers: Steppers::default(),
            out: Vec::new(),
            used: 0,
            chunk: Vec::new(),
        }
    }

    /// Which modules are decoded one at a time, or in passes.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decompresses `input` (in `format`) into this thread's buffer and returns it.
    pub fn decode<'a>(
        &'a mut self,
        format: Format,
        input: &'a [u8],
    ) -> Result<&'a [u8], DecodeError> {
        if format == Format::Raw {
            return Ok(input);
        }
        if !format.is_built_in() {
            return Err(DecodeError::NotBuiltIn(format));
        }
        // A big module's buffer is not kept for the next one: peak memory is what matters on small
        // machines, and big modules are few.
        if self.out.capacity() > KEEP {
            self.out = Vec::new();
        }
        self.used = 0;
        let hint = size_hint(format, input);
        let _turn = match hint {
            Some(size) if size > self.limits.one_at_a_time => {
                Some(BIG_DECODE.lock().unwrap_or_else(|e| e.into_inner()))
            }
            _ => None,
        };
        let corrupt = |detail| DecodeError::Corrupt { format, detail };
        #[cfg(feature = "zstd")]
        if format == Format::Zstd {
            if let Some(n) =
                self.steppers.zstd.decode_like_kmod(input, &mut self.out).map_err(corrupt)?
            {
                self.used = n;
                return Ok(self.out.get(..n).unwrap_or_default());
            }
        }
        self.steppers.start(format)?;
        let mut read = 0;
        loop {
            let room = room(&mut self.out, self.used, hint).map_err(corrupt)?;
            let rest = input.get(read..).unwrap_or_default();
            let step = self.steppers.step(format, rest, room).map_err(corrupt)?;
            read += step.read;
            self.used += step.written;
            if step.end {
                return Ok(self.out.get(..self.used).unwrap_or_default());
            }
        }
    }

    /// The size `input` announces, if it is large enough for [`Decoders::decode_sparse`]. A zstd
    /// file of more than one frame is left to [`Decoders::decode`]: streamed, its frames would
    /// not be checked as kmod's one call checks them (against their recorded sizes).
    pub fn sparse_size(&self, format: Format, input: &[u8]) -> Option<usize> {
        #[cfg(feature = "zstd")]
        if format == Format::Zstd && !zstd::is_one_frame(input) {
            return None;
        }
        size_hint(format, input).filter(|&s| s > self.limits.sparse)
    }

    /// Decodes a big module keeping only what depmod reads: the stream is decoded in passes,
    /// each keeping the ranges `plan` asks for (given what is known so far) in a buffer of the
    /// announced `size` that is zero elsewhere, and showing `plan` the range it watches as it
    /// streams past, until `plan` asks for nothing new. The zero pages are never touched, so
    /// memory stays near the size of the kept parts.
    pub fn decode_sparse(
        &mut self,
        format: Format,
        input: &[u8],
        size: usize,
        plan: &mut dyn Plan,
    ) -> Result<Sparse, DecodeError> {
        let err = |detail: String| DecodeError::Corrupt { format, detail };
        let mut out = vec![0u8; size];
        let mut keep = RangeSet::default();
        let mut fresh = vec![0..size.min(4096), size.saturating_sub(64 * 1024)..size];
        let mut watch: Option<Range> = None;
        // The first pass decodes everything (and checks the stream's integrity); later ones stop
        // once the new ranges are filled and the watched one seen.
        let mut stop_at = usize::MAX;
        for pass in 0..MAX_PASSES {
            fresh.iter().for_each(|r| keep.insert(r.clone()));
            let total = self.pass(format, input, stop_at, &mut |at, piece| {
                for r in &fresh {
                    let (lo, hi) = (r.start.max(at), r.end.min(at + piece.len()));
                    if lo >= hi {
                        continue;
                    }
                    if let (Some(dst), Some(src)) =
                        (out.get_mut(lo..hi), piece.get(lo - at..hi - at))
                    {
                        dst.copy_from_slice(src);
                    }
                }
                if watch.as_ref().is_some_and(|w| w.start < at + piece.len() && at < w.end) {
                    plan.watch(at, piece, &out);
                }
            })?;
            if pass == 0 && total != size {
                return Err(err(format!("announces {size} bytes but holds {total}")));
            }
            let clip = |r: &Range| r.start.min(size)..r.end.min(size);
            watch = plan.next(&out, &|r| keep.covers(&clip(r)), &mut fresh).map(|r| clip(&r));
            fresh.iter_mut().for_each(|r| *r = clip(r));
            fresh.retain(|r| !keep.covers(r));
            if fresh.is_empty() && watch.is_none() {
                let kept = keep.ranges().iter().map(|r| r.len()).sum();
                return Ok(Sparse { data: out, passes: pass + 1, kept });
            }
            stop_at = fresh.iter().chain(&watch).map(|r| r.end).max().unwrap_or(size);
        }
        Err(err(format!("the parts to keep were still changing after {MAX_PASSES} passes")))
    }

    /// One pass of the sparse reader: decodes `input`, handing each piece to `sink` with its
    /// offset, until the end or until `stop_at` bytes are out; returns how many bytes came out.
    fn pass(
        &mut self,
        format: Format,
        input: &[u8],
        stop_at: usize,
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<usize, DecodeError> {
        let corrupt = |detail| DecodeError::Corrupt { format, detail };
        self.chunk.resize(CHUNK, 0);
        self.steppers.start(format)?;
        let (mut read, mut total) = (0, 0);
        loop {
            let rest = input.get(read..).unwrap_or_default();
            let step = self.steppers.step(format, rest, &mut self.chunk).map_err(corrupt)?;
            read += step.read;
            sink(total, self.chunk.get(..step.written).unwrap_or_default());
            total += step.written;
            if total > MAX_OUTPUT {
                return Err(corrupt(too_large()));
            }
            if step.end || total >= stop_at {
                return Ok(total);
            }
        }
    }
}

/// The free part of `out` after its first `used` bytes, grown by doubling when it is full;
/// refuses to grow past [`MAX_OUTPUT`]. The `hint` only reserves capacity: a stream's announced
/// size is not trusted with memory (a 20-byte file can announce 1 GiB), the buffer is
/// zero-filled only as far as the output actually reaches.
fn room(out: &mut Vec<u8>, used: usize, hint: Option<usize>) -> Result<&mut [u8], String> {
    if used == out.len() {
        if used >= MAX_OUTPUT {
            return Err(too_large());
        }
        if let Some(h) = hint {
            out.reserve_exact(h.saturating_sub(out.len()));
        }
        let mut want = (out.len() * 2).max(64 * 1024);
        if out.capacity() > out.len() {
            want = want.min(out.capacity());
        }
        out.resize(want.min(MAX_OUTPUT + 1), 0);
    }
    Ok(out.get_mut(used..).unwrap_or_default())
}

fn too_large() -> String {
    format!("decompresses to more than {MAX_OUTPUT} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    /// The formats this build decodes.
    fn built_in() -> impl Iterator<Item = Format> {
        [Format::Xz, Format::Zstd, Format::Gzip].into_iter().filter(|f| f.is_built_in())
    }

    /// `data` compressed as the kernel's build compresses modules (the liblzma encoder is a
    /// dev-dependency: xz inputs can be made in any build).
    fn compress(format: Format, data: &[u8]) -> Vec<u8> {
        match format {
            Format::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            #[cfg(feature = "zstd")]
            Format::Zstd => ::zstd::bulk::compress(data, 3).unwrap(),
            #[cfg(feature = "gzip")]
            Format::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => unreachable!("no {format:?} encoder in this build"),
        }
    }

    #[test]
    fn detects_kmods_magics() {
        assert_eq!(Format::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(Format::detect(b"\xfd7zXZ\0rest"), Format::Xz);
        assert_eq!(Format::detect(b"\xfd7zXZ"), Format::Raw);
        assert_eq!(Format::detect(&[0x1f, 0x8b, 8]), Format::Gzip);
        assert_eq!(Format::detect(b"\x7fELF"), Format::Raw);
    }

    #[test]
    fn round_trips_and_reuse() {
        let data = sample();
        let inputs: Vec<(Format, Vec<u8>)> = built_in().map(|f| (f, compress(f, &data))).collect();
        let mut d = Decoders::default();
        for _ in 0..2 {
            for (format, input) in &inputs {
                assert_eq!(d.decode(*format, input).unwrap(), &data[..], "{format:?}");
            }
            assert_eq!(d.decode(Format::Raw, b"abc").unwrap(), b"abc");
        }
    }

    #[test]
    fn concatenated_streams_are_one_file() {
        let mut d = Decoders::default();
        for format in built_in() {
            let two = [compress(format, b"module"), compress(format, b" two")].concat();
            if format == Format::Zstd {
                // kmod's one call into the size the first frame records refuses more.
                assert!(d.decode(format, &two).is_err());
                continue;
            }
            assert_eq!(d.decode(format, &two).unwrap(), b"module two", "{format:?}");
            let junk = [compress(format, b"module"), b"junk".to_vec()].concat();
            assert!(d.decode(format, &junk).is_err(), "{format:?}");
        }
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let data = sample();
        let mut d = Decoders::default();
        for format in built_in() {
            let good = compress(format, &data);
            let n = good.len();
            let cut = d.decode(format, &good[..n / 2]).unwrap_err();
            assert!(matches!(cut, DecodeError::Corrupt { format: f, .. } if f == format));
            // The stored checks: xz's index and footer, gzip's CRC-32 trailer, zstd's end.
            let mut bad = good.clone();
            let at = match format {
                Format::Xz => n - 20,
                Format::Gzip => n - 6,
                _ => n - 1,
            };
            bad[at] ^= 0xff;
            assert!(d.decode(format, &bad).is_err(), "{format:?}");
            // Still usable afterwards.
            assert_eq!(d.decode(format, &good).unwrap(), &data[..]);
        }
        #[cfg(feature = "xz")]
        {
            let x = compress(Format::Xz, &data);
            let err = d.decode(Format::Xz, &x[..x.len() / 2]).unwrap_err();
            assert_eq!(err.to_string(), "corrupt xz stream: truncated");
        }
    }

    #[test]
    fn sparse_decoding_keeps_only_what_is_asked() {
        let data = sample();
        let mut d = Decoders::default();
        for format in built_in() {
            let input = compress(format, &data);
            let mut passes = 0;
            let sparse = d
                .decode_sparse(format, &input, data.len(), &mut |_: &[u8]| {
                    passes += 1;
                    vec![300_000..300_100, 500_000..700_000]
                })
                .unwrap();
            assert_eq!((passes, sparse.passes), (2, 2));
            assert_eq!(sparse.kept, 4096 + 100 + 200_000 + 64 * 1024);
            let out = sparse.data;
            assert_eq!(out.len(), data.len());
            assert_eq!(&out[..4096], &data[..4096]);
            assert_eq!(&out[300_000..300_100], &data[300_000..300_100]);
            assert_eq!(&out[500_000..700_000], &data[500_000..700_000]);
            assert!(out[10_000..290_000].iter().all(|&b| b == 0));
            let tail = data.len() - 64 * 1024;
            assert_eq!(&out[tail..], &data[tail..]);
            // A wrong announced size is an error, not a silent mismatch.
            let wrong = d.decode_sparse(format, &input, data.len() + 1, &mut |_: &[u8]| vec![]);
            assert!(wrong.is_err(), "{format:?}");
        }
    }

    #[test]
    fn size_hints() {
        let data = sample();
        for format in built_in() {
            assert_eq!(size_hint(format, &compress(format, &data)), Some(data.len()));
        }
        assert_eq!(size_hint(Format::Xz, b"garbage"), None);
        assert_eq!(size_hint(Format::Raw, b"garbage"), None);
    }

    /// Found by fuzzing: tiny streams announcing 1 GiB (in the xz index, the zstd frame header,
    /// the gzip trailer) had that much zero-filled, about a second and 1 GiB of memory each,
    /// before the decoder found them corrupt. The inputs are in fuzz/regressions/.
    #[test]
    fn announced_sizes_cost_no_memory() {
        let inputs: [(Format, &[u8]); 4] = [
            (Format::Gzip, b"\x1f\x8b\x08\0\0\0\0\0\0\x03garbage\0\0\0\x40"),
            (Format::Zstd, b"\x28\xb5\x2f\xfd\xa4\0\0\0\x40\0\0\0"),
            // One RLE block: the frame's own size is right, so it is decoded in one call.
            (Format::Zstd, b"\x28\xb5\x2f\xfd\xa0\0\0\0\x40\x0b\0\0x"),
            (
                Format::Xz,
                b"\xfd7zXZ\0\0\x04\xe6\xd6\xb4\x46\0\x01\x10\x80\x80\x80\x80\x04\x3d\x97\xe7\x41\
                  \xb1\xc4\x67\xfb\x02\0\0\0\0\x04YZ",
            ),
        ];
        let mut d = Decoders::default();
        for (format, input) in inputs.iter().filter(|(f, _)| f.is_built_in()) {
            assert_eq!(size_hint(*format, input), Some(1 << 30), "{format:?}");
            assert!(d.decode(*format, input).is_err(), "{format:?}");
            // Only what a decoder wrote into was zero-filled, hence touched.
            assert!(d.out.len() <= 64 * 1024, "{format:?}: {} bytes filled", d.out.len());
        }
        // The buffer reserved for an announced size is not kept for the next file.
        #[cfg(all(feature = "gzip", feature = "zstd"))]
        {
            assert!(d.decode(Format::Gzip, inputs[0].1).is_err());
            let zst = ::zstd::bulk::compress(b"small", 3).unwrap();
            assert_eq!(d.decode(Format::Zstd, &zst).unwrap(), b"small");
            assert!(d.out.capacity() <= KEEP);
        }
    }

    /// Found by fuzzing (fuzz/regressions/zstd/frame-sizes-wrong): two frames each recording
    /// more than they hold were decoded (streamed) where kmod 34.2's one call refuses them, and
    /// where a stream decoder with a larger output buffer refused them too. kmod 34.2 also
    /// refuses frames without a recorded size ("zstd: Failed to determine decompression size");
    /// this depmod streams those (a documented difference).
    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_is_decoded_as_kmod_does() {
        let mut d = Decoders::default();
        let wrong_sizes = b"\x28\xb5\x2f\xfd\xa0\x0e\x5a\x02\0\x20\0\0\0\x0a\xa0\x0e\x5a\x02\x01\
            \x20\0\0\0\x01\0\0\x28\xb5\x2f\xfd\xa0\x0e\x5a\x02\x01\x20\0\0\0\0\xa0\x0e\x5a\x02\
            \x01\x20\0\0\0\x01\0\0";
        assert!(d.decode(Format::Zstd, wrong_sizes).is_err());
        assert_eq!(d.sparse_size(Format::Zstd, wrong_sizes), None);
        // Without a recorded size (as `zstd` writes from a pipe).
        let mut e = ::zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(b"module").unwrap();
        let piped = e.finish().unwrap();
        assert!(matches!(::zstd::zstd_safe::get_frame_content_size(&piped), Ok(None)));
        assert_eq!(d.decode(Format::Zstd, &piped).unwrap(), b"module");
        let piped_two = [piped.clone(), ::zstd::bulk::compress(b" two", 3).unwrap()].concat();
        assert_eq!(d.decode(Format::Zstd, &piped_two).unwrap(), b"module two");
        let cut = d.decode(Format::Zstd, &piped[..piped.len() - 1]).unwrap_err();
        assert_eq!(cut.to_string(), "corrupt zstd stream: truncated");
        // A recorded size of 0 is refused, as kmod refuses it.
        let zero = ::zstd::bulk::compress(b"", 3).unwrap();
        assert!(matches!(::zstd::zstd_safe::get_frame_content_size(&zero), Ok(Some(0))));
        let err = d.decode(Format::Zstd, &zero).unwrap_err();
        assert_eq!(err.to_string(), "corrupt zstd stream: Failed to determine decompression size");
        // Two frames: more than the first one announces is refused, an empty second one is not.
        let one = ::zstd::bulk::compress(b"hello", 3).unwrap();
        let two = [one.clone(), ::zstd::bulk::compress(b"world", 3).unwrap()].concat();
        assert!(d.decode(Format::Zstd, &two).is_err());
        let empty = [one, ::zstd::bulk::compress(b"", 3).unwrap()].concat();
        assert_eq!(d.decode(Format::Zstd, &empty).unwrap(), b"hello");
    }

    /// A format left out of the build is named, with the feature that would read it, before
    /// anything is decoded; every format reports whether it is built in.
    #[test]
    fn formats_left_out_are_named() {
        let message = DecodeError::NotBuiltIn(Format::Zstd).to_string();
        assert_eq!(
            message,
            "compressed with zstd, which this depmod cannot read: it was built without the \
             \"zstd\" feature"
        );
        let magic: [(Format, &[u8]); 3] = [
            (Format::Xz, b"\xfd7zXZ\0more"),
            (Format::Zstd, b"\x28\xb5\x2f\xfd\0more"),
            (Format::Gzip, b"\x1f\x8b\x08more"),
        ];
        let mut d = Decoders::default();
        for (format, input) in magic {
            assert_eq!(Format::detect(input), format);
            let err = d.decode(format, input).unwrap_err();
            if format.is_built_in() {
                assert!(matches!(err, DecodeError::Corrupt { .. }), "{format:?}: {err}");
            } else {
                assert_eq!(err, DecodeError::NotBuiltIn(format));
            }
        }
    }
}
