/* The C test programs' pseudo-random numbers: xorshift64*, one state word per stream. */
#ifndef OXMALLOC_TEST_RNG_H
#define OXMALLOC_TEST_RNG_H

#include <stdint.h>

static inline uint64_t xs(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
