/*
 * Unaligned loads and stores of 4- and 8-byte words in native byte order, for memcpy.c and
 * memcmp.c: load32, store32, load64, store64. __builtin_memcpy of a constant size compiles to one
 * move, also with -fno-builtin.
 */
#ifndef DEPMOD_WORDS_H
#define DEPMOD_WORDS_H

#include <stdint.h>

#define DEPMOD_WORD(bits)                                                   \
	static inline uint##bits##_t load##bits(const unsigned char *p)     \
	{                                                                   \
		uint##bits##_t v;                                           \
		__builtin_memcpy(&v, p, sizeof v);                          \
		return v;                                                   \
	}                                                                   \
	static inline void store##bits(unsigned char *p, uint##bits##_t v) \
	{                                                                   \
		__builtin_memcpy(p, &v, sizeof v);                          \
	}

DEPMOD_WORD(32)
DEPMOD_WORD(64)

#undef DEPMOD_WORD

#endif
