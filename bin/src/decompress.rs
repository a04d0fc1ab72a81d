//! Compressed modules: the format is taken from the magic bytes, as kmod does (the file name only
//! decides whether a file is a candidate). One [`Decoders`] per thread keeps its decoder state
//! and output buffer between files.
//!
//! Decoders (measured on the 4,229 `.ko.xz` modules of Debian's 6.12 kernel, see the README):
//! liblzma (C, built in statically) for xz, libzstd (C) for zstd, zlib-rs (pure Rust) through
//! flate2 for gzip.

use std::fmt;
use std::io::Read;

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
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
    out: Vec<u8>,
}

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
        if self.out.capacity() > BIG {
            self.out = Vec::new();
        }
        self.out.clear();
        let hint = size_hint(format, input);
        if let Some(size) = hint {
            self.out.reserve_exact(size);
        }
        let _turn = match hint {
            Some(size) if size > BIG => Some(BIG_DECODE.lock().unwrap_or_else(|e| e.into_inner())),
            _ => None,
        };
        let result = match format {
            Format::Raw => Ok(()),
            Format::Xz => self.xz(input),
            Format::Zstd => self.zstd(input),
            Format::Gzip => self.gzip(input),
        };
        result.map_err(|detail| DecodeError { format, detail })?;
        Ok(&self.out)
    }

    /// Makes room for more output, refusing to grow past [`MAX_OUTPUT`].
    fn grow(&mut self, hint: usize) -> Result<(), String> {
        if self.out.len() >= MAX_OUTPUT {
            return Err(format!("decompresses to more than {MAX_OUTPUT} bytes"));
        }
        let want = hint.max(self.out.capacity()).max(64 * 1024);
        self.out.reserve(want.min(MAX_OUTPUT - self.out.len() + 1));
        Ok(())
    }

    fn xz(&mut self, input: &[u8]) -> Result<(), String> {
        use liblzma::stream::{Action, CONCATENATED, Status, Stream};
        let mut stream =
            Stream::new_stream_decoder(u64::MAX, CONCATENATED).map_err(|e| e.to_string())?;
        let mut consumed = 0usize;
        loop {
            if self.out.capacity() == self.out.len() {
                self.grow(input.len() * 4)?;
            }
            let before = stream.total_in();
            let rest = input.get(consumed..).unwrap_or_default();
            let status = stream.process_vec(rest, &mut self.out, Action::Finish);
            consumed += (stream.total_in() - before) as usize;
            match status {
                Ok(Status::StreamEnd) => return Ok(()),
                Ok(_) if self.out.len() < self.out.capacity() && consumed >= input.len() => {
                    return Err("truncated".into());
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    fn zstd(&mut self, input: &[u8]) -> Result<(), String> {
        let mut decoder = match self.zstd.take() {
            Some(d) => d,
            None => zstd::stream::raw::Decoder::new().map_err(|e| e.to_string())?,
        };
        let result = zstd_into(&mut decoder, input, &mut self.out);
        self.zstd = Some(decoder);
        result
    }

    fn gzip(&mut self, input: &[u8]) -> Result<(), String> {
        let mut decoder = flate2::read::MultiGzDecoder::new(input).take(MAX_OUTPUT as u64 + 1);
        decoder.read_to_end(&mut self.out).map_err(|e| e.to_string())?;
        if self.out.len() > MAX_OUTPUT {
            return Err(format!("decompresses to more than {MAX_OUTPUT} bytes"));
        }
        Ok(())
    }
}

/// Runs a (reused) zstd decoder over all frames of `input`, appending to `out`.
fn zstd_into(
    decoder: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
    decoder.reinit().map_err(|e| e.to_string())?;
    let mut inbuf = InBuffer::around(input);
    loop {
        if out.capacity() == out.len() {
            if out.len() >= MAX_OUTPUT {
                return Err(format!("decompresses to more than {MAX_OUTPUT} bytes"));
            }
            out.reserve((input.len() * 4).max(out.capacity()).max(64 * 1024));
        }
        let pos = out.len();
        let mut outbuf = OutBuffer::around_pos(out, pos);
        let remaining = decoder.run(&mut inbuf, &mut outbuf).map_err(|e| e.to_string())?;
        let wrote = outbuf.pos() - pos;
        let room_left = outbuf.pos() < outbuf.capacity();
        if remaining == 0 && inbuf.pos() == input.len() {
            return Ok(());
        }
        if wrote == 0 && inbuf.pos() == input.len() && room_left {
            return Err("truncated".into());
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
