/*
 * Table-driven conformance test of the whole glibc malloc API, as exported by
 * liboxmalloc.so (see src/exports.list). Run under LD_PRELOAD=liboxmalloc.so AND without
 * preload (glibc 2.36): every row describes glibc's documented behaviour, so both runs
 * must pass. Where glibc 2.36 has a known quirk that oxmalloc deliberately does not copy,
 * the row says so (IMPL_ROW) and checks each implementation against its own contract.
 *
 * Every check reports its own source line. Exit 0 iff no check failed.
 * Last line: "SUMMARY conformance impl=<impl> checks=N failed=N skipped=N".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* ---------------------------------------------------------------- harness */

static int n_checks, n_failed, n_skipped;
static const char *section = "?";

#define CHECK(cond, ...)                                                            \
    do {                                                                            \
        n_checks++;                                                                 \
        if (!(cond)) {                                                              \
            n_failed++;                                                             \
            printf("FAIL line %d [%s] %s: ", __LINE__, section, #cond);             \
            printf(__VA_ARGS__);                                                    \
            printf("\n");                                                           \
            fflush(stdout);                                                         \
        }                                                                           \
    } while (0)

/* A row that fails at a given (table) line rather than at the CHECK's own line. */
#define CHECK_AT(line, cond, ...)                                                   \
    do {                                                                            \
        n_checks++;                                                                 \
        if (!(cond)) {                                                              \
            n_failed++;                                                             \
            printf("FAIL line %d [%s] %s: ", (line), section, #cond);               \
            printf(__VA_ARGS__);                                                    \
            printf("\n");                                                           \
            fflush(stdout);                                                         \
        }                                                                           \
    } while (0)

#define SKIP(...)                                                                   \
    do {                                                                            \
        n_skipped++;                                                                \
        printf("SKIP line %d [%s]: ", __LINE__, section);                           \
        printf(__VA_ARGS__);                                                        \
        printf("\n");                                                               \
    } while (0)

enum impl { IMPL_GLIBC, IMPL_OXMALLOC, IMPL_OTHER };
static enum impl impl;
static const char *impl_name = "?";
static const char *malloc_file = "?";

#include "vcalls.h"

static size_t page;

static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static unsigned char pat(size_t i, unsigned seed) {
    return (unsigned char)(((i + seed) * 2654435761u) >> 13) ^ (unsigned char)(i >> 9);
}
static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++) c[i] = pat(i, seed);
}
/* Returns the first bad offset, or SIZE_MAX if intact. */
static size_t check_fill(const void *p, size_t n, unsigned seed) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pat(i, seed)) return i;
    return SIZE_MAX;
}
static size_t first_nonzero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return i;
    return SIZE_MAX;
}
static size_t next_pow2(size_t x) {
    size_t p = 1;
    while (p < x) p <<= 1;
    return p;
}
static size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
/* Alignment C11 requires of malloc(n): fundamental alignment for any object that fits. */
static size_t malloc_min_align(size_t n) {
    if (n >= 16) return 16;
    if (n >= 8) return 8;
    return 1;
}

static void *sym(const char *name) {
    void *p = dlsym(RTLD_DEFAULT, name);
    if (!p && strcmp(name, "cfree") == 0) /* glibc >= 2.26 keeps cfree as a compat symbol */
        p = dlvsym(RTLD_DEFAULT, name, "GLIBC_2.2.5");
    return p;
}

static void detect_impl(void) {
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    if (m && dladdr(m, &info) && info.dli_fname) malloc_file = info.dli_fname;
    if (strstr(malloc_file, "liboxmalloc")) {
        impl = IMPL_OXMALLOC;
        impl_name = "oxmalloc";
    } else if (strstr(malloc_file, "/libc.so") || strncmp(malloc_file, "libc.so", 7) == 0) {
        impl = IMPL_GLIBC;
        impl_name = "glibc";
    } else {
        impl = IMPL_OTHER;
        impl_name = "other";
    }
}

/* ---------------------------------------------------------------- malloc */

static void test_malloc(void) {
    section = "malloc";
    void *a = v_malloc(0), *b = v_malloc(0);
    CHECK(a != NULL, "malloc(0) returned NULL");
    CHECK(b != NULL, "malloc(0) returned NULL");
    CHECK(a != b, "two malloc(0) gave the same pointer %p", a);
    CHECK(is_aligned(a, 16) || impl == IMPL_OTHER, "malloc(0)=%p not 16-aligned", a);
    v_free(a);
    v_free(b);

    /* Many sizes: alignment, writability, usable size, no overlap between live blocks. */
    static const size_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65, 100, 127,
                                   128, 129, 255, 256, 257, 500, 512, 1000, 1024, 1025, 2000, 2048, 4000,
                                   4096, 4097, 8191, 8192, 10000, 16384, 32768, 65535, 65536, 100000,
                                   131071, 131072, 131073, 200000, 262144, 500000, 1 << 20, (1 << 20) + 1,
                                   3 << 20, 8 << 20, 32 << 20};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    void *blocks[NS];
    for (size_t i = 0; i < NS; i++) {
        size_t n = sizes[i];
        void *p = v_malloc(n);
        blocks[i] = p;
        CHECK(p != NULL, "malloc(%zu) returned NULL", n);
        if (!p) continue;
        CHECK(is_aligned(p, malloc_min_align(n)), "malloc(%zu)=%p not %zu-aligned", n, p, malloc_min_align(n));
        CHECK(v_usable(p) >= n, "malloc_usable_size(malloc(%zu)) = %zu", n, v_usable(p));
        fill(p, n, (unsigned)i);
    }
    for (size_t i = 0; i < NS; i++) {
        if (!blocks[i]) continue;
        size_t bad = check_fill(blocks[i], sizes[i], (unsigned)i);
        CHECK(bad == SIZE_MAX, "malloc(%zu) block corrupted at offset %zu", sizes[i], bad);
        for (size_t j = 0; j < NS; j++) {
            if (j == i || !blocks[j]) continue;
            uintptr_t a0 = (uintptr_t)blocks[i], a1 = a0 + sizes[i];
            uintptr_t b0 = (uintptr_t)blocks[j], b1 = b0 + sizes[j];
            CHECK(a1 <= b0 || b1 <= a0, "malloc blocks overlap: [%p,+%zu) and [%p,+%zu)", blocks[i], sizes[i],
                  blocks[j], sizes[j]);
        }
    }
    for (size_t i = 0; i < NS; i++) v_free(blocks[i]);

    /* Impossible sizes: NULL + ENOMEM, never an abort. */
    static const struct {
        int line;
        size_t n;
    } huge[] = {
        {__LINE__, SIZE_MAX},
        {__LINE__, SIZE_MAX - 15},
        {__LINE__, SIZE_MAX - 4095},
        {__LINE__, (size_t)PTRDIFF_MAX + 1},
        {__LINE__, (size_t)PTRDIFF_MAX},
        {__LINE__, (size_t)1 << 62},
        {__LINE__, (size_t)1 << 47},
        {__LINE__, (size_t)1 << 46},
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = v_malloc(huge[i].n);
        int e = errno;
        CHECK_AT(huge[i].line, p == NULL && e == ENOMEM, "malloc(%#zx) = %p, errno %d (want NULL, ENOMEM=%d)",
                 huge[i].n, p, e, ENOMEM);
        if (p) v_free(p);
    }
    /* The heap still works after failed requests. */
    void *p = v_malloc(1000);
    CHECK(p != NULL, "malloc(1000) after failed huge requests returned NULL");
    if (p) {
        fill(p, 1000, 77);
        CHECK(check_fill(p, 1000, 77) == SIZE_MAX, "block corrupted");
    }
    v_free(p);
}

/* ---------------------------------------------------------------- free */

static void test_free(void) {
    section = "free";
    errno = 4321;
    v_free(NULL);
    CHECK(errno == 4321, "free(NULL) changed errno to %d", errno);

    /* free preserves errno, for every kind of block. */
    static const struct {
        int line;
        size_t n;
        size_t align; /* 0: malloc */
    } rows[] = {
        {__LINE__, 0, 0},           {__LINE__, 8, 0},          {__LINE__, 100, 0},
        {__LINE__, 4096, 0},        {__LINE__, 100000, 0},     {__LINE__, 200000, 0},
        {__LINE__, 1 << 20, 0},     {__LINE__, 16 << 20, 0},   {__LINE__, 100, 64},
        {__LINE__, 5000, 4096},     {__LINE__, 300000, 65536}, {__LINE__, 1 << 20, 2 << 20},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        void *q = rows[i].align ? v_memalign(rows[i].align, rows[i].n) : v_malloc(rows[i].n);
        CHECK_AT(rows[i].line, q != NULL, "allocation of %zu (align %zu) failed", rows[i].n, rows[i].align);
        if (q) memset(q, 0x5a, rows[i].n);
        errno = 1234;
        v_free(q);
        CHECK_AT(rows[i].line, errno == 1234, "free of a %zu-byte block (align %zu) set errno to %d", rows[i].n,
                 rows[i].align, errno);
    }
    errno = 1234;
    v_free(NULL);
    CHECK(errno == 1234, "free(NULL) set errno to %d", errno);

    /* Many frees of many sizes (heap trimming, unmapping) all keep errno. */
    void *ps[64];
    for (int i = 0; i < 64; i++) {
        ps[i] = v_malloc((size_t)(i + 1) * 37 * 1024);
        if (ps[i]) memset(ps[i], i, (size_t)(i + 1) * 37 * 1024);
    }
    int bad = 0;
    for (int i = 0; i < 64; i++) {
        errno = 1234;
        v_free(ps[i]);
        if (errno != 1234) bad++;
    }
    CHECK(bad == 0, "%d of 64 frees of 37KiB..2.3MiB blocks changed errno", bad);

    /* A live block whose first bytes equal what a free block holds is still live:
     * usable, reallocatable, freeable once (no "double free"). A program comes by such
     * bytes without misuse: realloc copies the first bytes of a block the program never
     * wrote, and a block carved where freed blocks lay holds what the allocator left
     * there. Here they are read from blocks just freed (their memory stays mapped: the
     * allocator keeps small blocks), and stored in live blocks of the same size, next
     * to them. */
    enum { NFREED = 64 };
    void *freed[NFREED], *live[NFREED];
    static const size_t fsz[] = {16, 64, 200, 1000, 3000};
    for (size_t k = 0; k < sizeof fsz / sizeof fsz[0]; k++) {
        for (int i = 0; i < NFREED; i++) {
            freed[i] = v_malloc(fsz[k]);
            live[i] = v_malloc(fsz[k]);
        }
        for (int i = 0; i < NFREED; i++) v_free(freed[i]);
        int lost = 0;
        for (int i = 0; i < NFREED; i++) {
            if (!freed[i] || !live[i]) continue;
            unsigned char *d = live[i];
            fill(d, fsz[k], (unsigned)i);
            memcpy(d, freed[(i + 1) % NFREED], 16); /* a free block's first 16 bytes */
            if (v_usable(d) < fsz[k]) lost++;
            d = v_realloc(d, fsz[k] * 2);
            if (!d) {
                lost++;
                continue;
            }
            live[i] = d;
            int intact = 1;
            for (size_t j = 16; j < fsz[k]; j++) intact &= d[j] == pat(j, (unsigned)i);
            if (!intact) lost++;
        }
        CHECK(lost == 0, "%d of %d %zu-byte blocks holding a free block's first bytes misbehaved", lost, NFREED,
              fsz[k]);
        for (int i = 0; i < NFREED; i++) v_free(live[i]);
    }
}

/* ---------------------------------------------------------------- calloc */

static void test_calloc(void) {
    section = "calloc";
    static const struct {
        int line;
        size_t n, m;
    } overflow[] = {
        {__LINE__, SIZE_MAX / 2 + 1, 4},
        {__LINE__, 4, SIZE_MAX / 2 + 1},
        {__LINE__, SIZE_MAX, SIZE_MAX},
        {__LINE__, (size_t)1 << 32, (size_t)1 << 32},
        {__LINE__, SIZE_MAX, 2},
        {__LINE__, 1, SIZE_MAX},
        {__LINE__, SIZE_MAX, 1},
        {__LINE__, (size_t)1 << 40, (size_t)1 << 10}, /* no overflow, but 1 PiB */
        {__LINE__, (size_t)PTRDIFF_MAX / 8 + 1, 8},
    };
    for (size_t i = 0; i < sizeof overflow / sizeof overflow[0]; i++) {
        errno = 0;
        void *p = v_calloc(overflow[i].n, overflow[i].m);
        int e = errno;
        CHECK_AT(overflow[i].line, p == NULL && e == ENOMEM, "calloc(%#zx, %#zx) = %p, errno %d (want NULL, ENOMEM)",
                 overflow[i].n, overflow[i].m, p, e);
        if (p) v_free(p);
    }
    static const struct {
        int line;
        size_t n, m;
    } zero[] = {{__LINE__, 0, 0}, {__LINE__, 0, 16}, {__LINE__, 16, 0}, {__LINE__, 0, SIZE_MAX}, {__LINE__, SIZE_MAX, 0}};
    void *zp[5];
    for (size_t i = 0; i < 5; i++) {
        zp[i] = v_calloc(zero[i].n, zero[i].m);
        CHECK_AT(zero[i].line, zp[i] != NULL, "calloc(%#zx, %#zx) returned NULL (glibc returns a unique pointer)",
                 zero[i].n, zero[i].m);
    }
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++)
            CHECK(zp[i] != zp[j] || !zp[i], "calloc zero-size rows %zu and %zu gave the same pointer", i, j);
    for (size_t i = 0; i < 5; i++) v_free(zp[i]);

    /* Zeroed even when recycling dirty memory of the same size. */
    static const size_t sizes[] = {1,      8,      16,     24,     40,      64,      100,      128,     500,
                                   1000,   1024,   2000,   4096,   8000,    10000,   32768,    65536,   100000,
                                   131072, 135000, 140000, 200000, 262144,  500000,  1 << 20,  3 << 20, (4 << 20) + 5};
    enum { NS = sizeof sizes / sizeof sizes[0], REPS = 8 };
    for (size_t i = 0; i < NS; i++) {
        size_t n = sizes[i];
        int bad_rows = 0;
        size_t bad_off = 0;
        for (int rep = 0; rep < 4; rep++) {
            /* one at a time */
            void *d = v_malloc(n);
            if (!d) {
                bad_rows++;
                continue;
            }
            memset(d, 0xA5, v_usable(d));
            v_free(d);
            void *c = (rep & 1) ? v_calloc(1, n) : v_calloc(n, 1);
            if (!c) {
                bad_rows++;
                continue;
            }
            size_t off = first_nonzero(c, n);
            if (off != SIZE_MAX) {
                bad_rows++;
                bad_off = off;
            }
            memset(c, 0x5A, n);
            v_free(c);
        }
        /* batch: dirty REPS blocks, free them all, calloc REPS blocks */
        void *ds[REPS];
        for (int r = 0; r < REPS; r++) {
            ds[r] = v_malloc(n);
            if (ds[r]) memset(ds[r], 0xC3, v_usable(ds[r]));
        }
        for (int r = 0; r < REPS; r++) v_free(ds[r]);
        for (int r = 0; r < REPS; r++) {
            ds[r] = (n % 8 == 0 && n >= 8) ? v_calloc(n / 8, 8) : v_calloc(1, n);
            CHECK(ds[r] != NULL, "calloc of %zu bytes returned NULL", n);
            if (!ds[r]) continue;
            size_t off = first_nonzero(ds[r], n);
            if (off != SIZE_MAX) {
                bad_rows++;
                bad_off = off;
            }
            memset(ds[r], 0x3C, n);
        }
        for (int r = 0; r < REPS; r++) v_free(ds[r]);
        CHECK(bad_rows == 0, "calloc(%zu): %d allocations not zeroed (or NULL), e.g. nonzero byte at offset %zu", n,
              bad_rows, bad_off);
    }
}

/* ---------------------------------------------------------------- realloc / reallocarray */

static void test_realloc(void) {
    section = "realloc";
    /* realloc(NULL, n) is malloc(n) */
    static const size_t ns[] = {0, 1, 100, 5000, 200000, 2 << 20};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        void *p = v_realloc(NULL, ns[i]);
        CHECK(p != NULL, "realloc(NULL, %zu) returned NULL", ns[i]);
        if (!p) continue;
        CHECK(v_usable(p) >= ns[i], "usable size %zu < %zu", v_usable(p), ns[i]);
        CHECK(is_aligned(p, malloc_min_align(ns[i])), "realloc(NULL,%zu)=%p misaligned", ns[i], p);
        fill(p, ns[i], 9);
        CHECK(check_fill(p, ns[i], 9) == SIZE_MAX, "realloc(NULL,%zu) memory not writable", ns[i]);
        v_free(p);
    }
    /* realloc(p, 0) frees p and returns NULL (glibc: REALLOC_ZERO_BYTES_FREES) */
    static const size_t zs[] = {1, 100, 5000, 200000, 4 << 20};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        void *p = v_malloc(zs[i]);
        CHECK(p != NULL, "malloc(%zu)", zs[i]);
        if (!p) continue;
        memset(p, 1, zs[i]);
        void *q = v_realloc(p, 0);
        CHECK(q == NULL, "realloc(malloc(%zu), 0) returned %p instead of NULL (glibc frees and returns NULL)", zs[i], q);
        if (q) v_free(q);
    }

    /* Grow/shrink chains: contents preserved up to min(old, new) at every step. */
    static const struct {
        int line;
        size_t from, to;
    } chains[] = {
        {__LINE__, 24, 100},        /* small -> small */
        {__LINE__, 100, 24},        /* small shrink */
        {__LINE__, 100, 100},       /* same size */
        {__LINE__, 1, 4096},        /* tiny -> page */
        {__LINE__, 100, 200000},    /* small -> large (> 128 KiB) */
        {__LINE__, 3000, 1 << 20},  /* medium -> large */
        {__LINE__, 200000, 4 << 20},/* large -> larger */
        {__LINE__, 4 << 20, 16 << 20},
        {__LINE__, 16 << 20, 17 << 20},
        {__LINE__, 4 << 20, 100},   /* large -> small */
        {__LINE__, 200000, 150000}, /* large shrink, stays large */
        {__LINE__, 1 << 20, 300},
        {__LINE__, 65536, 65537},
        {__LINE__, 131072, 131073},
    };
    for (size_t i = 0; i < sizeof chains / sizeof chains[0]; i++) {
        size_t a = chains[i].from, b = chains[i].to;
        void *p = v_malloc(a);
        CHECK_AT(chains[i].line, p != NULL, "malloc(%zu)", a);
        if (!p) continue;
        fill(p, a, (unsigned)(i + 100));
        /* keep a neighbour live so in-place growth is not trivially possible */
        void *nb = v_malloc(a);
        void *q = v_realloc(p, b);
        CHECK_AT(chains[i].line, q != NULL, "realloc(%zu -> %zu) returned NULL", a, b);
        if (!q) {
            v_free(p);
            v_free(nb);
            continue;
        }
        size_t keep = a < b ? a : b;
        size_t bad = check_fill(q, keep, (unsigned)(i + 100));
        CHECK_AT(chains[i].line, bad == SIZE_MAX, "realloc(%zu -> %zu) lost contents at offset %zu", a, b, bad);
        CHECK_AT(chains[i].line, v_usable(q) >= b, "realloc(%zu -> %zu): usable size %zu", a, b, v_usable(q));
        CHECK_AT(chains[i].line, is_aligned(q, malloc_min_align(b)), "realloc(%zu -> %zu) = %p misaligned", a, b, q);
        memset(q, 0xEE, b); /* whole new size writable */
        v_free(q);
        v_free(nb);
    }

    /* A long chain: one block grown 1 -> 32 MiB and back down, content checked each step. */
    {
        size_t n = 1;
        unsigned char *p = v_malloc(1);
        p[0] = pat(0, 5);
        int bad_steps = 0;
        while (n < (32u << 20)) {
            size_t m = n * 2 + 3;
            unsigned char *q = v_realloc(p, m);
            if (!q) {
                bad_steps++;
                break;
            }
            if (check_fill(q, n, 5) != SIZE_MAX) bad_steps++;
            for (size_t k = n; k < m; k++) q[k] = pat(k, 5);
            p = q;
            n = m;
        }
        while (n > 1) {
            size_t m = n / 3;
            unsigned char *q = v_realloc(p, m ? m : 1);
            if (!m) m = 1;
            if (!q) {
                bad_steps++;
                break;
            }
            if (check_fill(q, m, 5) != SIZE_MAX) bad_steps++;
            p = q;
            n = m;
        }
        CHECK(bad_steps == 0, "%d steps of the 1 B -> 32 MiB -> 1 B realloc chain lost contents or failed", bad_steps);
        v_free(p);
    }

    /* Realloc of an over-aligned block keeps its contents. */
    {
        void *p = v_memalign(4096, 5000);
        CHECK(p && is_aligned(p, 4096), "memalign(4096, 5000) = %p", p);
        if (p) {
            fill(p, 5000, 3);
            void *q = v_realloc(p, 300000);
            CHECK(q != NULL, "realloc of memalign'd block failed");
            if (q) {
                CHECK(check_fill(q, 5000, 3) == SIZE_MAX, "realloc of memalign'd block lost contents");
                v_free(q);
            }
        }
    }

    /* Failing realloc: NULL + ENOMEM, the original block intact and still owned. */
    static const size_t bigs[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 46};
    for (size_t i = 0; i < sizeof bigs / sizeof bigs[0]; i++) {
        static const size_t orig[] = {10, 200000};
        for (int k = 0; k < 2; k++) {
            void *p = v_malloc(orig[k]);
            fill(p, orig[k], 42);
            errno = 0;
            void *q = v_realloc(p, bigs[i]);
            int e = errno;
            CHECK(q == NULL && e == ENOMEM, "realloc(p[%zu], %#zx) = %p errno %d (want NULL, ENOMEM)", orig[k], bigs[i],
                  q, e);
            CHECK(check_fill(p, orig[k], 42) == SIZE_MAX, "failed realloc to %#zx damaged the original block", bigs[i]);
            v_free(q ? q : p);
        }
    }
    errno = 0;
    void *q = v_realloc(NULL, SIZE_MAX);
    CHECK(q == NULL && errno == ENOMEM, "realloc(NULL, SIZE_MAX) = %p errno %d", q, errno);

    section = "reallocarray";
    {
        void *p = v_reallocarray(NULL, 10, 10);
        CHECK(p != NULL && v_usable(p) >= 100, "reallocarray(NULL, 10, 10) = %p", p);
        fill(p, 100, 8);
        void *p2 = v_reallocarray(p, 1000, 10);
        CHECK(p2 != NULL, "reallocarray(p, 1000, 10) returned NULL");
        if (p2) {
            CHECK(check_fill(p2, 100, 8) == SIZE_MAX, "reallocarray growth lost contents");
            p = p2;
        }
        fill(p, 10000, 8);
        static const struct {
            int line;
            size_t n, m;
        } ov[] = {
            {__LINE__, SIZE_MAX / 2 + 1, 4}, {__LINE__, 4, SIZE_MAX / 2 + 1}, {__LINE__, SIZE_MAX, SIZE_MAX},
            {__LINE__, (size_t)1 << 32, (size_t)1 << 32}, {__LINE__, SIZE_MAX, 2},
        };
        for (size_t i = 0; i < sizeof ov / sizeof ov[0]; i++) {
            errno = 0;
            void *r = v_reallocarray(p, ov[i].n, ov[i].m);
            int e = errno;
            CHECK_AT(ov[i].line, r == NULL && e == ENOMEM, "reallocarray(p, %#zx, %#zx) = %p errno %d (want NULL, ENOMEM)",
                     ov[i].n, ov[i].m, r, e);
            CHECK_AT(ov[i].line, check_fill(p, 10000, 8) == SIZE_MAX, "overflowing reallocarray damaged the block");
            if (r) p = r;
        }
        errno = 0;
        void *r = v_reallocarray(NULL, SIZE_MAX, 16);
        CHECK(r == NULL && errno == ENOMEM, "reallocarray(NULL, SIZE_MAX, 16) = %p errno %d", r, errno);
        v_free(p);
    }
}

/* ---------------------------------------------------------------- aligned allocation */

struct ablk {
    void *p;
    size_t n, align;
    unsigned seed;
};

static int cmp_ablk(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct ablk *)a)->p, y = (uintptr_t)((const struct ablk *)b)->p;
    return x < y ? -1 : x > y;
}

/* Sort live blocks by address and check [p, p+max(n,1)) are disjoint. */
static void check_disjoint(struct ablk *b, size_t count, const char *what) {
    struct ablk *tmp = malloc(count * sizeof *tmp);
    size_t k = 0;
    for (size_t i = 0; i < count; i++)
        if (b[i].p) tmp[k++] = b[i];
    qsort(tmp, k, sizeof *tmp, cmp_ablk);
    int overlaps = 0;
    for (size_t i = 1; i < k; i++) {
        uintptr_t end = (uintptr_t)tmp[i - 1].p + (tmp[i - 1].n ? tmp[i - 1].n : 1);
        if (end > (uintptr_t)tmp[i].p) {
            if (overlaps++ < 5)
                printf("  overlap: [%p,+%zu) (align %zu) and %p (align %zu)\n", tmp[i - 1].p, tmp[i - 1].n,
                       tmp[i - 1].align, tmp[i].p, tmp[i].align);
        }
    }
    CHECK(overlaps == 0, "%d overlapping %s blocks", overlaps, what);
    free(tmp);
}

static const size_t asizes[] = {0, 1, 17, 4096, 100000, 1 << 20};
enum { NASZ = sizeof asizes / sizeof asizes[0] };

static void test_posix_memalign(void) {
    section = "posix_memalign";
    static const struct {
        int line;
        size_t align;
    } bad[] = {
        {__LINE__, 0},  {__LINE__, 1},  {__LINE__, 2},   {__LINE__, 3},    {__LINE__, 4},
        {__LINE__, 12}, {__LINE__, 24}, {__LINE__, 48},  {__LINE__, 100},  {__LINE__, 4095},
        {__LINE__, 4097}, {__LINE__, ((size_t)1 << 20) + 8}, {__LINE__, SIZE_MAX}, {__LINE__, ((size_t)1 << 63) + 8},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *sentinel = (void *)0x1234;
        void *mp = sentinel;
        errno = 0;
        int r = v_posix_memalign(&mp, bad[i].align, 64);
        CHECK_AT(bad[i].line, r == EINVAL, "posix_memalign(align=%zu) returned %d (want EINVAL=%d)", bad[i].align, r,
                 EINVAL);
        CHECK_AT(bad[i].line, mp == sentinel, "posix_memalign(align=%zu) failed but wrote *memptr=%p", bad[i].align, mp);
        CHECK_AT(bad[i].line, errno == 0, "posix_memalign(align=%zu) set errno=%d (it returns the error instead)",
                 bad[i].align, errno);
        if (r == 0 && mp != sentinel) v_free(mp);
    }

    /* Every power-of-two alignment 8 .. 4 MiB with a set of sizes; all kept live at once. */
    struct ablk blk[20 * NASZ];
    size_t nb = 0;
    unsigned seed = 1;
    for (size_t al = sizeof(void *); al <= ((size_t)4 << 20); al <<= 1) {
        for (size_t s = 0; s < NASZ; s++) {
            void *mp = NULL;
            size_t n = asizes[s];
            int r = v_posix_memalign(&mp, al, n);
            CHECK(r == 0 && mp != NULL, "posix_memalign(align=%zu, size=%zu) returned %d, %p", al, n, r, mp);
            if (r != 0 || !mp) continue;
            CHECK(is_aligned(mp, al), "posix_memalign(align=%zu, size=%zu) = %p not aligned", al, n, mp);
            CHECK(v_usable(mp) >= n, "posix_memalign(align=%zu, size=%zu): usable %zu", al, n, v_usable(mp));
            fill(mp, n, seed);
            blk[nb++] = (struct ablk){mp, n, al, seed++};
        }
    }
    for (size_t i = 0; i < nb; i++) {
        size_t b = check_fill(blk[i].p, blk[i].n, blk[i].seed);
        CHECK(b == SIZE_MAX, "posix_memalign(align=%zu, size=%zu) block corrupted at %zu", blk[i].align, blk[i].n, b);
    }
    check_disjoint(blk, nb, "posix_memalign");
    for (size_t i = 0; i < nb; i++) v_free(blk[i].p);

    /* Valid alignment, impossible size or alignment: ENOMEM. */
    static const struct {
        int line;
        size_t align, n;
    } nomem[] = {
        {__LINE__, 64, SIZE_MAX},
        {__LINE__, 4096, SIZE_MAX - 4096},
        {__LINE__, 64, (size_t)PTRDIFF_MAX + 1},
        {__LINE__, 64, (size_t)1 << 46},
        {__LINE__, (size_t)1 << 62, 8},
        {__LINE__, (size_t)1 << 63, 8},
    };
    for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
        void *mp = (void *)0x1234;
        int r = v_posix_memalign(&mp, nomem[i].align, nomem[i].n);
        CHECK_AT(nomem[i].line, r == ENOMEM, "posix_memalign(align=%#zx, size=%#zx) returned %d (want ENOMEM=%d)",
                 nomem[i].align, nomem[i].n, r, ENOMEM);
        if (r == 0) v_free(mp);
    }
}

static void test_aligned_alloc(void) {
    section = "aligned_alloc";
    struct ablk blk[24 * NASZ];
    size_t nb = 0;
    unsigned seed = 1000;
    for (size_t al = 1; al <= ((size_t)4 << 20); al <<= 1) {
        for (size_t s = 0; s < NASZ; s++) {
            size_t n = asizes[s];
            errno = 0;
            void *p = v_aligned_alloc(al, n);
            CHECK(p != NULL, "aligned_alloc(%zu, %zu) returned NULL, errno %d", al, n, errno);
            if (!p) continue;
            CHECK(is_aligned(p, al), "aligned_alloc(%zu, %zu) = %p not aligned", al, n, p);
            CHECK(v_usable(p) >= n, "aligned_alloc(%zu, %zu): usable %zu", al, n, v_usable(p));
            fill(p, n, seed);
            blk[nb++] = (struct ablk){p, n, al, seed++};
        }
    }
    for (size_t i = 0; i < nb; i++) {
        size_t b = check_fill(blk[i].p, blk[i].n, blk[i].seed);
        CHECK(b == SIZE_MAX, "aligned_alloc(%zu, %zu) block corrupted at %zu", blk[i].align, blk[i].n, b);
    }
    check_disjoint(blk, nb, "aligned_alloc");
    for (size_t i = 0; i < nb; i++) v_free(blk[i].p);

    /* Non-power-of-two alignment. C17 (DR 460) and glibc >= 2.38: NULL + EINVAL.
     * glibc 2.36's aligned_alloc is an alias of memalign and rounds the alignment up;
     * that is accepted for glibc only. */
    static const struct {
        int line;
        size_t align;
    } npow2[] = {{__LINE__, 0}, {__LINE__, 3}, {__LINE__, 24}, {__LINE__, 48}, {__LINE__, 100}, {__LINE__, 4097}};
    for (size_t i = 0; i < sizeof npow2 / sizeof npow2[0]; i++) {
        size_t al = npow2[i].align;
        errno = 0;
        void *p = v_aligned_alloc(al, 64);
        int e = errno;
        int strict_ok = p == NULL && e == EINVAL;
        int glibc236_ok = p != NULL && is_aligned(p, next_pow2(al ? al : 1));
        if (impl == IMPL_GLIBC)
            CHECK_AT(npow2[i].line, strict_ok || glibc236_ok,
                     "glibc aligned_alloc(%zu, 64) = %p errno %d: neither EINVAL nor rounded-up alignment", al, p, e);
        else
            CHECK_AT(npow2[i].line, strict_ok, "aligned_alloc(%zu, 64) = %p errno %d (want NULL, EINVAL=%d)", al, p, e,
                     EINVAL);
        if (p) v_free(p);
    }
    /* Valid alignment, impossible request: NULL + ENOMEM. */
    static const struct {
        int line;
        size_t align, n;
    } nomem[] = {{__LINE__, 64, SIZE_MAX}, {__LINE__, 4096, (size_t)1 << 46}, {__LINE__, (size_t)1 << 63, 8}};
    for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
        errno = 0;
        void *p = v_aligned_alloc(nomem[i].align, nomem[i].n);
        int e = errno;
        CHECK_AT(nomem[i].line, p == NULL && e == ENOMEM, "aligned_alloc(%#zx, %#zx) = %p errno %d (want NULL, ENOMEM)",
                 nomem[i].align, nomem[i].n, p, e);
        if (p) v_free(p);
    }
}

static void test_memalign_valloc(void) {
    section = "memalign";
    struct ablk blk[64];
    size_t nb = 0;
    static const struct {
        int line;
        size_t align, want_align, n;
    } rows[] = {
        {__LINE__, 1, 1, 100},          {__LINE__, 2, 2, 100},           {__LINE__, 8, 8, 3},
        {__LINE__, 16, 16, 0},          {__LINE__, 32, 32, 33},          {__LINE__, 64, 64, 4096},
        {__LINE__, 4096, 4096, 1},      {__LINE__, 4096, 4096, 100000},  {__LINE__, 65536, 65536, 200000},
        {__LINE__, 1 << 20, 1 << 20, 1 << 20}, {__LINE__, 2 << 20, 2 << 20, 17}, {__LINE__, 4 << 20, 4 << 20, 5 << 20},
        /* not a power of two: glibc rounds the alignment up to the next power of two */
        {__LINE__, 3, 4, 100},          {__LINE__, 24, 32, 100},         {__LINE__, 48, 64, 1000},
        {__LINE__, 100, 128, 10},       {__LINE__, 1000, 1024, 5000},    {__LINE__, 4097, 8192, 300},
        {__LINE__, 3 << 20, 4 << 20, 10},
        /* 0: like malloc */
        {__LINE__, 0, 16, 100},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        void *p = v_memalign(rows[i].align, rows[i].n);
        CHECK_AT(rows[i].line, p != NULL, "memalign(%zu, %zu) returned NULL", rows[i].align, rows[i].n);
        if (!p) continue;
        CHECK_AT(rows[i].line, is_aligned(p, rows[i].want_align), "memalign(%zu, %zu) = %p not %zu-aligned",
                 rows[i].align, rows[i].n, p, rows[i].want_align);
        CHECK_AT(rows[i].line, v_usable(p) >= rows[i].n, "memalign(%zu, %zu): usable %zu", rows[i].align, rows[i].n,
                 v_usable(p));
        fill(p, rows[i].n, (unsigned)i + 500);
        blk[nb++] = (struct ablk){p, rows[i].n, rows[i].align, (unsigned)i + 500};
    }
    for (size_t i = 0; i < nb; i++)
        CHECK(check_fill(blk[i].p, blk[i].n, blk[i].seed) == SIZE_MAX, "memalign(%zu, %zu) block corrupted",
              blk[i].align, blk[i].n);
    check_disjoint(blk, nb, "memalign");
    for (size_t i = 0; i < nb; i++) v_free(blk[i].p);
    static const struct {
        int line;
        size_t align, n;
    } nomem[] = {{__LINE__, 64, SIZE_MAX}, {__LINE__, (size_t)1 << 63, 8}, {__LINE__, ((size_t)1 << 62) + 1, 8},
                 {__LINE__, 4096, (size_t)1 << 46}};
    for (size_t i = 0; i < sizeof nomem / sizeof nomem[0]; i++) {
        errno = 0;
        void *p = v_memalign(nomem[i].align, nomem[i].n);
        int e = errno;
        CHECK_AT(nomem[i].line, p == NULL && e == ENOMEM, "memalign(%#zx, %#zx) = %p errno %d (want NULL, ENOMEM)",
                 nomem[i].align, nomem[i].n, p, e);
        if (p) v_free(p);
    }

    section = "valloc";
    static const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 100000, 1 << 20};
    void *vp[8];
    for (size_t i = 0; i < 8; i++) {
        vp[i] = v_valloc(vs[i]);
        CHECK(vp[i] != NULL, "valloc(%zu) returned NULL", vs[i]);
        if (!vp[i]) continue;
        CHECK(is_aligned(vp[i], page), "valloc(%zu) = %p not page-aligned", vs[i], vp[i]);
        CHECK(v_usable(vp[i]) >= vs[i], "valloc(%zu): usable %zu", vs[i], v_usable(vp[i]));
        fill(vp[i], vs[i], 7);
    }
    for (size_t i = 0; i < 8; i++) {
        if (!vp[i]) continue;
        CHECK(check_fill(vp[i], vs[i], 7) == SIZE_MAX, "valloc(%zu) block corrupted", vs[i]);
        v_free(vp[i]);
    }
    errno = 0;
    void *p = v_valloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "valloc(SIZE_MAX) = %p errno %d", p, errno);

    section = "pvalloc";
    static const size_t pv[] = {1, 100, 4095, 4096, 4097, 10000, 100000, 1 << 20};
    for (size_t i = 0; i < 8; i++) {
        void *q = v_pvalloc(pv[i]);
        CHECK(q != NULL, "pvalloc(%zu) returned NULL", pv[i]);
        if (!q) continue;
        CHECK(is_aligned(q, page), "pvalloc(%zu) = %p not page-aligned", pv[i], q);
        CHECK(v_usable(q) >= round_up(pv[i], page), "pvalloc(%zu): usable %zu < %zu", pv[i], v_usable(q),
              round_up(pv[i], page));
        memset(q, 0x77, round_up(pv[i], page)); /* the whole rounded size is the caller's */
        v_free(q);
    }
    void *z = v_pvalloc(0);
    CHECK(z != NULL && is_aligned(z, page), "pvalloc(0) = %p (want a page-aligned pointer)", z);
    if (z) {
        if (impl == IMPL_GLIBC)
            ; /* glibc 2.36 quirk: pvalloc(0) has a usable size of only 24 bytes */
        else
            CHECK(v_usable(z) >= page, "pvalloc(0): usable size %zu, want a whole page (%zu)", v_usable(z), page);
        v_free(z);
    }
    errno = 0;
    p = v_pvalloc(SIZE_MAX);
    CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX) = %p errno %d", p, errno);
    errno = 0;
    p = v_pvalloc(SIZE_MAX - page + 2);
    CHECK(p == NULL && errno == ENOMEM, "pvalloc(SIZE_MAX-page+2) = %p errno %d", p, errno);
}

/* ---------------------------------------------------------------- malloc_usable_size */

static void test_usable(void) {
    section = "malloc_usable_size";
    CHECK(v_usable(NULL) == 0, "malloc_usable_size(NULL) = %zu", v_usable(NULL));
    int bad = 0;
    size_t bad_n = 0;
    for (size_t n = 0; n <= 3000; n++) {
        void *p = v_malloc(n);
        size_t u = v_usable(p);
        if (!p || u < n) {
            bad++;
            bad_n = n;
        } else {
            memset(p, 0xAB, u); /* the whole usable size is writable */
        }
        v_free(p);
    }
    CHECK(bad == 0, "%d sizes in 0..3000 with usable < requested, e.g. %zu", bad, bad_n);
    for (size_t n = 3000; n < (40u << 20); n = n * 5 / 4 + 1) {
        void *p = v_malloc(n);
        size_t u = v_usable(p);
        CHECK(p && u >= n, "malloc(%zu): usable %zu", n, u);
        if (p) {
            memset(p, 0xAB, u);
            /* realloc inside the usable size keeps the data */
            void *q = v_realloc(p, u);
            CHECK(q != NULL, "realloc to usable size failed");
            if (q) {
                CHECK(((unsigned char *)q)[u - 1] == 0xAB && ((unsigned char *)q)[0] == 0xAB,
                      "realloc(p, usable=%zu) lost contents", u);
                p = q;
            }
        }
        v_free(p);
    }
    void *c = v_calloc(100, 3);
    CHECK(c && v_usable(c) >= 300, "calloc(100,3): usable %zu", c ? v_usable(c) : 0);
    v_free(c);
}

/* ---------------------------------------------------------------- cfree, free_sized */

static void test_sized_free(void) {
    section = "cfree";
    void (*f_cfree)(void *) = (void (*)(void *))sym("cfree");
    if (!f_cfree) {
        SKIP("cfree not resolvable in this process");
    } else {
        for (size_t n = 1; n < (8u << 20); n = n * 7 + 1) {
            void *p = v_malloc(n);
            memset(p, 1, n);
            errno = 1234;
            f_cfree(p);
            CHECK(errno == 1234, "cfree(%zu-byte block) changed errno to %d", n, errno);
        }
        f_cfree(NULL);
        void *p = v_malloc(50);
        CHECK(p != NULL, "malloc after cfree");
        v_free(p);
    }

    section = "free_sized";
    void (*f_free_sized)(void *, size_t) = (void (*)(void *, size_t))sym("free_sized");
    if (!f_free_sized) {
        SKIP("free_sized is not provided by %s (glibc 2.36 lacks it)", impl_name);
    } else {
        static const size_t ns[] = {0, 1, 16, 100, 1000, 4096, 50000, 131072, 200000, 1 << 20, 10 << 20};
        for (int round = 0; round < 3; round++) {
            void *ps[11];
            for (int i = 0; i < 11; i++) {
                ps[i] = round == 1 ? v_calloc(1, ns[i]) : v_malloc(ns[i]);
                CHECK(ps[i] != NULL, "alloc %zu", ns[i]);
                fill(ps[i], ns[i], (unsigned)i);
            }
            for (int i = 0; i < 11; i++) {
                CHECK(check_fill(ps[i], ns[i], (unsigned)i) == SIZE_MAX, "block %zu corrupted before free_sized", ns[i]);
                errno = 1234;
                f_free_sized(ps[i], ns[i]);
                CHECK(errno == 1234, "free_sized changed errno to %d", errno);
            }
        }
        f_free_sized(NULL, 0);
        /* memory freed by free_sized is reusable */
        void *p = v_malloc(100);
        fill(p, 100, 1);
        CHECK(check_fill(p, 100, 1) == SIZE_MAX, "malloc after free_sized");
        v_free(p);
    }

    section = "free_aligned_sized";
    void (*f_fas)(void *, size_t, size_t) = (void (*)(void *, size_t, size_t))sym("free_aligned_sized");
    if (!f_fas) {
        SKIP("free_aligned_sized is not provided by %s (glibc 2.36 lacks it)", impl_name);
    } else {
        for (int round = 0; round < 3; round++) {
            for (size_t al = 1; al <= (2u << 20); al <<= 3) {
                static const size_t ns[] = {0, 1, 100, 4096, 200000};
                void *ps[5];
                for (int i = 0; i < 5; i++) {
                    ps[i] = v_aligned_alloc(al, ns[i]);
                    CHECK(ps[i] && is_aligned(ps[i], al), "aligned_alloc(%zu,%zu) = %p", al, ns[i], ps[i]);
                    fill(ps[i], ns[i], (unsigned)i);
                }
                for (int i = 0; i < 5; i++) {
                    CHECK(check_fill(ps[i], ns[i], (unsigned)i) == SIZE_MAX, "block corrupted");
                    errno = 1234;
                    f_fas(ps[i], al, ns[i]);
                    CHECK(errno == 1234, "free_aligned_sized changed errno to %d", errno);
                }
            }
        }
        f_fas(NULL, 64, 0);
        void *p = v_aligned_alloc(64, 64);
        CHECK(p && is_aligned(p, 64), "aligned_alloc after free_aligned_sized");
        v_free(p);
    }
}

/* ---------------------------------------------------------------- mallopt / mallinfo / trim / stats / info */

static void test_mallopt(void) {
    section = "mallopt";
    static const struct {
        int line;
        int param, value;
        const char *name;
    } rows[] = {
        {__LINE__, M_TRIM_THRESHOLD, 128 * 1024, "M_TRIM_THRESHOLD"},
        {__LINE__, M_TOP_PAD, 128 * 1024, "M_TOP_PAD"},
        {__LINE__, M_MMAP_THRESHOLD, 128 * 1024, "M_MMAP_THRESHOLD"},
        {__LINE__, M_MMAP_MAX, 65536, "M_MMAP_MAX"},
        {__LINE__, M_ARENA_MAX, 8, "M_ARENA_MAX"},
        {__LINE__, M_ARENA_TEST, 8, "M_ARENA_TEST"},
        {__LINE__, M_PERTURB, 0, "M_PERTURB"},
        {__LINE__, M_CHECK_ACTION, 3, "M_CHECK_ACTION"},
        {__LINE__, M_MXFAST, 64, "M_MXFAST"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int r = mallopt(rows[i].param, rows[i].value);
        CHECK_AT(rows[i].line, r == 1, "mallopt(%s=%d, %d) returned %d (want 1)", rows[i].name, rows[i].param,
                 rows[i].value, r);
    }
    /* IMPL_ROW: glibc 2.36 returns 1 for ANY parameter number (its switch has no default
     * and res starts at 1); oxmalloc's contract is 0 for an unknown parameter. */
    int r = mallopt(12345, 1);
    if (impl == IMPL_GLIBC)
        CHECK(r == 1 || r == 0, "glibc mallopt(12345, 1) returned %d", r);
    else
        CHECK(r == 0, "mallopt(12345 (unknown), 1) returned %d (want 0)", r);
    /* The heap works after the tunables changed. */
    void *p = v_malloc(300000), *q = v_malloc(20);
    CHECK(p && q, "malloc after mallopt");
    memset(p, 1, 300000);
    memset(q, 1, 20);
    v_free(p);
    v_free(q);
}

static void test_mallinfo(void) {
    section = "mallinfo2";
    enum { NBLK = 10240, BSZ = 1024 };
    struct mallinfo2 before = mallinfo2();
    void **blocks = v_malloc(NBLK * sizeof(void *));
    for (int i = 0; i < NBLK; i++) {
        blocks[i] = v_malloc(BSZ);
        if (blocks[i]) memset(blocks[i], i, BSZ);
    }
    struct mallinfo2 after = mallinfo2();
    struct mallinfo legacy = mallinfo();
    size_t want = (size_t)NBLK * BSZ; /* 10 MiB */
    size_t grown = after.uordblks - before.uordblks;
    printf("  mallinfo2: uordblks %zu -> %zu (+%zu), arena %zu, hblkhd %zu, fordblks %zu\n", before.uordblks,
           after.uordblks, grown, after.arena, after.hblkhd, after.fordblks);
    CHECK(after.uordblks >= before.uordblks && grown >= want - want / 20,
          "mallinfo2().uordblks grew by %zu after allocating %zu bytes in %d blocks (want >= ~%zu)", grown, want, NBLK,
          want);
    CHECK(after.arena + after.hblkhd >= after.uordblks, "mallinfo2: arena %zu + hblkhd %zu < uordblks %zu", after.arena,
          after.hblkhd, after.uordblks);
    CHECK(legacy.uordblks > 0 && (size_t)legacy.uordblks >= want - want / 20,
          "legacy mallinfo().uordblks = %d after allocating %zu bytes", legacy.uordblks, want);
    CHECK(legacy.arena >= 0 && legacy.hblkhd >= 0 && legacy.fordblks >= 0, "mallinfo() has negative fields");
    for (int i = 0; i < NBLK; i++) v_free(blocks[i]);
    v_free(blocks);
    struct mallinfo2 freed = mallinfo2();
    printf("  mallinfo2 after free: uordblks %zu\n", freed.uordblks);
    CHECK(freed.uordblks + want / 2 <= after.uordblks,
          "mallinfo2().uordblks only went %zu -> %zu after freeing %zu bytes (want a drop of at least half)",
          after.uordblks, freed.uordblks, want);

    /* big blocks are counted too (glibc: hblkhd for mmapped chunks) */
    struct mallinfo2 b0 = mallinfo2();
    void *big = v_malloc(64u << 20);
    memset(big, 1, 64u << 20);
    struct mallinfo2 b1 = mallinfo2();
    size_t d = (b1.uordblks + b1.hblkhd) - (b0.uordblks + b0.hblkhd);
    CHECK(d >= (64u << 20), "a 64 MiB block grew uordblks+hblkhd by only %zu", d);
    v_free(big);

    section = "malloc_trim";
    int t = malloc_trim(0);
    CHECK(t == 0 || t == 1, "malloc_trim(0) returned %d", t);
    t = malloc_trim(1 << 20);
    CHECK(t == 0 || t == 1, "malloc_trim(1 MiB) returned %d", t);
    void *p = v_malloc(100);
    CHECK(p != NULL, "malloc after malloc_trim");
    v_free(p);
}

/* Runs fn with fd 1 and fd 2 redirected to temp files; returns their sizes. */
static void capture(void (*fn)(void), long *out_len, long *err_len, char *err_head, size_t head_sz) {
    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    fn();
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    *out_len = lseek(fileno(fo), 0, SEEK_END);
    *err_len = lseek(fileno(fe), 0, SEEK_END);
    memset(err_head, 0, head_sz);
    if (pread(fileno(fe), err_head, head_sz - 1, 0) < 0) err_head[0] = 0;
    fclose(fo);
    fclose(fe);
}

static void call_malloc_stats(void) { malloc_stats(); }

static void test_stats_info(void) {
    section = "malloc_stats";
    void *keep = v_malloc(12345);
    long out_len, err_len;
    char head[256];
    capture(call_malloc_stats, &out_len, &err_len, head, sizeof head);
    CHECK(err_len > 0, "malloc_stats() wrote nothing to stderr");
    CHECK(out_len == 0, "malloc_stats() wrote %ld bytes to stdout", out_len);
    v_free(keep);

    section = "malloc_info";
    FILE *f = tmpfile();
    int r = malloc_info(0, f);
    CHECK(r == 0, "malloc_info(0, f) returned %d", r);
    fflush(f);
    long len = ftell(f);
    char buf[64] = {0};
    rewind(f);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    CHECK(len > 0 && got > 0, "malloc_info wrote nothing");
    CHECK(strncmp(buf, "<malloc", 7) == 0, "malloc_info output starts with \"%.20s\", want \"<malloc\"", buf);
    /* well-formed enough: ends with </malloc> */
    char *all = calloc(1, (size_t)len + 1);
    rewind(f);
    if (fread(all, 1, (size_t)len, f) != (size_t)len) all[0] = 0;
    CHECK(strstr(all, "</malloc>") != NULL, "malloc_info output has no closing </malloc>");
    free(all);
    fclose(f);
}

/* ---------------------------------------------------------------- __libc_* aliases */

static void test_aliases(void) {
    section = "aliases";
    void *(*l_malloc)(size_t) = sym("__libc_malloc");
    void (*l_free)(void *) = sym("__libc_free");
    void *(*l_calloc)(size_t, size_t) = sym("__libc_calloc");
    void *(*l_realloc)(void *, size_t) = sym("__libc_realloc");
    void *(*l_memalign)(size_t, size_t) = sym("__libc_memalign");
    void *(*l_valloc)(size_t) = sym("__libc_valloc");
    void *(*l_pvalloc)(size_t) = sym("__libc_pvalloc");
    int (*l_pm)(void **, size_t, size_t) = sym("__posix_memalign");
    CHECK(l_malloc && l_free && l_calloc && l_realloc && l_memalign && l_valloc && l_pvalloc,
          "a __libc_* alias is missing: malloc %p free %p calloc %p realloc %p memalign %p valloc %p pvalloc %p",
          (void *)l_malloc, (void *)l_free, (void *)l_calloc, (void *)l_realloc, (void *)l_memalign, (void *)l_valloc,
          (void *)l_pvalloc);
    if (!(l_malloc && l_free && l_calloc && l_realloc && l_memalign && l_valloc && l_pvalloc)) return;

    /* The aliases are the same allocator as the plain names: blocks cross freely. */
    void *a = l_malloc(100);
    CHECK(a && v_usable(a) >= 100, "__libc_malloc(100) = %p", a);
    fill(a, 100, 1);
    void *b = v_realloc(a, 5000); /* __libc_malloc'd -> realloc */
    CHECK(b && check_fill(b, 100, 1) == SIZE_MAX, "realloc of a __libc_malloc block lost contents");
    void *c = l_realloc(b, 300000); /* realloc -> __libc_realloc */
    CHECK(c && check_fill(c, 100, 1) == SIZE_MAX, "__libc_realloc lost contents");
    errno = 1234;
    l_free(c);
    CHECK(errno == 1234, "__libc_free changed errno");
    CHECK(l_realloc(l_malloc(10), 0) == NULL, "__libc_realloc(p, 0) did not return NULL");
    errno = 0;
    CHECK(l_malloc(SIZE_MAX) == NULL && errno == ENOMEM, "__libc_malloc(SIZE_MAX) errno %d", errno);
    l_free(NULL);

    void *m = v_malloc(64);
    l_free(m); /* malloc'd -> __libc_free */
    void *z = l_calloc(1000, 100);
    CHECK(z && first_nonzero(z, 100000) == SIZE_MAX, "__libc_calloc memory not zeroed");
    v_free(z);
    errno = 0;
    CHECK(l_calloc(SIZE_MAX / 2 + 1, 4) == NULL && errno == ENOMEM, "__libc_calloc overflow: errno %d", errno);
    void *ma = l_memalign(4096, 100);
    CHECK(ma && is_aligned(ma, 4096), "__libc_memalign(4096, 100) = %p", ma);
    v_free(ma);
    ma = l_memalign(24, 100);
    CHECK(ma && is_aligned(ma, 32), "__libc_memalign(24, 100) = %p", ma);
    v_free(ma);
    void *va = l_valloc(10);
    CHECK(va && is_aligned(va, page), "__libc_valloc(10) = %p", va);
    v_free(va);
    void *pv = l_pvalloc(10);
    CHECK(pv && is_aligned(pv, page) && v_usable(pv) >= page, "__libc_pvalloc(10) = %p usable %zu", pv,
          pv ? v_usable(pv) : 0);
    v_free(pv);

    if (!l_pm) {
        SKIP("__posix_memalign is not exported by %s", impl_name);
    } else {
        void *mp = (void *)0x1234;
        CHECK(l_pm(&mp, 24, 10) == EINVAL && mp == (void *)0x1234, "__posix_memalign(24) not EINVAL / touched memptr");
        CHECK(l_pm(&mp, 0, 10) == EINVAL, "__posix_memalign(0) not EINVAL");
        CHECK(l_pm(&mp, 65536, 10) == 0 && is_aligned(mp, 65536), "__posix_memalign(65536, 10) = %p", mp);
        v_free(mp);
        CHECK(l_pm(&mp, 64, SIZE_MAX) == ENOMEM, "__posix_memalign(64, SIZE_MAX) not ENOMEM");
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    page = (size_t)sysconf(_SC_PAGESIZE);
    detect_impl();
    printf("conformance: malloc resolves to %s (impl=%s)\n", malloc_file, impl_name);
    test_malloc();
    test_free();
    test_calloc();
    test_realloc();
    test_posix_memalign();
    test_aligned_alloc();
    test_memalign_valloc();
    test_usable();
    test_sized_free();
    test_mallinfo();
    test_stats_info();
    test_aliases();
    test_mallopt(); /* last: changes tunables */
    printf("SUMMARY conformance impl=%s checks=%d failed=%d skipped=%d\n", impl_name, n_checks, n_failed, n_skipped);
    return n_failed ? 1 : 0;
}
