//! gzip, through zlib-rs (pure Rust) behind flate2's inflate: concatenated members, each with
//! its header and its CRC-32 and length checked, as `gzip -d` reads them.

use flate2::{Decompress, FlushDecompress, Status};

use super::Step;

/// A thread's gzip state.
#[derive(Default)]
pub struct Gzip {
    inflate: Option<Decompress>,
}

impl Gzip {
    /// Prepares for a new file.
    pub fn start(&mut self) {
        match &mut self.inflate {
            Some(d) => d.reset(true),
            None => self.inflate = Some(Decompress::new_gzip(15)),
        }
    }

    /// Decodes from `input`, the rest of the file, into `output`.
    pub fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, String> {
        let Some(inflate) = &mut self.inflate else { return Err("decoder not started".into()) };
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status =
            inflate.decompress(input, output, FlushDecompress::None).map_err(|e| e.to_string())?;
        let read = (inflate.total_in() - in_before) as usize;
        let written = (inflate.total_out() - out_before) as usize;
        let member_ended = status == Status::StreamEnd;
        if member_ended && read < input.len() {
            // Another member follows.
            inflate.reset(true);
        }
        Ok(Step { read, written, end: member_ended && read == input.len() })
    }
}

/// The uncompressed size the gzip trailer records (modulo 4 GiB).
pub fn recorded_size(input: &[u8]) -> Option<u64> {
    let trailer = input.get(input.len().checked_sub(4)?..)?;
    Some(u64::from(u32::from_le_bytes(trailer.try_into().ok()?)))
}
