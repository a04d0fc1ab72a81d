/*
 * Unaligned loads and stores of 4- and 8-byte words in native byte order, for memcpy.c and
 * memcmp.c. __builtin_memcpy of a constant size compiles to one move, also with -fno-builtin.
 */
#ifndef DEPMOD_WORDS_H
#define DEPMOD_WORDS_H

#include <stdint.h>

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t v;
	__builtin_memcpy(&v, p, 8);
	return v;
}

static inline void store64(unsigned char *p, uint64_t v)
{
	__builtin_memcpy(p, &v, 8);
}

static inline uint32_t load32(const unsigned char *p)
{
	uint32_t v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

static inline void store32(unsigned char *p, uint32_t v)
{
	__builtin_memcpy(p, &v, 4);
}

#endif
