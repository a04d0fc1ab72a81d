//! Compressed modules: the format is taken from the magic bytes, as kmod does (the file name only
//! decides whether a file is a candidate). One [`Decoders`] per thread keeps its decoder state
//! and output buffer between files.
//!
//! Decoders (measured on the 4,229 `.ko.xz` modules of Debian's 6.12 kernel, see the README):
//! liblzma (C, built in statically) for xz, libzstd (C) for zstd, zlib-rs (pure Rust) through
//! flate2 for gzip.

use std::fmt;
use std::io::Read;

use crate::xz::XzDecoder;

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

    fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
        }
    }
}

/// A stream that could not be decompressed.
#[derive(Debug)]
pub struct DecodeError {
    pub format: Format,
    pub detail: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt {} stream: {}", self.format.name(), self.detail)
    }
}

/// Decompressed modules larger than this are refused: no kernel module comes near it, and a
/// small bomb must not take the machine's memory.
const MAX_OUTPUT: usize = 1 << 30;

/// Modules that decompress to more than this (amdgpu: 28 MiB) are decoded one at a time, and the
/// buffer that held one is given back afterwards, so peak memory stays near one big module.
const BIG: usize = 8 << 20;

/// Output buffers larger than this are given back once the module they held is parsed.
const KEEP: usize = 1 << 20;

/// Held while a big module is decoded.
static BIG_DECODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The uncompressed size a stream announces, to size the output buffer exactly: the xz index,
/// the zstd frame header, the gzip trailer (modulo 4 GiB). Only a hint.
fn size_hint(format: Format, input: &[u8]) -> Option<usize> {
    let size = match format {
        Format::Raw => return None,
        Format::Xz => xz_uncompressed_size(input)?,
        Format::Zstd => zstd::zstd_safe::get_frame_content_size(input).ok().flatten()?,
        Format::Gzip => u64::from(u32::from_le_bytes(
            input.get(input.len().checked_sub(4)?..)?.try_into().ok()?,
        )),
    };
    usize::try_from(size).ok().filter(|&s| s <= MAX_OUTPUT)
}

/// The total uncompressed size recorded in the index of the last xz stream in `input`.
fn xz_uncompressed_size(input: &[u8]) -> Option<u64> {
    let footer = input.get(input.len().checked_sub(12)?..)?;
    if footer.get(10..12)? != b"YZ" {
        return None;
    }
    let backward = u32::from_le_bytes(footer.get(4..8)?.try_into().ok()?);
    let index_size = (u64::from(backward) + 1) * 4;
    let start = input.len().checked_sub(12)?.checked_sub(usize::try_from(index_size).ok()?)?;
    let index = input.get(start..input.len() - 12)?;
    let mut at = 1; // the index indicator, 0x00
    if index.first() != Some(&0) {
        return None;
    }
    let mut vli = || -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..63).step_by(7) {
            let byte = *index.get(at)?;
            at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    };
    let records = vli()?;
    let mut total = 0u64;
    for _ in 0..records.min(1 << 20) {
        let _unpadded = vli()?;
        total = total.checked_add(vli()?)?;
    }
    Some(total)
}

/// Per-thread decoder state and output buffer.
#[derive(Default)]
pub struct Decoders {
    xz: XzDecoder,
    /// For zstd files: decoded in one call, straight into the output.
    zstd_whole: Option<zstd::zstd_safe::DCtx<'static>>,
    /// For the passes of [`Decoders::decode_sparse`] over a zstd file: streamed.
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
    /// Output, zero-filled as far as decoders wrote into it; `used` says how much holds the file.
    out: Vec<u8>,
    used: usize,
    /// Scratch for streamed decoding.
    chunk: Vec<u8>,
}

/// Size of the pieces streamed decoding hands out.
const CHUNK: usize = 256 * 1024;

/// Modules announcing more than this are decoded by [`Decoders::decode_sparse`].
pub const SPARSE: usize = 16 << 20;

/// A byte range of the decompressed file.
pub type Range = std::ops::Range<usize>;

impl Decoders {
    /// Decompresses `input` (in `format`) into this thread's buffer and returns it.
    pub fn decode<'a>(
        &'a mut self,
        format: Format,
        input: &'a [u8],
    ) -> Result<&'a [u8], DecodeError> {
        if format == Format::Raw {
            return Ok(input);
        }
        // A big module's buffer is not kept for the next one: peak memory is what matters on small
        // machines, and big modules are few.
        if self.out.capacity() > KEEP {
            self.out = Vec::new();
        }
        self.used = 0;
        let hint = size_hint(format, input);
        let _turn = match hint {
            Some(size) if size > BIG => Some(BIG_DECODE.lock().unwrap_or_else(|e| e.into_inner())),
            _ => None,
        };
        let result = match format {
            Format::Raw => Ok(()),
            Format::Xz => self.xz(input, hint),
            Format::Zstd => self.zstd(input),
            Format::Gzip => self.gzip(input, hint),
        };
        result.map_err(|detail| DecodeError { format, detail })?;
        Ok(self.out.get(..self.used).unwrap_or_default())
    }

    /// The size `input` announces, if it is large enough for [`Decoders::decode_sparse`]. A zstd
    /// file of more than one frame is left to [`Decoders::decode`]: streamed, its frames would
    /// not be checked as kmod's one call checks them (against their recorded sizes).
    pub fn sparse_size(format: Format, input: &[u8]) -> Option<usize> {
        if format == Format::Zstd
            && zstd::zstd_safe::find_frame_compressed_size(input).ok() != Some(input.len())
        {
            return None;
        }
        size_hint(format, input).filter(|&s| s > SPARSE)
    }

    /// Decodes a big module keeping only what depmod reads: the stream is decoded in passes,
    /// each keeping the ranges `plan` asks for (given what is known so far) in a buffer of the
    /// announced `size` that is zero elsewhere, until `plan` asks for nothing new. The zero
    /// pages are never touched, so memory stays near the size of the kept parts.
    pub fn decode_sparse(
        &mut self,
        format: Format,
        input: &[u8],
        size: usize,
        plan: &mut dyn FnMut(&[u8]) -> Vec<Range>,
    ) -> Result<Vec<u8>, DecodeError> {
        let err = |detail: String| DecodeError { format, detail };
        let mut out = vec![0u8; size];
        let mut keep: Vec<Range> = vec![0..size.min(4096), size.saturating_sub(64 * 1024)..size];
        // The first pass decodes everything (and checks the stream's integrity); later ones stop
        // once the new ranges are filled.
        let mut fresh = keep.clone();
        let mut stop_at = usize::MAX;
        for pass in 0..4 {
            let total = self
                .stream(format, input, stop_at, &mut |at, chunk| {
                    for r in &fresh {
                        let (lo, hi) = (r.start.max(at), r.end.min(at + chunk.len()));
                        if lo < hi {
                            if let (Some(dst), Some(src)) =
                                (out.get_mut(lo..hi), chunk.get(lo - at..hi - at))
                            {
                                dst.copy_from_slice(src);
                            }
                        }
                    }
                })
                .map_err(err)?;
            if pass == 0 && total != size {
                return Err(err(format!("announces {size} bytes but holds {total}")));
            }
            fresh = plan(&out)
                .into_iter()
                .map(|r| r.start.min(size)..r.end.min(size))
                .filter(|r| !keep.iter().any(|k| k.start <= r.start && r.end <= k.end))
                .collect();
            if fresh.is_empty() {
                return Ok(out);
            }
            stop_at = fresh.iter().map(|r| r.end).max().unwrap_or(size);
            keep.extend(fresh.iter().cloned());
        }
        Err(err("the parts to keep were still changing after 4 passes".into()))
    }

    /// Decodes `input`, handing each piece to `sink` with its offset, until the end or until
    /// `stop_at` bytes are out; returns how many bytes came out.
    fn stream(
        &mut self,
        format: Format,
        input: &[u8],
        stop_at: usize,
        sink: &mut dyn FnMut(usize, &[u8]),
    ) -> Result<usize, String> {
        self.chunk.resize(CHUNK, 0);
        let chunk = &mut self.chunk[..];
        let mut total = 0usize;
        let mut emit = |piece: &[u8], total: &mut usize| -> Result<(), String> {
            sink(*total, piece);
            *total += piece.len();
            if *total > MAX_OUTPUT {
                return Err(format!("decompresses to more than {MAX_OUTPUT} bytes"));
            }
            Ok(())
        };
        match format {
            Format::Raw => emit(input, &mut total)?,
            Format::Xz => {
                let xz = &mut self.xz;
                xz.reset()?;
                let mut read = 0;
                loop {
                    let step = xz.decode(input.get(read..).unwrap_or_default(), chunk)?;
                    read += step.read;
                    emit(chunk.get(..step.written).unwrap_or_default(), &mut total)?;
                    if step.end || total >= stop_at {
                        break;
                    }
                }
            }
            Format::Zstd => {
                use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
                let decoder = match &mut self.zstd {
                    Some(d) => d,
                    None => self
                        .zstd
                        .insert(zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?),
                };
                decoder.reinit().map_err(|e| e.to_string())?;
                let mut inbuf = InBuffer::around(input);
                loop {
                    let mut outbuf = OutBuffer::around(&mut *chunk);
                    let remaining =
                        decoder.run(&mut inbuf, &mut outbuf).map_err(|e| e.to_string())?;
                    let made = outbuf.pos();
                    emit(chunk.get(..made).unwrap_or_default(), &mut total)?;
                    if (remaining == 0 && inbuf.pos() == input.len()) || total >= stop_at {
                        break;
                    }
                    if made == 0 && inbuf.pos() == input.len() {
                        return Err("truncated".into());
                    }
                }
            }
            Format::Gzip => {
                let mut decoder = flate2::read::MultiGzDecoder::new(input);
                loop {
                    let made = decoder.read(chunk).map_err(|e| e.to_string())?;
                    if made == 0 {
                        break;
                    }
                    emit(chunk.get(..made).unwrap_or_default(), &mut total)?;
                    if total >= stop_at {
                        break;
                    }
                }
            }
        }
        Ok(total)
    }

    /// The free part of the output buffer, grown by doubling when it is full; refuses to grow
    /// past [`MAX_OUTPUT`]. The `hint` only reserves capacity: a stream's announced size is
    /// not trusted with memory (a 20-byte file can announce 1 GiB), the buffer is zero-filled
    /// only as far as the output actually reaches.
    fn room(&mut self, hint: Option<usize>) -> Result<&mut [u8], String> {
        if self.used == self.out.len() {
            if self.used >= MAX_OUTPUT {
                return Err(format!("decompresses to more than {MAX_OUTPUT} bytes"));
            }
            if let Some(h) = hint {
                self.out.reserve_exact(h.saturating_sub(self.out.len()));
            }
            let mut want = (self.out.len() * 2).max(64 * 1024);
            if self.out.capacity() > self.out.len() {
                want = want.min(self.out.capacity());
            }
            self.out.resize(want.min(MAX_OUTPUT + 1), 0);
        }
        Ok(self.out.get_mut(self.used..).unwrap_or_default())
    }

    fn xz(&mut self, input: &[u8], hint: Option<usize>) -> Result<(), String> {
        let mut xz = std::mem::take(&mut self.xz);
        let result = (|| {
            xz.reset()?;
            let mut read = 0;
            loop {
                let rest = input.get(read..).unwrap_or_default();
                let step = xz.decode(rest, self.room(hint)?)?;
                read += step.read;
                self.used += step.written;
                if step.end {
                    return Ok(());
                }
            }
        })();
        self.xz = xz;
        result
    }

    fn zstd(&mut self, input: &[u8]) -> Result<(), String> {
        // As kmod 34.2 does when the first frame records its size: the whole input (later frames
        // included) is decoded in one call into that many bytes. A stream decoder would also take
        // frames whose content differs from their recorded size, and more output than the first
        // frame announces; kmod refuses both. One call also needs no window buffers (with
        // zstd -19, 8 MiB). A first frame without a recorded size (`zstd` reading a pipe) is
        // valid zstd that the kernel itself loads; kmod cannot decode it, this depmod streams it.
        let size = match zstd::zstd_safe::get_frame_content_size(input) {
            Ok(Some(size)) if size > 0 => size,
            Ok(None) => return self.zstd_stream(input),
            _ => return Err("Failed to determine decompression size".into()),
        };
        let size = usize::try_from(size).ok().filter(|&s| s <= MAX_OUTPUT);
        let size = size.ok_or_else(|| format!("decompresses to more than {MAX_OUTPUT} bytes"))?;
        let dctx = self.zstd_whole.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        // Into the spare capacity, never zero-filled: the announced size may be a lie.
        self.out.clear();
        self.out.reserve_exact(size);
        let n = dctx
            .decompress(&mut self.out, input)
            .map_err(|code| zstd::zstd_safe::get_error_name(code).to_string())?;
        // The first frame holds exactly `size` bytes (libzstd checks), so more is what kmod's
        // buffer of `size` bytes could not take.
        if n != size {
            return Err(format!("announces {size} bytes but holds {n}"));
        }
        self.used = n;
        Ok(())
    }

    /// Streams a zstd file whose first frame does not record its size, growing the output.
    fn zstd_stream(&mut self, input: &[u8]) -> Result<(), String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut decoder = match self.zstd.take() {
            Some(d) => d,
            None => zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?,
        };
        let result = (|| {
            decoder.reinit().map_err(|e| e.to_string())?;
            let mut inbuf = InBuffer::around(input);
            loop {
                let room = self.room(None)?;
                let mut outbuf = OutBuffer::around(room);
                let remaining = decoder.run(&mut inbuf, &mut outbuf).map_err(|e| e.to_string())?;
                let (wrote, full) = (outbuf.pos(), outbuf.pos() == outbuf.capacity());
                self.used += wrote;
                if remaining == 0 && inbuf.pos() == input.len() {
                    return Ok(());
                }
                if wrote == 0 && inbuf.pos() == input.len() && !full {
                    return Err("truncated".to_string());
                }
            }
        })();
        self.zstd = Some(decoder);
        result
    }

    fn gzip(&mut self, input: &[u8], hint: Option<usize>) -> Result<(), String> {
        let mut decoder = flate2::read::MultiGzDecoder::new(input);
        loop {
            let n = decoder.read(self.room(hint)?).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            self.used += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sparse_decoding_keeps_only_what_is_asked() {
        let data = sample();
        let mut d = Decoders::default();
        let inputs =
            [(Format::Xz, xz(&data)), (Format::Zstd, zstd::bulk::compress(&data, 3).unwrap())];
        for (format, input) in inputs {
            let mut passes = 0;
            let out = d
                .decode_sparse(format, &input, data.len(), &mut |_| {
                    passes += 1;
                    vec![300_000..300_100, 500_000..700_000]
                })
                .unwrap();
            assert_eq!(passes, 2);
            assert_eq!(out.len(), data.len());
            assert_eq!(&out[..4096], &data[..4096]);
            assert_eq!(&out[300_000..300_100], &data[300_000..300_100]);
            assert_eq!(&out[500_000..700_000], &data[500_000..700_000]);
            assert!(out[10_000..290_000].iter().all(|&b| b == 0));
            let tail = data.len() - 64 * 1024;
            assert_eq!(&out[tail..], &data[tail..]);
        }
        // A wrong announced size is an error, not a silent mismatch.
        assert!(d.decode_sparse(Format::Xz, &xz(&data), data.len() + 1, &mut |_| vec![]).is_err());
    }

    #[test]
    fn size_hints() {
        let data = sample();
        assert_eq!(size_hint(Format::Xz, &xz(&data)), Some(data.len()));
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(size_hint(Format::Zstd, &z), Some(data.len()));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        assert_eq!(size_hint(Format::Gzip, &gz.finish().unwrap()), Some(data.len()));
        assert_eq!(size_hint(Format::Xz, b"garbage"), None);
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
        for (format, input) in inputs {
            assert_eq!(size_hint(format, input), Some(1 << 30), "{format:?}");
            assert!(d.decode(format, input).is_err(), "{format:?}");
            // Only what a decoder wrote into was zero-filled, hence touched.
            assert!(d.out.len() <= 64 * 1024, "{format:?}: {} bytes filled", d.out.len());
        }
        // The buffer reserved for an announced size is not kept for the next file.
        assert!(d.decode(Format::Gzip, inputs[0].1).is_err());
        let zst = zstd::bulk::compress(b"small", 3).unwrap();
        assert_eq!(d.decode(Format::Zstd, &zst).unwrap(), b"small");
        assert!(d.out.capacity() <= KEEP);
    }

    /// Found by fuzzing (fuzz/regressions/zstd/frame-sizes-wrong): two frames each recording
    /// more than they hold were decoded (streamed) where kmod 34.2's one call refuses them, and
    /// where a stream decoder with a larger output buffer refused them too. kmod 34.2 also
    /// refuses frames without a recorded size ("zstd: Failed to determine decompression size");
    /// this depmod streams those (a documented difference).
    #[test]
    fn zstd_is_decoded_as_kmod_does() {
        let mut d = Decoders::default();
        let wrong_sizes = b"\x28\xb5\x2f\xfd\xa0\x0e\x5a\x02\0\x20\0\0\0\x0a\xa0\x0e\x5a\x02\x01\
            \x20\0\0\0\x01\0\0\x28\xb5\x2f\xfd\xa0\x0e\x5a\x02\x01\x20\0\0\0\0\xa0\x0e\x5a\x02\
            \x01\x20\0\0\0\x01\0\0";
        assert!(d.decode(Format::Zstd, wrong_sizes).is_err());
        assert_eq!(Decoders::sparse_size(Format::Zstd, wrong_sizes), None);
        // Without a recorded size (as `zstd` writes from a pipe).
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(b"module").unwrap();
        let piped = e.finish().unwrap();
        assert!(matches!(zstd::zstd_safe::get_frame_content_size(&piped), Ok(None)));
        assert_eq!(d.decode(Format::Zstd, &piped).unwrap(), b"module");
        let piped_two = [piped.clone(), zstd::bulk::compress(b" two", 3).unwrap()].concat();
        assert_eq!(d.decode(Format::Zstd, &piped_two).unwrap(), b"module two");
        assert!(d.decode(Format::Zstd, &piped[..piped.len() - 1]).is_err());
        // A recorded size of 0 is refused, as kmod refuses it.
        let zero = zstd::bulk::compress(b"", 3).unwrap();
        assert!(matches!(zstd::zstd_safe::get_frame_content_size(&zero), Ok(Some(0))));
        let err = d.decode(Format::Zstd, &zero).unwrap_err();
        assert_eq!(err.detail, "Failed to determine decompression size");
        // Two frames: more than the first one announces is refused, an empty second one is not.
        let one = zstd::bulk::compress(b"hello", 3).unwrap();
        let two = [one.clone(), zstd::bulk::compress(b"world", 3).unwrap()].concat();
        assert!(d.decode(Format::Zstd, &two).is_err());
        let empty = [one, zstd::bulk::compress(b"", 3).unwrap()].concat();
        assert_eq!(d.decode(Format::Zstd, &empty).unwrap(), b"hello");
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
        let zst = zstd::bulk::compress(&data, 3).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut d = Decoders::default();
        for _ in 0..2 {
            assert_eq!(d.decode(Format::Xz, &xz(&data)).unwrap(), &data[..]);
            assert_eq!(d.decode(Format::Zstd, &zst).unwrap(), &data[..]);
            assert_eq!(d.decode(Format::Gzip, &gz).unwrap(), &data[..]);
            assert_eq!(d.decode(Format::Raw, b"abc").unwrap(), b"abc");
        }
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let data = sample();
        let mut d = Decoders::default();
        let x = xz(&data);
        assert!(d.decode(Format::Xz, &x[..x.len() / 2]).is_err());
        let mut bad = x.clone();
        let n = bad.len();
        bad[n - 20] ^= 0xff; // inside the index/footer checks
        assert!(d.decode(Format::Xz, &bad).is_err());
        let z = zstd::bulk::compress(&data, 3).unwrap();
        assert!(d.decode(Format::Zstd, &z[..z.len() / 2]).is_err());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let mut g = gz.finish().unwrap();
        let n = g.len();
        g[n - 6] ^= 0xff; // the CRC32 trailer
        assert!(d.decode(Format::Gzip, &g).is_err());
        assert!(d.decode(Format::Gzip, &g[..n / 2]).is_err());
        // Still usable afterwards.
        assert_eq!(d.decode(Format::Zstd, &z).unwrap(), &data[..]);
    }
}
