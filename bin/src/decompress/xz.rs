//! xz, through liblzma (C, built in statically): a decoder reused from one file to the next,
//! and the uncompressed size an xz file records.
//!
//! liblzma keeps a stream's coder, and its 1 MiB LZMA2 dictionary, when the same `lzma_stream`
//! is initialised again for the next file. The `liblzma` crate only makes new streams, so with
//! it every module paid for a fresh dictionary: with musl's allocator an mmap, page faults and
//! an munmap that interrupts the other CPUs, per module. This wrapper keeps one stream per
//! thread; it is the only place that calls liblzma directly.

use liblzma_sys as sys;

use super::Step;

/// An xz stream decoder that survives from one file to the next.
pub struct XzDecoder {
    raw: sys::lzma_stream,
    /// `raw` holds a coder that `lzma_end` must free.
    initialised: bool,
}

impl XzDecoder {
    /// A decoder with nothing allocated yet.
    pub fn new() -> Self {
        // SAFETY: an all-zero lzma_stream is LZMA_STREAM_INIT, the documented initial state.
        XzDecoder { raw: unsafe { std::mem::zeroed() }, initialised: false }
    }

    /// Prepares for a new file (concatenated .xz streams, no memory limit), keeping the memory
    /// of the previous one.
    pub fn start(&mut self) -> Result<(), String> {
        // SAFETY: `raw` is either LZMA_STREAM_INIT or a stream liblzma initialised; liblzma
        // reuses or frees its coder in both cases.
        let ret =
            unsafe { sys::lzma_stream_decoder(&mut self.raw, u64::MAX, sys::LZMA_CONCATENATED) };
        self.initialised = true;
        match ret {
            sys::LZMA_OK => Ok(()),
            other => Err(message(other).into()),
        }
    }

    /// Decodes from `input`, the rest of the file, into `output`.
    pub fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        self.raw.next_in = input.as_ptr();
        self.raw.avail_in = input.len();
        self.raw.next_out = output.as_mut_ptr();
        self.raw.avail_out = output.len();
        // SAFETY: the pointers and lengths describe live buffers that outlive the call, and
        // liblzma writes only within `output`. LZMA_FINISH: all the file's input is given.
        let ret = unsafe { sys::lzma_code(&mut self.raw, sys::LZMA_FINISH) };
        let step = Step {
            read: input.len() - self.raw.avail_in,
            written: output.len() - self.raw.avail_out,
            end: ret == sys::LZMA_STREAM_END,
        };
        self.raw.next_in = std::ptr::null();
        self.raw.next_out = std::ptr::null_mut();
        match ret {
            // A call that can make no progress returns LZMA_OK, then LZMA_BUF_ERROR: the
            // caller's check for a step without progress reports the truncation.
            sys::LZMA_OK | sys::LZMA_STREAM_END | sys::LZMA_BUF_ERROR => Ok(step),
            other => Err(message(other).into()),
        }
    }
}

impl Default for XzDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for XzDecoder {
    fn drop(&mut self) {
        if self.initialised {
            // SAFETY: `raw` was initialised by liblzma and is not used afterwards.
            unsafe { sys::lzma_end(&mut self.raw) }
        }
    }
}

/// liblzma's meaning of a return code.
fn message(ret: sys::lzma_ret) -> &'static str {
    match ret {
        sys::LZMA_MEM_ERROR => "out of memory",
        sys::LZMA_FORMAT_ERROR => "not in the .xz format",
        sys::LZMA_OPTIONS_ERROR => "unsupported options",
        sys::LZMA_DATA_ERROR => "compressed data is corrupt",
        sys::LZMA_PROG_ERROR => "decoder misused",
        _ => "decoder error",
    }
}

/// The total uncompressed size recorded in the index of the last xz stream in `input`.
pub fn uncompressed_size(input: &[u8]) -> Option<u64> {
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
