/*
 * The allocator must coexist with a program that uses the program break itself.
 *
 *   brk move   : the program sbrk()s its own regions between allocations, writes them,
 *                gives the top one back with sbrk(-n) when it is still on top, calls
 *                malloc_trim; every malloc'd block and every own sbrk region keeps its
 *                contents, and no malloc'd block overlaps an own region.
 *   brk blocked: a page is mapped (MAP_FIXED_NOREPLACE) right above the current break,
 *                so the break cannot grow; 64 MiB in small and medium blocks must still
 *                be served (from mmap), contents intact, none overlapping the blocker.
 *
 * Last line: "SUMMARY brk-<mode> checks=N failed=N".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static int n_checks, n_failed;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        n_checks++;                                                           \
        if (!(cond)) {                                                        \
            n_failed++;                                                       \
            if (n_failed < 50) {                                              \
                printf("FAIL line %d: %s: ", __LINE__, #cond);                \
                printf(__VA_ARGS__);                                          \
                printf("\n");                                                 \
                fflush(stdout);                                               \
            }                                                                 \
        }                                                                     \
    } while (0)

#include "vcalls.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t next(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1Dull;
}

static inline uint64_t pword(uint64_t seed, size_t i) { return (seed + i) * 0x9E3779B97F4A7C15ull ^ (seed >> 7); }
static void fill(void *p, size_t n, uint64_t seed) {
    unsigned char *c = p;
    size_t w = n / 8;
    for (size_t i = 0; i < w; i++) {
        uint64_t v = pword(seed, i);
        memcpy(c + 8 * i, &v, 8);
    }
    uint64_t v = pword(seed, w);
    memcpy(c + 8 * w, &v, n - 8 * w);
}
static int intact(const void *p, size_t n, uint64_t seed) {
    const unsigned char *c = p;
    size_t w = n / 8;
    for (size_t i = 0; i < w; i++) {
        uint64_t v = pword(seed, i);
        if (memcmp(c + 8 * i, &v, 8)) return 0;
    }
    uint64_t v = pword(seed, w);
    return memcmp(c + 8 * w, &v, n - 8 * w) == 0;
}

struct blk {
    unsigned char *p;
    size_t n;
    uint64_t seed;
    size_t usable; /* malloc_usable_size (0 for own sbrk regions) */
};

static int overlaps(uintptr_t a, size_t an, uintptr_t b, size_t bn) { return a < b + bn && b < a + an; }

/* ------------------------------------------------------------------ mode: move */

#define MAXB 4096
#define MAXR 256
static struct blk blocks[MAXB];
static int nblocks;
static struct blk regions[MAXR]; /* the program's own sbrk regions */
static int nregions;
static uint64_t seed_counter = 1;

static void verify(const char *when, int with_blocks) {
    int bad_b = 0, bad_r = 0, ov = 0;
    for (int i = 0; with_blocks && i < nblocks; i++)
        if (!intact(blocks[i].p, blocks[i].n, blocks[i].seed)) bad_b++;
    for (int i = 0; with_blocks && i < nregions; i++)
        if (!intact(regions[i].p, regions[i].n, regions[i].seed)) bad_r++;
    for (int i = 0; i < nblocks; i++) {
        size_t u = blocks[i].usable;
        for (int j = 0; j < nregions; j++)
            if (overlaps((uintptr_t)blocks[i].p, u, (uintptr_t)regions[j].p, regions[j].n)) {
                if (ov++ < 5)
                    printf("  block [%p,+%zu) overlaps own sbrk region [%p,+%zu)\n", blocks[i].p, u, regions[j].p,
                           regions[j].n);
            }
    }
    CHECK(bad_b == 0, "%s: %d of %d malloc'd blocks corrupted", when, bad_b, nblocks);
    CHECK(bad_r == 0, "%s: %d of %d own sbrk regions corrupted", when, bad_r, nregions);
    CHECK(ov == 0, "%s: %d malloc'd blocks overlap the program's own sbrk memory", when, ov);
}
static void verify_all(const char *when) { verify(when, 1); }

static size_t rand_size(void) {
    uint64_t r = next() % 100;
    if (r < 60) return 1 + next() % 256;
    if (r < 90) return 257 + next() % 8000;
    if (r < 98) return 8192 + next() % 120000;
    return 131072 + next() % (1 << 20);
}

static void alloc_some(int k) {
    for (int i = 0; i < k && nblocks < MAXB; i++) {
        size_t n = rand_size();
        unsigned char *p = v_malloc(n);
        CHECK(p != NULL, "malloc(%zu) failed", n);
        if (!p) return;
        blocks[nblocks] = (struct blk){p, n, seed_counter++, v_usable(p)};
        fill(p, n, blocks[nblocks].seed);
        nblocks++;
    }
}

static void free_some(int k) {
    for (int i = 0; i < k && nblocks > 0; i++) {
        int j = (int)(next() % (uint64_t)nblocks);
        CHECK(intact(blocks[j].p, blocks[j].n, blocks[j].seed), "block %p (%zu) corrupted before free", blocks[j].p,
              blocks[j].n);
        v_free(blocks[j].p);
        blocks[j] = blocks[--nblocks];
    }
}

static void realloc_some(int k) {
    for (int i = 0; i < k && nblocks > 0; i++) {
        int j = (int)(next() % (uint64_t)nblocks);
        size_t n = rand_size();
        unsigned char *q = v_realloc(blocks[j].p, n);
        CHECK(q != NULL, "realloc to %zu failed", n);
        if (!q) continue;
        size_t keep = n < blocks[j].n ? n : blocks[j].n;
        CHECK(intact(q, keep, blocks[j].seed), "realloc %zu -> %zu lost contents", blocks[j].n, n);
        blocks[j].p = q;
        blocks[j].n = n;
        blocks[j].usable = v_usable(q);
        fill(q, n, blocks[j].seed);
    }
}

static int mode_move(void) {
    char *start = sbrk(0);
    printf("initial break %p\n", start);
    alloc_some(50);
    int shrunk = 0, kept = 0, grown = 0;
    for (int round = 0; round < 2000; round++) {
        uint64_t r = next() % 10;
        if (r < 3 && nregions < MAXR) {
            size_t len = 4096 * (1 + next() % 16);
            void *p = sbrk((intptr_t)len);
            CHECK(p != (void *)-1, "sbrk(+%zu) failed: %s", len, strerror(errno));
            if (p != (void *)-1) {
                regions[nregions] = (struct blk){p, len, seed_counter++, 0};
                fill(p, len, regions[nregions].seed);
                nregions++;
                grown++;
            }
        } else if (r < 5 && nregions > 0) {
            /* Give back our top region only if nobody moved the break after it. */
            struct blk *top = &regions[nregions - 1];
            if ((char *)sbrk(0) == (char *)top->p + top->n) {
                CHECK(intact(top->p, top->n, top->seed), "own region corrupted before sbrk(-%zu)", top->n);
                void *old = sbrk(-(intptr_t)top->n);
                CHECK(old != (void *)-1, "sbrk(-%zu) failed", top->n);
                CHECK((char *)sbrk(0) == (char *)top->p, "break not back at %p", top->p);
                nregions--;
                shrunk++;
            } else {
                kept++;
            }
        } else if (r < 7) {
            alloc_some(1 + (int)(next() % 20));
        } else if (r < 8) {
            realloc_some(1 + (int)(next() % 5));
        } else {
            free_some(1 + (int)(next() % 20));
        }
        int trimmed = 0;
        if (round % 100 == 99) {
            /* Tempt the allocator to give memory back with brk. */
            malloc_trim(0);
            trimmed = 1;
        }
        /* overlap every round; contents of all blocks and own regions now and then */
        verify(trimmed ? "after malloc_trim" : "round", trimmed || round % 16 == 0);
    }
    printf("sbrk grown %d, given back %d, kept (not on top) %d, live blocks %d, own regions %d\n", grown, shrunk, kept,
           nblocks, nregions);
    /* Free everything, trim: own regions survive. */
    while (nblocks > 0) free_some(nblocks);
    malloc_trim(0);
    verify_all("after freeing all blocks and malloc_trim");
    /* A final big allocation round after all that. */
    alloc_some(500);
    verify_all("final allocation");
    return 0;
}

/* ------------------------------------------------------------------ mode: blocked */

static int mode_blocked(void) {
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t brk0 = (uintptr_t)sbrk(0);
    uintptr_t at = (brk0 + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    unsigned char *blocker = mmap((void *)at, (size_t)pg, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (blocker == MAP_FAILED || (uintptr_t)blocker != at) {
        printf("FAIL: cannot map the blocker page at %#lx (got %p, %s)\n", (unsigned long)at, (void *)blocker,
               strerror(errno));
        printf("SUMMARY brk-blocked checks=1 failed=1\n");
        return 1;
    }
    memset(blocker, 0xB1, (size_t)pg);
    /* Prove the break really cannot grow now. */
    void *t = sbrk(2 * pg);
    CHECK(t == (void *)-1, "sbrk(+2 pages) succeeded above a mapped page?!");
    if (t != (void *)-1) sbrk(-2 * pg);
    printf("break %#lx, blocker page at %p\n", (unsigned long)brk0, (void *)blocker);

    enum { N = 200000 };
    struct blk *b = mmap(NULL, N * sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    size_t total = 0;
    int n = 0, fails = 0;
    while (total < (64u << 20) && n < N) {
        size_t sz = (next() % 4) ? 16 + next() % 1024 : 1024 + next() % 64000;
        unsigned char *p = v_malloc(sz);
        if (!p) {
            fails++;
            if (fails > 10) break;
            continue;
        }
        b[n] = (struct blk){p, sz, (uint64_t)n + 1, 0};
        fill(p, sz, b[n].seed);
        total += sz;
        n++;
    }
    CHECK(fails == 0 && total >= (64u << 20), "malloc failed %d times; only %zu bytes in %d blocks allocated", fails,
          total, n);
    int bad = 0, ov = 0;
    for (int i = 0; i < n; i++) {
        if (!intact(b[i].p, b[i].n, b[i].seed)) bad++;
        if (overlaps((uintptr_t)b[i].p, v_usable(b[i].p), (uintptr_t)blocker, (size_t)pg)) ov++;
    }
    CHECK(bad == 0, "%d of %d blocks corrupted", bad, n);
    CHECK(ov == 0, "%d blocks overlap the blocker page", ov);
    int blk_ok = 1;
    for (long i = 0; i < pg; i++)
        if (blocker[i] != 0xB1) blk_ok = 0;
    CHECK(blk_ok, "the blocker page was overwritten");
    /* free half, reallocate (reuse of mmap-backed memory), verify again */
    for (int i = 0; i < n; i += 2) v_free(b[i].p);
    for (int i = 0; i < n; i += 2) {
        b[i].p = v_malloc(b[i].n);
        CHECK(b[i].p != NULL, "re-malloc(%zu) failed", b[i].n);
        if (!b[i].p) {
            b[i].n = 0;
            continue;
        }
        fill(b[i].p, b[i].n, b[i].seed ^ 0xABCDEF);
    }
    bad = 0;
    for (int i = 0; i < n; i++)
        if (b[i].p && !intact(b[i].p, b[i].n, (i % 2 == 0) ? b[i].seed ^ 0xABCDEF : b[i].seed)) bad++;
    CHECK(bad == 0, "%d blocks corrupted after the free/realloc round", bad);
    for (int i = 0; i < n; i++) v_free(b[i].p);
    printf("allocated %zu bytes in %d blocks with the break blocked\n", total, n);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "move";
    if (argc > 2) rng = strtoull(argv[2], NULL, 0) | 1;
    if (strcmp(mode, "move") == 0)
        mode_move();
    else if (strcmp(mode, "blocked") == 0) {
        if (mode_blocked()) return 1;
    } else {
        printf("usage: brk move|blocked [seed]\n");
        return 2;
    }
    printf("SUMMARY brk-%s checks=%d failed=%d\n", mode, n_checks, n_failed);
    return n_failed ? 1 : 0;
}
