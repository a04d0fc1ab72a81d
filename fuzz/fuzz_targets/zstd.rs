//! The binary's zstd decoding (bin/src/decompress/): full, then sparse, on arbitrary bytes.
#![no_main]

use depmod_fuzz::decoder_target;
use depmod_fuzz::decompress::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| decoder_target(Format::Zstd, data));
