/*
 * Shared helpers of the oxmalloc benchmark workloads (bench/workloads/NAME.c).
 *
 * Every workload is one small C program, compiled by `oxmalloc bench` with
 * `cc -O2 -pthread`, run once per (allocator, repetition) with the allocator
 * under test in LD_PRELOAD. Contract with the driver:
 *   argv[1]      scale: a positive integer, 1 for --quick, larger by default;
 *                the amount of work grows linearly with it.
 *   argv[2..]    workload-specific (e.g. the number of threads).
 *   stdout       `key=value` lines; `checksum=` is mandatory and must not depend
 *                on the allocator, on addresses or on thread scheduling, so that
 *                the driver can compare it with glibc's.
 *   exit code    0 on success; 3 when malloc returned NULL; 4 when a block's
 *                contents were found corrupted (the checksum differs as well).
 *
 * Objects are "stamped": a header with a tag and the size, the rest filled with a
 * byte derived from the tag. Freeing code checks the stamp first, so that an
 * allocator that hands out overlapping blocks is caught, and folds mix(tag, size)
 * into a commutative (wrapping add) checksum: the total does not depend on which
 * thread frees which block, or in which order.
 */
#ifndef OXBENCH_COMMON_H
#define OXBENCH_COMMON_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

typedef struct {
    uint64_t s;
} rng_t;

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline rng_t rng_seed(uint64_t seed) {
    rng_t r = {mix64(seed + 0x9e3779b97f4a7c15ULL)};
    return r;
}

/* splitmix64: fast, good enough, and one 64-bit word of state. */
static inline uint64_t rng_next(rng_t *r) {
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* Uniform in [0, n), n > 0 (the tiny modulo bias is irrelevant here). */
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return rng_next(r) % n; }

/* Uniform in [lo, hi]. */
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) {
    return lo + rng_below(r, hi - lo + 1);
}

/* Log-uniform in [lo, hi]: as many blocks in 64..128 as in 1024..2048. */
static inline uint64_t rng_log_range(rng_t *r, uint64_t lo, uint64_t hi) {
    int lb = 63 - __builtin_clzll(lo), hb = 63 - __builtin_clzll(hi);
    int b = lb + (int)rng_below(r, (uint64_t)(hb - lb + 1));
    uint64_t base = 1ULL << b;
    uint64_t v = base + rng_below(r, base);
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return v;
}

static inline long arg_long(int argc, char **argv, int i, long dflt) {
    if (argc <= i) return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v <= 0) {
        fprintf(stderr, "%s: bad argument %d: '%s' (a positive integer)\n", argv[0], i, argv[i]);
        exit(2);
    }
    return v;
}

static inline void die_oom(size_t size) {
    fprintf(stderr, "out of memory: malloc(%zu) returned NULL\n", size);
    exit(3);
}

static inline void *xmalloc(size_t size) {
    void *p = malloc(size);
    if (p == NULL) die_oom(size);
    return p;
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (p == NULL) die_oom(n * size);
    return p;
}

static inline void *xrealloc(void *old, size_t size) {
    void *p = realloc(old, size);
    if (p == NULL) die_oom(size);
    return p;
}

/* Number of corrupted blocks seen by this process (any thread). */
static atomic_ulong g_corrupt;

static inline unsigned char stamp_byte(uint64_t tag) { return (unsigned char)(tag * 31 + 7); }

/* Stamp a block of `size` >= 16 bytes: header (tag, size), fill byte everywhere else. */
static inline void obj_stamp(void *p, size_t size, uint64_t tag) {
    unsigned char *b = (unsigned char *)p;
    memset(b + 16, stamp_byte(tag), size - 16);
    uint64_t hdr[2] = {tag, (uint64_t)size};
    memcpy(b, hdr, sizeof hdr);
}

/* Check a stamped block; returns its checksum contribution (a penalty if corrupt). */
static inline uint64_t obj_check(const void *p) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t hdr[2];
    memcpy(hdr, b, sizeof hdr);
    uint64_t tag = hdr[0], size = hdr[1];
    int ok = size >= 16 && size < (1ULL << 32);
    if (ok && size > 16) {
        unsigned char c = stamp_byte(tag);
        ok = b[16] == c && b[size - 1] == c && b[16 + (size - 16) / 2] == c;
    }
    if (!ok) {
        atomic_fetch_add(&g_corrupt, 1);
        return 0xdeadbeefULL;
    }
    return mix64(tag ^ (size << 40));
}

/* Print the shared result lines; returns the process exit code. */
static inline int finish(uint64_t checksum, uint64_t ops) {
    unsigned long bad = atomic_load(&g_corrupt);
    printf("checksum=%016llx\n", (unsigned long long)checksum);
    printf("ops=%llu\n", (unsigned long long)ops);
    if (bad != 0) {
        printf("corrupt_blocks=%lu\n", bad);
        fprintf(stderr, "%lu corrupted block(s) detected\n", bad);
        return 4;
    }
    return 0;
}

static inline void xpthread_create(pthread_t *t, void *(*fn)(void *), void *arg) {
    int e = pthread_create(t, NULL, fn, arg);
    if (e != 0) {
        fprintf(stderr, "pthread_create failed: %s\n", strerror(e));
        exit(5);
    }
}

#endif
