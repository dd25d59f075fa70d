/*
 * realloc: growth of many buffers at once, as when building strings and vectors.
 * NBUF buffers grow in an interleaved order (so a block rarely has free space
 * right behind it), each in one of two styles:
 *  - string: realloc to the exact new length on every append of 1..64 bytes;
 *  - vector: append 8..64 bytes, doubling the capacity when full.
 * Each buffer grows to a target length (log-uniform 64 B..256 KiB, one in 64 up
 * to 2 MiB); then its contents are checked, it is freed and a new one starts.
 *
 * usage: realloc SCALE
 * Exercises: in-place growth, size-class promotion, the small->large transition,
 * mremap of big blocks, and copying costs.
 */
#include "common.h"

#define NBUF 256
#define APPENDS 1500000ULL

typedef struct {
    unsigned char *p;
    size_t len, cap, target;
    uint64_t seed;
    int vector;
} buf_t;

static void start(buf_t *b, rng_t *r, uint64_t seed) {
    b->p = NULL;
    b->len = b->cap = 0;
    b->target = rng_below(r, 64) == 0 ? rng_log_range(r, 256 * 1024, 2 * 1024 * 1024)
                                      : rng_log_range(r, 64, 256 * 1024);
    b->seed = seed;
    b->vector = (int)rng_below(r, 2);
}

static inline unsigned char byte_at(uint64_t seed, size_t i) {
    return (unsigned char)(seed * 0x9e37 + i * 13 + (i >> 8));
}

static uint64_t finish_buf(buf_t *b) {
    uint64_t s = 0;
    /* check every 61st byte and the last one */
    for (size_t i = 0; i < b->len; i += 61) s += b->p[i] == byte_at(b->seed, i) ? b->p[i] : 100000;
    if (b->len > 0 && b->p[b->len - 1] != byte_at(b->seed, b->len - 1)) {
        atomic_fetch_add(&g_corrupt, 1);
        s += 0xbad;
    }
    free(b->p);
    return mix64(s ^ ((uint64_t)b->len << 32) ^ b->seed);
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    uint64_t appends = APPENDS * (uint64_t)scale;
    rng_t r = rng_seed(5);
    buf_t *bufs = xcalloc(NBUF, sizeof(buf_t));
    uint64_t seed = 0, sum = 0;
    for (size_t k = 0; k < NBUF; k++) start(&bufs[k], &r, ++seed);

    for (uint64_t i = 0; i < appends; i++) {
        buf_t *b = &bufs[rng_below(&r, NBUF)];
        size_t add = b->vector ? 8 * rng_range(&r, 1, 8) : rng_range(&r, 1, 64);
        size_t newlen = b->len + add;
        if (b->vector) {
            if (newlen > b->cap) {
                size_t cap = b->cap == 0 ? 64 : b->cap * 2;
                while (cap < newlen) cap *= 2;
                b->p = xrealloc(b->p, cap);
                b->cap = cap;
            }
        } else {
            b->p = xrealloc(b->p, newlen);
            b->cap = newlen;
        }
        for (size_t j = b->len; j < newlen; j++) b->p[j] = byte_at(b->seed, j);
        b->len = newlen;
        if (b->len >= b->target) {
            sum += finish_buf(b);
            start(b, &r, ++seed);
        }
    }
    for (size_t k = 0; k < NBUF; k++) sum += finish_buf(&bufs[k]);
    free(bufs);
    return finish(sum, appends);
}
