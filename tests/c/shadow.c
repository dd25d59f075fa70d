/*
 * Seeded random-operation driver with a shadow of every live block.
 *
 *   shadow SEED OPS MAX_LIVE [THREADS]
 *
 * THREADS = 0 (default): one thread. THREADS >= 1: that many threads, each with its own
 * shadow and PRNG (SEED + thread), plus a shared exchange of 64 slots through which
 * blocks migrate: a thread swaps one of its blocks into a random slot and verifies and
 * then frees (or adopts) whatever block another thread had left there.
 *
 * Operations: malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign,
 * with sizes from a mix (0..64, ..1 KiB, ..64 KiB, ..1 MiB, 2..8 MiB rarely), keeping at
 * most MAX_LIVE live blocks per thread. Each block is filled with a pattern derived from
 * (block id, offset); every byte is verified before free/realloc and all live blocks
 * periodically. Alignment and malloc_usable_size >= size are checked at every allocation;
 * every 1000 ops the live blocks are sorted by address and [p, p+usable) must be disjoint.
 *
 * The first failed check prints what and where (seed, thread, op) and exits 1.
 * Last line: "SUMMARY shadow seed=S ops=N threads=T failed=0 ...".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vcalls.h"

static uint64_t g_seed;
static long g_ops;
static int g_max_live;
static int g_threads;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

struct blk {
    unsigned char *p;
    size_t n;      /* requested size */
    size_t usable; /* malloc_usable_size at allocation */
    size_t align;  /* alignment guaranteed by the call that made it */
    uint64_t id;   /* pattern seed, globally unique: thread << 48 | counter */
};

struct shadow {
    int tid;
    uint64_t rng;
    uint64_t next_id;
    long op;
    struct blk *b;
    int n;
    long counts[10];
    size_t live_bytes, peak_live_bytes;
};

#define FAILF(sh, ...)                                                                             \
    do {                                                                                           \
        pthread_mutex_lock(&print_lock);                                                           \
        printf("FAIL (seed=%llu thread=%d op=%ld, line %d): ", (unsigned long long)g_seed, (sh)->tid, \
               (sh)->op, __LINE__);                                                                \
        printf(__VA_ARGS__);                                                                       \
        printf("\nSUMMARY shadow seed=%llu ops=%ld threads=%d failed=1\n", (unsigned long long)g_seed, \
               g_ops, g_threads);                                                                  \
        fflush(stdout);                                                                            \
        _exit(1);                                                                                  \
    } while (0)

#include "rng.h"

static inline uint64_t pword(uint64_t id, size_t i) {
    uint64_t x = (id * 0x9E3779B97F4A7C15ull) ^ (i * 0xD6E8FEB86659FD93ull);
    return x ^ (x >> 29);
}
static inline unsigned char pbyte(uint64_t id, size_t off) { return (unsigned char)(pword(id, off / 8) >> (8 * (off % 8))); }

/* Fill [from, to) of a block with its pattern. */
static void fill_range(unsigned char *p, uint64_t id, size_t from, size_t to) {
    size_t o = from;
    while (o < to && (o % 8)) {
        p[o] = pbyte(id, o);
        o++;
    }
    for (; o + 8 <= to; o += 8) {
        uint64_t w = pword(id, o / 8);
        memcpy(p + o, &w, 8);
    }
    for (; o < to; o++) p[o] = pbyte(id, o);
}

/* First offset in [from, to) that does not hold the pattern, or SIZE_MAX. */
static size_t check_range(const unsigned char *p, uint64_t id, size_t from, size_t to) {
    size_t o = from;
    while (o < to && (o % 8)) {
        if (p[o] != pbyte(id, o)) return o;
        o++;
    }
    for (; o + 8 <= to; o += 8) {
        uint64_t w = pword(id, o / 8), v;
        memcpy(&v, p + o, 8);
        if (v != w) {
            for (size_t k = o;; k++)
                if (p[k] != pbyte(id, k)) return k;
        }
    }
    for (; o < to; o++)
        if (p[o] != pbyte(id, o)) return o;
    return SIZE_MAX;
}

static void verify(struct shadow *sh, const struct blk *b, const char *when) {
    size_t bad = check_range(b->p, b->id, 0, b->n);
    if (bad != SIZE_MAX)
        FAILF(sh,
              "%s: block id %#llx at %p (size %zu, align %zu) corrupted at offset %zu: byte %#x, want %#x "
              "(owner thread %d)",
              when, (unsigned long long)b->id, (void *)b->p, b->n, b->align, bad, b->p[bad], pbyte(b->id, bad),
              (int)(b->id >> 48));
}

static size_t rand_size(struct shadow *sh) {
    uint64_t r = xs(&sh->rng) % 10000;
    uint64_t x = xs(&sh->rng);
    if (r < 4000) return x % 65;                          /* 0..64 */
    if (r < 7500) return 65 + x % (1024 - 64);            /* ..1 KiB */
    if (r < 9895) return 1025 + x % (65536 - 1024);       /* ..64 KiB */
    if (r < 9995) return 65537 + x % ((1 << 20) - 65536); /* ..1 MiB */
    return (2u << 20) + x % (6u << 20);                   /* 2..8 MiB */
}

static size_t min_align(size_t n) { return n >= 16 ? 16 : n >= 8 ? 8 : 1; }

static void new_block(struct shadow *sh, unsigned char *p, size_t n, size_t align, const char *how, int zeroed) {
    if (!p) FAILF(sh, "%s(size %zu, align %zu) returned NULL (errno %d)", how, n, align, errno);
    if ((uintptr_t)p & (align - 1)) FAILF(sh, "%s(size %zu) = %p is not %zu-aligned", how, n, (void *)p, align);
    size_t u = v_usable(p);
    if (u < n) FAILF(sh, "%s(size %zu) = %p: malloc_usable_size %zu < size", how, n, (void *)p, u);
    if (zeroed) {
        for (size_t i = 0; i < n; i++)
            if (p[i]) FAILF(sh, "calloc(%zu) = %p: byte %zu is %#x, not 0", n, (void *)p, i, p[i]);
    }
    struct blk *b = &sh->b[sh->n++];
    *b = (struct blk){p, n, u, align, ((uint64_t)sh->tid << 48) | sh->next_id++};
    fill_range(p, b->id, 0, n);
    sh->live_bytes += n;
    if (sh->live_bytes > sh->peak_live_bytes) sh->peak_live_bytes = sh->live_bytes;
}

static void drop_block(struct shadow *sh, int i) {
    sh->live_bytes -= sh->b[i].n;
    sh->b[i] = sh->b[--sh->n];
}

static int cmp_blk(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct blk *)a)->p, y = (uintptr_t)((const struct blk *)b)->p;
    return x < y ? -1 : x > y;
}

static void check_disjoint(struct shadow *sh, struct blk *scratch) {
    memcpy(scratch, sh->b, (size_t)sh->n * sizeof *scratch);
    qsort(scratch, (size_t)sh->n, sizeof *scratch, cmp_blk);
    for (int i = 1; i < sh->n; i++) {
        uintptr_t end = (uintptr_t)scratch[i - 1].p + (scratch[i - 1].usable ? scratch[i - 1].usable : 1);
        if (end > (uintptr_t)scratch[i].p)
            FAILF(sh, "live blocks overlap: [%p, +%zu usable) (size %zu) and %p (size %zu)", (void *)scratch[i - 1].p,
                  scratch[i - 1].usable, scratch[i - 1].n, (void *)scratch[i].p, scratch[i].n);
    }
}

/* ------------------------------------------------------------------ exchange (threads) */

#define NSLOTS 64
struct xblk {
    struct blk b;
    int from;
};
static _Atomic(struct xblk *) slots[NSLOTS];
static atomic_long exchanged, adopted;

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_FREE, OP_POSIX_MEMALIGN, OP_ALIGNED_ALLOC, OP_MEMALIGN, OP_EXCHANGE, OP_VERIFY };

static void do_alloc(struct shadow *sh, int op) {
    size_t n = rand_size(sh);
    uint64_t r = xs(&sh->rng);
    switch (op) {
    case OP_MALLOC:
        new_block(sh, v_malloc(n), n, min_align(n), "malloc", 0);
        break;
    case OP_CALLOC: {
        unsigned char *p;
        if (n >= 16 && (r & 1))
            p = v_calloc(n / 16, 16), n = n / 16 * 16;
        else
            p = v_calloc(1, n);
        new_block(sh, p, n, min_align(n), "calloc", 1);
        break;
    }
    case OP_POSIX_MEMALIGN: {
        size_t al = (r % 20 == 0) ? (size_t)1 << (12 + r / 20 % 10) : (size_t)8 << (r / 20 % 10); /* 8..4K, 4K..2M */
        void *p = NULL;
        int e = v_posix_memalign(&p, al, n);
        if (e) FAILF(sh, "posix_memalign(align %zu, size %zu) returned %d", al, n, e);
        new_block(sh, p, n, al, "posix_memalign", 0);
        break;
    }
    case OP_ALIGNED_ALLOC: {
        size_t al = (r % 20 == 0) ? (size_t)1 << (12 + r / 20 % 10) : (size_t)1 << (r / 20 % 13); /* 1..4K, ..2M */
        new_block(sh, v_aligned_alloc(al, n), n, al, "aligned_alloc", 0);
        break;
    }
    case OP_MEMALIGN: {
        size_t al = (r % 20 == 0) ? (size_t)1 << (12 + r / 20 % 10) : (size_t)1 << (r / 20 % 13);
        new_block(sh, v_memalign(al, n), n, al, "memalign", 0);
        break;
    }
    }
}

static void do_free(struct shadow *sh) {
    int i = (int)(xs(&sh->rng) % (uint64_t)sh->n);
    verify(sh, &sh->b[i], "before free");
    v_free(sh->b[i].p);
    drop_block(sh, i);
}

static void do_realloc(struct shadow *sh) {
    int i = (int)(xs(&sh->rng) % (uint64_t)sh->n);
    struct blk *b = &sh->b[i];
    verify(sh, b, "before realloc");
    size_t n;
    uint64_t r = xs(&sh->rng) % 4;
    if (r == 0 && b->n > 0)
        n = b->n - (size_t)(xs(&sh->rng) % b->n); /* shrink (1..n) */
    else if (r == 1)
        n = b->n + 1 + (size_t)(xs(&sh->rng) % (b->n + 64)); /* grow up to ~2x */
    else
        n = rand_size(sh);
    if (n == 0) n = 1;
    unsigned char *q = v_realloc(b->p, n);
    if (!q) FAILF(sh, "realloc(%p, %zu -> %zu) returned NULL", (void *)b->p, b->n, n);
    size_t keep = n < b->n ? n : b->n;
    size_t bad = check_range(q, b->id, 0, keep);
    if (bad != SIZE_MAX)
        FAILF(sh, "realloc(%p -> %p, %zu -> %zu) lost contents at offset %zu", (void *)b->p, (void *)q, b->n, n, bad);
    if ((uintptr_t)q & (min_align(n) - 1)) FAILF(sh, "realloc to %zu returned misaligned %p", n, (void *)q);
    size_t u = v_usable(q);
    if (u < n) FAILF(sh, "realloc to %zu: usable size %zu", n, u);
    if (n > b->n) fill_range(q, b->id, b->n, n);
    sh->live_bytes = sh->live_bytes - b->n + n;
    if (sh->live_bytes > sh->peak_live_bytes) sh->peak_live_bytes = sh->live_bytes;
    b->p = q;
    b->n = n;
    b->usable = u;
    b->align = min_align(n);
}

static void do_exchange(struct shadow *sh) {
    int i = (int)(xs(&sh->rng) % (uint64_t)sh->n);
    verify(sh, &sh->b[i], "before exchange");
    struct xblk *x = v_malloc(sizeof *x);
    if (!x) FAILF(sh, "malloc(xblk) failed");
    x->b = sh->b[i];
    x->from = sh->tid;
    drop_block(sh, i);
    struct xblk *got = atomic_exchange(&slots[xs(&sh->rng) % NSLOTS], x);
    atomic_fetch_add(&exchanged, 1);
    if (!got) return;
    verify(sh, &got->b, "block received from another thread");
    if ((xs(&sh->rng) & 1) && sh->n < g_max_live) {
        sh->b[sh->n++] = got->b; /* adopt: this thread reallocs/frees it later */
        sh->live_bytes += got->b.n;
        atomic_fetch_add(&adopted, 1);
    } else {
        v_free(got->b.p);
    }
    v_free(got);
}

static void verify_all(struct shadow *sh, const char *when) {
    for (int i = 0; i < sh->n; i++) verify(sh, &sh->b[i], when);
}

static void *driver(void *arg) {
    struct shadow *sh = arg;
    sh->b = v_malloc((size_t)(g_max_live + 1) * sizeof(struct blk));
    struct blk *scratch = v_malloc((size_t)(g_max_live + 1) * sizeof(struct blk));
    if (!sh->b || !scratch) FAILF(sh, "cannot allocate the shadow");
    for (sh->op = 0; sh->op < g_ops; sh->op++) {
        int op;
        if (sh->n == 0) {
            op = OP_MALLOC;
        } else {
            uint64_t r = xs(&sh->rng) % 100;
            op = r < 25   ? OP_MALLOC
                 : r < 33 ? OP_CALLOC
                 : r < 50 ? OP_REALLOC
                 : r < 56 ? OP_POSIX_MEMALIGN
                 : r < 60 ? OP_ALIGNED_ALLOC
                 : r < 64 ? OP_MEMALIGN
                 : r < 70 ? (g_threads > 0 ? OP_EXCHANGE : OP_FREE)
                          : OP_FREE;
            if (sh->n >= g_max_live && op != OP_REALLOC && op != OP_EXCHANGE) op = OP_FREE;
        }
        sh->counts[op]++;
        switch (op) {
        case OP_FREE:
            do_free(sh);
            break;
        case OP_REALLOC:
            do_realloc(sh);
            break;
        case OP_EXCHANGE:
            do_exchange(sh);
            break;
        default:
            do_alloc(sh, op);
        }
        if (sh->op % 1000 == 999) check_disjoint(sh, scratch);
        if (sh->op % 5000 == 4999) {
            verify_all(sh, "periodic verification");
            sh->counts[OP_VERIFY]++;
        }
    }
    verify_all(sh, "final verification");
    check_disjoint(sh, scratch);
    while (sh->n > 0) do_free(sh);
    v_free(scratch);
    return NULL;
}

static long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') v = atol(line + fl + 1);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4) {
        fprintf(stderr, "usage: shadow SEED OPS MAX_LIVE [THREADS]\n");
        return 2;
    }
    g_seed = strtoull(argv[1], NULL, 0);
    g_ops = atol(argv[2]);
    g_max_live = atoi(argv[3]);
    g_threads = argc > 4 ? atoi(argv[4]) : 0;
    int nt = g_threads > 0 ? g_threads : 1;
    struct shadow *sh = calloc((size_t)nt, sizeof *sh);
    for (int t = 0; t < nt; t++) {
        sh[t].tid = t + 1;
        sh[t].rng = (g_seed + 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1)) | 1;
        sh[t].next_id = 1;
    }
    if (g_threads == 0) {
        driver(&sh[0]);
    } else {
        pthread_t th[64];
        for (int t = 0; t < nt; t++)
            if (pthread_create(&th[t], NULL, driver, &sh[t])) {
                printf("FAIL: pthread_create\n");
                return 1;
            }
        for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
        /* Blocks still parked in the exchange were made by threads that have exited. */
        struct shadow mainsh = {.tid = 0};
        int drained = 0;
        for (int s = 0; s < NSLOTS; s++) {
            struct xblk *x = atomic_exchange(&slots[s], NULL);
            if (!x) continue;
            verify(&mainsh, &x->b, "block left in the exchange by an exited thread");
            v_free(x->b.p);
            v_free(x);
            drained++;
        }
        printf("exchanged %ld blocks between threads (%ld adopted), %d drained at exit\n", (long)exchanged,
               (long)adopted, drained);
    }
    long c[10] = {0};
    size_t peak = 0;
    for (int t = 0; t < nt; t++) {
        for (int k = 0; k < 10; k++) c[k] += sh[t].counts[k];
        if (sh[t].peak_live_bytes > peak) peak = sh[t].peak_live_bytes;
    }
    printf("ops: malloc %ld calloc %ld realloc %ld free %ld posix_memalign %ld aligned_alloc %ld memalign %ld "
           "exchange %ld full-verifications %ld; peak live %zu KiB/thread; VmHWM %ld KiB\n",
           c[OP_MALLOC], c[OP_CALLOC], c[OP_REALLOC], c[OP_FREE], c[OP_POSIX_MEMALIGN], c[OP_ALIGNED_ALLOC],
           c[OP_MEMALIGN], c[OP_EXCHANGE], c[OP_VERIFY], peak >> 10, status_kib("VmHWM"));
    printf("SUMMARY shadow seed=%llu ops=%ld threads=%d failed=0\n", (unsigned long long)g_seed, g_ops, g_threads);
    return 0;
}
