/*
 * glibc's tuning knobs, with glibc's meaning (run with and without the preload).
 *
 *   knobs mmap_threshold   mallopt(M_MMAP_THRESHOLD, 1 MiB): a 512 KiB block comes from
 *                          the heap (the break moves, mallinfo2 counts no mmapped block)
 *   knobs mmap_max         mallopt(M_MMAP_MAX, 0): a 4 MiB block comes from the heap
 *   knobs perturb          mallopt(M_PERTURB, 0x5a): malloc'd bytes read 0xa5, and a freed
 *                          then re-allocated block was filled with 0x5a in between
 *                          (checked on the bytes after the allocator's own link word)
 *   knobs keep             run with MALLOC_TRIM_THRESHOLD_ very high: after freeing 64 MiB
 *                          of small blocks the heap keeps it (break does not come down)
 *   knobs trim             default trim threshold: the same frees bring the break down
 *   knobs grow_top         mallopt(M_MMAP_THRESHOLD, 64 MiB): a 1 MiB block at the top of
 *                          the heap, realloc'd to 2, 4, 8 and 16 MiB, grows where it is
 *                          (as glibc's top chunk does: no copy), its contents intact
 *   knobs shrink_top       the same threshold: an 8 MiB block at the top of the heap,
 *                          realloc'd to 1 MiB, stays where it is, keeps its first MiB,
 *                          and the break comes down (the tail is trimmed)
 * Prints "SUMMARY knobs-<mode> failed=N".
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "mmap_threshold")) {
        CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt refused");
        char *before = sbrk(0);
        char *p = malloc(512 << 10);
        memset(p, 1, 512 << 10);
        char *after = sbrk(0);
        struct mallinfo2 m = mallinfo2();
        CHECK(m.hblks == 0, "512 KiB block was mmapped (hblks %zu)", m.hblks);
        CHECK(after > before, "the break did not move (%p -> %p)", (void *)before, (void *)after);
        free(p);
    } else if (!strcmp(mode, "mmap_max")) {
        CHECK(mallopt(M_MMAP_MAX, 0) == 1, "mallopt refused");
        char *before = sbrk(0);
        char *p = malloc(4 << 20);
        memset(p, 2, 4 << 20);
        struct mallinfo2 m = mallinfo2();
        CHECK(m.hblks == 0, "4 MiB block was mmapped with M_MMAP_MAX 0 (hblks %zu)", m.hblks);
        CHECK((char *)sbrk(0) - before >= (4 << 20), "the break moved by only %td", (char *)sbrk(0) - before);
        free(p);
    } else if (!strcmp(mode, "perturb")) {
        CHECK(mallopt(M_PERTURB, 0x5a) == 1, "mallopt refused");
        for (size_t n = 32; n <= 4096; n *= 2) {
            unsigned char *p = malloc(n);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) bad += p[i] != 0xa5;
            CHECK(bad == 0, "malloc(%zu): %zu bytes not 0xa5", n, bad);
            memset(p, 0x11, n);
            free(p);
            unsigned char *q = malloc(n);
            if (q == p) {
                /* glibc and oxmalloc fill freed blocks with the byte, then refill with ~byte on malloc */
                bad = 0;
                for (size_t i = 16; i < n; i++) bad += q[i] != 0xa5;
                CHECK(bad == 0, "re-malloc(%zu): %zu bytes not 0xa5", n, bad);
            }
            unsigned char *z = calloc(1, n);
            bad = 0;
            for (size_t i = 0; i < n; i++) bad += z[i] != 0;
            CHECK(bad == 0, "calloc(%zu) not zero under M_PERTURB", n);
            free(z);
            free(q);
        }
    } else if (!strcmp(mode, "keep") || !strcmp(mode, "trim")) {
        enum { N = 256 * 1024 };
        static void *v[N];
        for (int i = 0; i < N; i++) memset(v[i] = malloc(256), 3, 256);
        char *top = sbrk(0);
        for (int i = N - 1; i >= 0; i--) free(v[i]);
        long down = top - (char *)sbrk(0);
        printf("break_lowered_by=%ld\n", down);
        if (!strcmp(mode, "keep"))
            CHECK(down < (1 << 20), "break came down by %ld with a huge trim threshold", down);
        else
            CHECK(down > (32 << 20), "break came down by only %ld", down);
    } else if (!strcmp(mode, "grow_top")) {
        CHECK(mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1, "mallopt refused");
        size_t n = 1 << 20;
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(1 MiB) failed");
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + 1);
        for (; n < (16 << 20) && p; n *= 2) {
            unsigned char *q = realloc(p, 2 * n);
            CHECK(q != NULL, "realloc to %zu failed", 2 * n);
            if (q == NULL) break;
            CHECK(q == p, "realloc(%zu -> %zu) moved the block at the top of the heap (%p -> %p)", n, 2 * n,
                  (void *)p, (void *)q);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++) bad += q[i] != (unsigned char)(i * 7 + 1);
            CHECK(bad == 0, "realloc(%zu -> %zu): %zu bytes changed", n, 2 * n, bad);
            for (size_t i = n; i < 2 * n; i++) q[i] = (unsigned char)(i * 7 + 1);
            p = q;
        }
        free(p);
    } else if (!strcmp(mode, "shrink_top")) {
        CHECK(mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1, "mallopt refused");
        size_t n = 8 << 20, m = 1 << 20;
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(8 MiB) failed");
        for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 13 + 5);
        char *top = sbrk(0);
        unsigned char *q = realloc(p, m);
        CHECK(q == p, "realloc(8 MiB -> 1 MiB) moved the block (%p -> %p)", (void *)p, (void *)q);
        size_t bad = 0;
        for (size_t i = 0; q && i < m; i++) bad += q[i] != (unsigned char)(i * 13 + 5);
        CHECK(bad == 0, "realloc(8 MiB -> 1 MiB): %zu bytes changed", bad);
        long down = top - (char *)sbrk(0);
        printf("break_lowered_by=%ld\n", down);
        CHECK(down >= (4 << 20), "the break came down by only %ld after the shrink", down);
        free(q);
    } else {
        printf("usage: knobs mmap_threshold|mmap_max|perturb|keep|trim|grow_top|shrink_top\n");
        return 2;
    }
    printf("SUMMARY knobs-%s failed=%d\n", mode, failed);
    return failed != 0;
}
