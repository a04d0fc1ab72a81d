/*
 * memcmp and bcmp for the static musl builds.
 *
 * musl's memcmp is a loop over single bytes on every architecture, and its bcmp calls it. Rust
 * compares byte slices with them (`==` calls bcmp, `cmp` memcmp): a re-run of the amd64 tree
 * compares each module path with its record's, and a run that writes indexes compares each new
 * one with the file in place (5 MB) and sorts paths and names. There musl's loop took a tenth to
 * a sixth of the instructions of a re-run (callgrind). Linked before libc.a, these definitions
 * replace musl's memcmp and bcmp there (both are in this one object, so neither of musl's is
 * pulled in beside it).
 *
 * Words are compared eight bytes at a time, as loaded from memory; only the first pair that
 * differs is put in big-endian order, where comparing the words as numbers compares their bytes
 * in memory order, as unsigned chars. The last word of a buffer that is not a whole number of
 * words is loaded from its end, overlapping bytes already found equal. Nothing outside the n
 * bytes is read. Built with -fno-builtin and -fno-tree-loop-distribute-patterns (build.rs) so
 * that the compiler cannot turn the loops back into calls to memcmp.
 *
 * Only musl builds replace their C library's (build.rs defines DEPMOD_REPLACE_MEMCMP there);
 * glibc picks its own per CPU. Everywhere, depmod_memcmp and depmod_bcmp are exported under
 * those names for the tests (`src/native.rs`), which check them on every architecture.
 */
#include <stddef.h>
#include <stdint.h>

#include "words.h"

/*
 * The order of two different words as loaded: that of their first differing byte in memory. Two
 * 32-bit words widened to 64 bits compare as they would as 32-bit words: on a little-endian CPU
 * their bytes end up in the high half, reversed, on a big-endian one in the low half, as they are.
 */
static inline int order64(uint64_t a, uint64_t b)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	a = __builtin_bswap64(a);
	b = __builtin_bswap64(b);
#endif
	return a < b ? -1 : 1;
}

/* Where the first 32-byte block that differs starts, or the bytes after the last whole block. */
static inline size_t equal_blocks(const unsigned char *l, const unsigned char *r, size_t n)
{
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		uint64_t x = (load64(l + i) ^ load64(r + i)) |
			     (load64(l + i + 8) ^ load64(r + i + 8)) |
			     (load64(l + i + 16) ^ load64(r + i + 16)) |
			     (load64(l + i + 24) ^ load64(r + i + 24));
		if (x != 0)
			break;
	}
	return i;
}

int depmod_memcmp(const void *vl, const void *vr, size_t n)
{
	const unsigned char *l = vl, *r = vr;
	if (n >= 8) {
		size_t i = equal_blocks(l, r, n);
		for (; i + 8 <= n; i += 8) {
			uint64_t a = load64(l + i), b = load64(r + i);
			if (a != b)
				return order64(a, b);
		}
		if (i < n) {
			uint64_t a = load64(l + n - 8), b = load64(r + n - 8);
			if (a != b)
				return order64(a, b);
		}
		return 0;
	}
	if (n >= 4) {
		uint32_t a = load32(l), b = load32(r);
		if (a != b)
			return order64(a, b);
		a = load32(l + n - 4);
		b = load32(r + n - 4);
		return a == b ? 0 : order64(a, b);
	}
	for (; n && *l == *r; n--, l++, r++)
		;
	return n ? *l - *r : 0;
}

/* Only whether the bytes differ: the words need no order. */
int depmod_bcmp(const void *vl, const void *vr, size_t n)
{
	const unsigned char *l = vl, *r = vr;
	if (n >= 8) {
		for (size_t i = equal_blocks(l, r, n); i + 8 <= n; i += 8) {
			if (load64(l + i) != load64(r + i))
				return 1;
		}
		return load64(l + n - 8) != load64(r + n - 8);
	}
	if (n >= 4)
		return ((load32(l) ^ load32(r)) | (load32(l + n - 4) ^ load32(r + n - 4))) != 0;
	for (; n && *l == *r; n--, l++, r++)
		;
	return n != 0;
}

#ifdef DEPMOD_REPLACE_MEMCMP
int memcmp(const void *l, const void *r, size_t n)
{
	return depmod_memcmp(l, r, n);
}

int bcmp(const void *l, const void *r, size_t n)
{
	return depmod_bcmp(l, r, n);
}
#endif
