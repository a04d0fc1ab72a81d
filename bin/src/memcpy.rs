//! The tests of `native/memcpy.c`: the x86-64 copy that replaces musl's `memcpy` in the static
//! build, and the portable copy every architecture compiles.

#[cfg(test)]
mod tests {
    type Copy = unsafe extern "C" fn(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;

    unsafe extern "C" {
        fn depmod_portable_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        #[cfg(target_arch = "x86_64")]
        fn depmod_fast_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    }

    /// Every length up to 600 (all the code paths) at several alignments up to 16, against
    /// `copy_from_slice`, with guard bytes around the destination.
    fn copies_exactly(copy: Copy, name: &str) {
        let src: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..600 {
            for (so, dof) in [(0, 0), (1, 0), (0, 3), (5, 11), (15, 1), (8, 8)] {
                let mut dst = vec![0xAAu8; n + 64];
                // SAFETY: both ranges are in bounds and do not overlap.
                let ret = unsafe { copy(dst.as_mut_ptr().add(dof), src.as_ptr().add(so), n) };
                assert_eq!(ret, dst[dof..].as_mut_ptr());
                assert_eq!(&dst[dof..dof + n], &src[so..so + n], "{name}: n={n} so={so} do={dof}");
                assert!(dst[..dof].iter().all(|&b| b == 0xAA), "{name}: wrote before, n={n}");
                assert!(dst[dof + n..].iter().all(|&b| b == 0xAA), "{name}: wrote after, n={n}");
            }
        }
    }

    #[test]
    fn portable_copy_is_exact() {
        copies_exactly(depmod_portable_memcpy, "portable");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_copy_is_exact() {
        copies_exactly(depmod_fast_memcpy, "x86-64");
    }
}
