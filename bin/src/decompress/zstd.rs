//! zstd, through libzstd (C): the streaming step the sparse reader and frames without a
//! recorded size use, and the one-call decoding kmod 34.2 does.

use ::zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};
use ::zstd::zstd_safe::{self, DCtx};

use super::{MAX_OUTPUT, Step};

/// A thread's zstd state, reused from one file to the next.
#[derive(Default)]
pub struct Zstd {
    /// For [`Zstd::decode_like_kmod`]: one call, straight into the output.
    whole: Option<DCtx<'static>>,
    /// For [`Zstd::step`].
    stream: Option<Decoder<'static>>,
}

impl Zstd {
    /// Prepares the streaming decoder for a new file.
    pub fn start(&mut self) -> Result<(), String> {
        let decoder = match &mut self.stream {
            Some(d) => d,
            None => self.stream.insert(Decoder::new().map_err(|e| e.to_string())?),
        };
        decoder.reinit().map_err(|e| e.to_string())
    }

    /// Decodes from `input`, the rest of the file (later frames included), into `output`.
    pub fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        let Some(decoder) = &mut self.stream else { return Err("decoder not started".into()) };
        let mut inbuf = InBuffer::around(input);
        let mut outbuf = OutBuffer::around(output);
        let remaining = decoder.run(&mut inbuf, &mut outbuf).map_err(|e| e.to_string())?;
        let read = inbuf.pos();
        // A frame ended and no other one follows.
        let end = remaining == 0 && read == input.len();
        Ok(Step { read, written: outbuf.pos(), end })
    }

    /// Decodes `input` as kmod 34.2 does when its first frame records its size: the whole input
    /// (later frames included) in one call into that many bytes, written into `out`'s spare
    /// capacity. A stream decoder would also take frames whose content differs from their
    /// recorded size, and more output than the first frame announces; kmod refuses both. One
    /// call also needs no window buffers (with zstd -19, 8 MiB). `Ok(None)` when the first
    /// frame records no size (`zstd` reading a pipe): valid zstd that the kernel itself loads
    /// and kmod cannot decode; the caller streams it (a documented difference).
    pub fn decode_like_kmod(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Option<usize>, String> {
        let size = match zstd_safe::get_frame_content_size(input) {
            Ok(Some(size)) if size > 0 => size,
            Ok(None) => return Ok(None),
            _ => return Err("Failed to determine decompression size".into()),
        };
        let size = usize::try_from(size).ok().filter(|&s| s <= MAX_OUTPUT);
        let size = size.ok_or_else(|| format!("decompresses to more than {MAX_OUTPUT} bytes"))?;
        let dctx = self.whole.get_or_insert_with(DCtx::create);
        // Into the spare capacity, never zero-filled: the announced size may be a lie.
        out.clear();
        out.reserve_exact(size);
        let n = dctx
            .decompress(out, input)
            .map_err(|code| zstd_safe::get_error_name(code).to_string())?;
        // The first frame holds exactly `size` bytes (libzstd checks), so more is what kmod's
        // buffer of `size` bytes could not take.
        if n != size {
            return Err(format!("announces {size} bytes but holds {n}"));
        }
        Ok(Some(n))
    }
}

/// The size the first frame of `input` records.
pub fn content_size(input: &[u8]) -> Option<u64> {
    zstd_safe::get_frame_content_size(input).ok().flatten()
}

/// Whether `input` is a single frame (its frames are then all checked against their recorded
/// sizes however it is decoded).
pub fn is_one_frame(input: &[u8]) -> bool {
    zstd_safe::find_frame_compressed_size(input).ok() == Some(input.len())
}
