//! depmod.d parsing and priority rules (core/src/config.rs), and the ERE matcher
//! (core/src/ere.rs) on fuzzed patterns and texts. The first line of the input is a kernel
//! release and a pattern, the rest a depmod.d file.
#![no_main]

use depmod_core::config::{Candidate, Config, kernel_matches};
use depmod_core::ere::Regex;
use libfuzzer_sys::fuzz_target;

const KERNELS: [&[u8]; 3] = [b"6.1.0-56-amd64", b"4.4.4", b""];

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    // The matcher, on the head as a pattern against real-looking releases and the body's first
    // line. Kernel releases are at most 64 bytes (uname's field); texts are cut at 256, as the
    // matcher's time grows with the square of the text's length or more, which would only slow
    // the fuzzing down.
    let text = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let text = &text[..text.len().min(256)];
    if let Ok(re) = Regex::new(head) {
        for t in KERNELS.iter().copied().chain([text]) {
            let hit = re.is_match(t);
            // A pattern of plain characters matches where it occurs.
            if head.iter().all(u8::is_ascii_alphanumeric) {
                assert_eq!(hit, head.is_empty() || t.windows(head.len()).any(|w| w == head));
            }
        }
    }
    for k in KERNELS {
        let _ = kernel_matches(head, k);
    }

    let mut config = Config::default();
    let mut last = 0;
    config.parse(body, &head[..head.len().min(256)], |n| {
        let line = match n {
            depmod_core::config::ConfigNotice::BadLine { line, .. }
            | depmod_core::config::ConfigNotice::NotImplemented { line, .. }
            | depmod_core::config::ConfigNotice::OverrideMismatch { line, .. }
            | depmod_core::config::ConfigNotice::ExternalMismatch { line, .. } => line,
        };
        assert!(line > last, "notices in line order");
        last = line;
    });
    // The priority rules over paths the configuration names.
    let dir = b"/lib/modules/6.1".as_slice();
    let mut paths: Vec<Vec<u8>> = vec![b"/lib/modules/6.1/kernel/a/m.ko".to_vec()];
    for ov in &config.overrides {
        paths.push([dir, b"/", ov, b".ko"].concat());
    }
    for ext in &config.externals {
        paths.push([ext.as_slice(), b"/m.ko"].concat());
    }
    for s in &config.search {
        if let depmod_core::config::Search::Dir(d) = s {
            paths.push([dir, b"/", d, b"/m.ko"].concat());
        }
    }
    paths.truncate(16);
    for a in &paths {
        for b in &paths {
            let _ = config.old_wins(dir, cand(a), cand(b));
        }
    }
});

fn cand(path: &[u8]) -> Candidate<'_> {
    let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let name_len = base.iter().position(|&b| b == b'.').unwrap_or(base.len());
    Candidate { path, name_len }
}
