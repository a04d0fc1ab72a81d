//! How big a module must be to be decoded one at a time, or in passes keeping only what the
//! parser reads: sizes scaled to the memory the machine has free.
//!
//! Decoding a module whole takes its decompressed size; decoding it in passes takes only the
//! parts the parser reads, but costs one more decode of the stream (liblzma) or two. A machine
//! with memory to spare decodes whole every module up to 16 MiB (all but amdgpu in Debian's
//! trees), two at a time up to 8 MiB. A small board cannot: a 128 MiB riscv64 guest has 25 MiB
//! free when depmod starts, and the 8-16 MiB modules of its tree, each decoded whole beside
//! another, took it past that. Below [`FULL`] of available memory the sizes shrink in
//! proportion, down to an eighth.

/// The sizes that decide how a module is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Modules announcing more than this are decoded one at a time, and their buffer is given
    /// back afterwards.
    pub one_at_a_time: usize,
    /// Modules announcing more than this are decoded in passes
    /// ([`super::Decoders::decode_sparse`]).
    pub sparse: usize,
    /// A symbol table's local part this big or more is scanned as it streams past rather than
    /// kept, in a module decoded in passes (at the cost of one more pass when local symbols
    /// are named `__crc_*`).
    pub scan_locals: usize,
}

/// Available memory from which the sizes are [`Limits::DEFAULT`].
pub const FULL: u64 = 256 << 20;

impl Limits {
    /// The sizes on a machine with [`FULL`] available memory or more.
    pub const DEFAULT: Limits =
        Limits { one_at_a_time: 8 << 20, sparse: 16 << 20, scan_locals: 4 << 20 };

    /// The sizes for a machine with `available` bytes of memory (`None`: unknown, taken as
    /// plenty): [`Limits::DEFAULT`] from [`FULL`] on, in proportion below it, an eighth at
    /// least.
    pub fn for_available(available: Option<u64>) -> Limits {
        let eighths = available.map_or(8, |a| (a.saturating_mul(8) / FULL).clamp(1, 8));
        let part = |size: usize| size / 8 * eighths as usize;
        let d = Limits::DEFAULT;
        Limits {
            one_at_a_time: part(d.one_at_a_time),
            sparse: part(d.sparse),
            scan_locals: part(d.scan_locals),
        }
    }

    /// The sizes for this machine, from `MemAvailable` in `/proc/meminfo` when the run began.
    pub fn here() -> Limits {
        static HERE: std::sync::OnceLock<Limits> = std::sync::OnceLock::new();
        *HERE.get_or_init(|| {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            Limits::for_available(mem_available(&meminfo))
        })
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_shrink_with_memory_down_to_an_eighth() {
        assert_eq!(Limits::for_available(None), Limits::DEFAULT);
        assert_eq!(Limits::for_available(Some(24 << 30)), Limits::DEFAULT);
        assert_eq!(Limits::for_available(Some(FULL)), Limits::DEFAULT);
        let half = Limits { one_at_a_time: 4 << 20, sparse: 8 << 20, scan_locals: 2 << 20 };
        assert_eq!(Limits::for_available(Some(128 << 20)), half);
        // The 128 MiB riscv64 guest: 25 MiB available.
        let eighth = Limits { one_at_a_time: 1 << 20, sparse: 2 << 20, scan_locals: 512 << 10 };
        assert_eq!(Limits::for_available(Some(25 << 20)), eighth);
        assert_eq!(Limits::for_available(Some(0)), eighth);
    }

    #[test]
    fn reads_mem_available() {
        let meminfo = "MemTotal:          63168 kB\nMemFree:           30000 kB\n\
                       MemAvailable:      25684 kB\nBuffers:               0 kB\n";
        assert_eq!(mem_available(meminfo), Some(25684 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots\n"), None);
    }
}
