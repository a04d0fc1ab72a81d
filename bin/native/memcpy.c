/*
 * memcpy for the static musl build on x86-64.
 *
 * musl's x86-64 memcpy starts every copy with `rep movsq`, whose start-up cost dominates the short
 * copies liblzma makes for each LZMA match (a few to a few dozen bytes): with it, xz decoding took
 * a quarter longer than with glibc. Linked before libc.a, this definition replaces musl's there.
 *
 * Short copies use overlapping unaligned word moves; longer ones 32-byte blocks; long ones
 * `rep movsb`, which CPUs with ERMSB (everything x86-64 of the last decade) run at full speed.
 * Built with -fno-builtin and -fno-tree-loop-distribute-patterns so the compiler cannot turn the
 * loops back into calls to memcpy.
 *
 * Only x86-64 replaces its C library's memcpy (build.rs defines DEPMOD_REPLACE_MEMCPY there):
 * musl's aarch64 memcpy is already assembly written for the short copies, and glibc picks one per
 * CPU. Everywhere else this file only provides depmod_portable_memcpy, the same copy without
 * `rep movsb` (32-byte blocks at any length), which the tests check on every architecture; on
 * x86-64 they check both.
 */
#include <stddef.h>
#include <stdint.h>

#include "words.h"

/* Up to 16 bytes: two overlapping moves of the widest size that fits. */
static inline void copy_short(unsigned char *d, const unsigned char *s, size_t n)
{
	if (n >= 8) {
		uint64_t a = load64(s), b = load64(s + n - 8);
		store64(d, a);
		store64(d + n - 8, b);
	} else if (n >= 4) {
		uint32_t a = load32(s), b = load32(s + n - 4);
		store32(d, a);
		store32(d + n - 4, b);
	} else if (n > 0) {
		unsigned char a = s[0], b = s[n / 2], c = s[n - 1];
		d[0] = a;
		d[n / 2] = b;
		d[n - 1] = c;
	}
}

/* More than 16 bytes: whole 32-byte blocks, then the last 32 bytes (overlapping what was copied). */
static inline void copy_blocks(unsigned char *d, const unsigned char *s, size_t n)
{
	uint64_t t0, t1, t2, t3;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		t0 = load64(s + i);
		t1 = load64(s + i + 8);
		t2 = load64(s + i + 16);
		t3 = load64(s + i + 24);
		store64(d + i, t0);
		store64(d + i + 8, t1);
		store64(d + i + 16, t2);
		store64(d + i + 24, t3);
	}
	if (i < n) {
		const unsigned char *ts = s + n - 16;
		unsigned char *td = d + n - 16;
		if (n - i > 16) {
			t0 = load64(s + i);
			t1 = load64(s + i + 8);
			store64(d + i, t0);
			store64(d + i + 8, t1);
		}
		t2 = load64(ts);
		t3 = load64(ts + 8);
		store64(td, t2);
		store64(td + 8, t3);
	}
}

/* The copy on any architecture. */
void *depmod_portable_memcpy(void *restrict dst, const void *restrict src, size_t n)
{
	if (n <= 16)
		copy_short(dst, src, n);
	else
		copy_blocks(dst, src, n);
	return dst;
}

#if defined(__x86_64__)
/* The copy on x86-64: `rep movsb` beyond 256 bytes. */
void *depmod_fast_memcpy(void *restrict dst, const void *restrict src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (n <= 16)
		copy_short(d, s, n);
	else if (n <= 256)
		copy_blocks(d, s, n);
	else
		__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return dst;
}

#ifdef DEPMOD_REPLACE_MEMCPY
void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
	return depmod_fast_memcpy(dst, src, n);
}

/*
 * musl's memcpy.o also defines the forward copy its memmove uses; defining it here too keeps
 * that object (and its second memcpy) out of the link. memmove calls it for overlapping
 * buffers with the destination first, which `rep movsb` handles: it copies forward, byte by byte
 * as far as the architecture is concerned.
 */
void *__memcpy_fwd(void *dst, const void *src, size_t n)
{
	void *ret = dst;
	__asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
	return ret;
}
#endif
#endif
