//! The tests of `native/`: the x86-64 copy that replaces musl's `memcpy` in the static build,
//! the portable copy every architecture compiles (`memcpy.c`), and the comparisons that replace
//! musl's `memcmp` and `bcmp` in every musl build (`memcmp.c`).

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    type Copy = unsafe extern "C" fn(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
    type Compare = unsafe extern "C" fn(l: *const u8, r: *const u8, n: usize) -> i32;

    unsafe extern "C" {
        fn depmod_portable_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        #[cfg(target_arch = "x86_64")]
        fn depmod_fast_memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
        fn depmod_memcmp(l: *const u8, r: *const u8, n: usize) -> i32;
        fn depmod_bcmp(l: *const u8, r: *const u8, n: usize) -> i32;
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

    /// `compare` of `l` and `r`, each copied to `at` bytes into its own buffer between guard
    /// bytes that differ from each other (a read past either end would be seen as a difference).
    fn compare_in_place(compare: Compare, l: &[u8], r: &[u8], at: (usize, usize)) -> i32 {
        let n = l.len();
        let mut lb = vec![0x11u8; n + 48];
        let mut rb = vec![0xEEu8; n + 48];
        lb[at.0..at.0 + n].copy_from_slice(l);
        rb[at.1..at.1 + n].copy_from_slice(r);
        // SAFETY: both ranges of n bytes are in bounds.
        unsafe { compare(lb.as_ptr().add(at.0), rb.as_ptr().add(at.1), n) }
    }

    /// Every length up to 160 (five 32-byte blocks and every tail), at several alignments, equal
    /// and then differing at every place by a byte above and below (0x80 and more among them:
    /// bytes compare as unsigned chars), against Rust's own comparison of the slices.
    #[test]
    fn comparisons_order_as_slices_do() {
        let base: Vec<u8> = (0..160u32).map(|i| (i * 13 + 5) as u8 | 0x40).collect();
        for n in 0..160 {
            let l = &base[..n];
            for at in [(0, 0), (1, 0), (3, 7), (8, 8), (5, 16)] {
                assert_eq!(compare_in_place(depmod_memcmp, l, l, at), 0, "memcmp n={n} {at:?}");
                assert_eq!(compare_in_place(depmod_bcmp, l, l, at), 0, "bcmp n={n} {at:?}");
                for i in 0..n {
                    for delta in [1u8, 0x7f, 0x80, 0xc0] {
                        let mut r = l.to_vec();
                        r[i] = r[i].wrapping_add(delta);
                        let m = compare_in_place(depmod_memcmp, l, &r, at);
                        let expected = l.cmp(&r[..]);
                        assert_eq!(m.cmp(&0), expected, "memcmp n={n} i={i} delta={delta}");
                        let m = compare_in_place(depmod_memcmp, &r, l, at);
                        assert_eq!(m.cmp(&0), expected.reverse(), "memcmp n={n} i={i} swapped");
                        let b = compare_in_place(depmod_bcmp, l, &r, at);
                        assert_ne!(b, 0, "bcmp n={n} i={i} delta={delta}");
                        // A second difference after the first does not change the order.
                        if i + 1 < n {
                            r[n - 1] = l[n - 1] ^ 0xff;
                            let m = compare_in_place(depmod_memcmp, l, &r, at);
                            let expected = l.cmp(&r[..]);
                            assert_ne!(expected, Ordering::Equal);
                            assert_eq!(m.cmp(&0), expected, "memcmp n={n} i={i} two differences");
                        }
                    }
                }
            }
        }
    }
}
