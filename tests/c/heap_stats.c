/*
 * Seeing the heap (issue 7): a known heap, and what oxmalloc reports about it.
 *
 *   heap_stats census   holds a known set of blocks (small ones of many classes, half
 *                       of them freed again, and two large ones), asks
 *                       oxmalloc_stats_get, and prints both sides as key=value lines:
 *                       held_small (sum of malloc_usable_size of the small blocks held),
 *                       held_large, freed_small, the census' figures and the breakdown.
 *   heap_stats frag     a fragmented heap of two brk segments (the program moves the
 *                       break itself between them, so the heap must start a second one),
 *                       every other block freed, and three large blocks; it exits
 *                       normally with all of that live (for OXMALLOC_MAP / --map).
 *                       Prints "segments=2 large=3".
 * Under another malloc than oxmalloc, `census` prints "no-oxmalloc" and exits 0.
 * Exit status 0 and a line "SUMMARY heap-stats-<mode> failed=0" when every check holds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oxmalloc.h"

#include "check.h"

#define SMALL 60000
static void *small[SMALL];
static void *large[3];

static size_t touch(void *p) {
    size_t n = malloc_usable_size(p);
    memset(p, 0x5a, n);
    return n;
}

static int census(void) {
    size_t (*get)(struct oxmalloc_stats *, size_t) =
        (size_t (*)(struct oxmalloc_stats *, size_t))dlsym(RTLD_DEFAULT, "oxmalloc_stats_get");
    if (!get) {
        printf("no-oxmalloc\nSUMMARY heap-stats-census failed=0\n");
        return 0;
    }
    CHECK(get(NULL, 0) == sizeof(struct oxmalloc_stats), "oxmalloc_stats_get(NULL, 0) = %zu, header says %zu",
          get(NULL, 0), sizeof(struct oxmalloc_stats));
    printf("sizeof_stats=%zu\n", sizeof(struct oxmalloc_stats));

    size_t held_small = 0, freed_small = 0, held_large = 0;
    for (int i = 0; i < SMALL; i++) {
        small[i] = malloc(8 + (size_t)(i % 97) * 41); /* 8 .. 3944 bytes: many classes */
        held_small += touch(small[i]);
    }
    for (int i = 0; i < SMALL; i += 2) {
        size_t n = malloc_usable_size(small[i]);
        held_small -= n;
        freed_small += n;
        free(small[i]);
        small[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        large[i] = malloc((size_t)(3 + i) << 20);
        held_large += touch(large[i]);
    }

    static struct oxmalloc_stats st;
    size_t full = get(&st, sizeof st);
    CHECK(full == sizeof st, "oxmalloc_stats_get returned %zu", full);
    CHECK(st.size == sizeof st, "stats.size = %zu", st.size);
    size_t class_bytes = 0, class_blocks = 0;
    for (int c = 0; c < OXMALLOC_STATS_CLASSES; c++) {
        class_bytes += st.classes[c].bytes_in_use;
        class_blocks += st.classes[c].blocks_in_use;
    }
    const struct oxmalloc_breakdown *b = &st.breakdown;
    printf("held_small=%zu\nfreed_small=%zu\nheld_large=%zu\n", held_small, freed_small, held_large);
    printf("in_use=%zu\nclass_bytes=%zu\nclass_blocks=%zu\n", st.in_use, class_bytes, class_blocks);
    printf("mmapped_bytes=%zu\nmmapped_blocks=%zu\nsystem=%zu\n", st.mmapped_bytes, st.mmapped_blocks, st.system);
    printf("live_small=%zu\nlive_big=%zu\nlive_large=%zu\n", b->live_small, b->live_big, b->live_large);
    printf("free_in_thread_heaps=%zu\nfree_in_orphans=%zu\n", b->free_in_thread_heaps, b->free_in_orphans);
    printf("heap_top=%zu\ndecay_free_runs=%zu\ndecay_cached_spans=%zu\n", b->heap_top, b->decay_free_runs,
           b->decay_cached_spans);
    printf("outside_spans=%zu\nmetadata=%zu\nallocator=%zu\n", b->outside_spans, b->metadata, b->allocator);
    printf("process_rss=%zu\nprocess_anon=%zu\nremainder=%td\n", b->process_rss, b->process_anon, b->remainder);
    size_t arena_resident = 0;
    for (size_t a = 0; a < st.arena_count; a++) arena_resident += st.arenas[a].resident;
    printf("arena_resident=%zu\nresidency_errors=%zu\n", arena_resident, st.residency_errors);
    for (int i = 0; i < 2; i++) free(large[i]);
    for (int i = 0; i < SMALL; i++) free(small[i]);
    printf("SUMMARY heap-stats-census failed=%d\n", failed);
    return failed != 0;
}

static int frag(void) {
    /* Segment 1: blocks of 224 and 2048 bytes, interleaved. */
    for (int i = 0; i < SMALL / 2; i++) {
        small[i] = malloc(i % 8 == 1 ? 2000 : 200);
        touch(small[i]);
    }
    /* The program moves the break itself: the heap's next growth is a new segment. */
    void *mine = sbrk(4096);
    CHECK(mine != (void *)-1, "sbrk(4096) failed");
    memset(mine, 1, 4096);
    for (int i = SMALL / 2; i < SMALL; i++) {
        small[i] = malloc(i % 8 == 1 ? 2000 : 200);
        touch(small[i]);
    }
    for (int i = 0; i < SMALL; i += 2) {
        free(small[i]);
        small[i] = NULL;
    }
    for (int i = 0; i < 3; i++) {
        large[i] = malloc((size_t)1 << 20);
        touch(large[i]);
    }
    printf("segments=2 large=3\n");
    printf("SUMMARY heap-stats-frag failed=%d\n", failed);
    /* Everything stays live: the heap map at exit shows it. */
    return failed != 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "census") == 0) return census();
    if (strcmp(mode, "frag") == 0) return frag();
    fprintf(stderr, "usage: heap_stats census|frag\n");
    return 2;
}
