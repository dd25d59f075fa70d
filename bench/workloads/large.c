/*
 * large: blocks around and above glibc's 128 KiB mmap threshold. A window of
 * WINDOW live blocks; each step allocates a block of 64 KiB..4 MiB (log-uniform;
 * one in four with calloc, whose zeroes are checked), touches every page of it,
 * then frees a random block of the window after checking a few of its pages.
 *
 * usage: large SCALE
 * Exercises: the large-object path, mmap/munmap vs caching of big spans,
 * calloc of fresh zero pages, page-fault and RSS behaviour.
 */
#include "common.h"

#define WINDOW 12
#define STEPS 3000ULL
#define PAGE 4096

typedef struct {
    uint64_t *p;
    size_t size;
    uint64_t tag;
} blk_t;

static uint64_t check_free(blk_t *b) {
    size_t words = b->size / 8, stride = PAGE / 8;
    uint64_t s = 0;
    /* first, last and a middle page */
    size_t idx[3] = {0, (words - 1) / stride * stride, (words / 2) / stride * stride};
    for (int k = 0; k < 3; k++) {
        uint64_t want = b->tag ^ (uint64_t)idx[k];
        if (b->p[idx[k]] != want) {
            atomic_fetch_add(&g_corrupt, 1);
            s += 0xbad;
        }
        s += mix64(want);
    }
    free(b->p);
    return s;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    uint64_t steps = STEPS * (uint64_t)scale;
    rng_t r = rng_seed(11);
    blk_t win[WINDOW];
    memset(win, 0, sizeof win);
    uint64_t sum = 0;
    size_t nwin = 0;
    for (uint64_t i = 0; i < steps; i++) {
        blk_t b;
        b.size = rng_log_range(&r, 64 * 1024, 4 * 1024 * 1024);
        b.tag = mix64(i + 1);
        if (rng_below(&r, 4) == 0) {
            b.p = xcalloc(1, b.size);
            /* calloc must give zeroes: probe a few words */
            size_t words = b.size / 8;
            for (size_t w = 0; w < words; w += words / 7 + 1) {
                if (b.p[w] != 0) {
                    atomic_fetch_add(&g_corrupt, 1);
                    sum += 0xbad;
                    break;
                }
            }
        } else {
            b.p = xmalloc(b.size);
        }
        size_t words = b.size / 8;
        for (size_t w = 0; w < words; w += PAGE / 8) b.p[w] = b.tag ^ (uint64_t)w;
        if (nwin < WINDOW) {
            win[nwin++] = b;
        } else {
            size_t k = rng_below(&r, WINDOW);
            sum += check_free(&win[k]);
            win[k] = b;
        }
    }
    for (size_t k = 0; k < nwin; k++) sum += check_free(&win[k]);
    return finish(sum, steps);
}
