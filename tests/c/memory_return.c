/*
 * Memory goes back to the OS (issue 4's scenarios), and the blocks that stay are intact.
 *
 *   memory_return reverse   1 Mi blocks of 256 B, freed in reverse order, no trim call:
 *                           prints rss_start_kib, rss_after_kib
 *   memory_return sparse    the same blocks, 63 of every 64 freed, then malloc_trim(0):
 *                           prints rss_start_kib, rss_after_trim_kib; every survivor is checked
 *                           before and after the trim, then the freed space is reused
 *                           (blocks of the same and other sizes, all checked, no overlap
 *                           with survivors) and checked again.
 *   memory_return mallinfo  a known live set (10 MiB of 1 KiB blocks, 5 MiB from a thread
 *                           that exits, one 200 KB block): mallinfo2's uordblks grows by the
 *                           live bytes within 5%, arena = uordblks + fordblks, and it falls
 *                           back when the blocks are freed.
 *   memory_return mixed     many size classes, random 90% freed, malloc_trim, reuse: the
 *                           survivors and the new blocks keep their contents.
 *   memory_return large     64 blocks of 1 MiB allocated and freed (mmapped: this raises
 *                           glibc's dynamic mmap threshold), 64 more (now from the heap)
 *                           with a small block after them, which pins the top of the
 *                           heap, freed; then 2.5 s of a small churning working set (1000
 *                           blocks of 16..4096 B), no trim call: prints rss_start_kib,
 *                           rss_freed_kib (right after the frees), rss_after_kib.
 *   memory_return topcycle [fixed|thread]
 *                           a loop over large buffers: one 4 MiB block allocated and freed
 *                           (mmapped: this raises the dynamic mmap threshold to 4 MiB and
 *                           the trim threshold to 8 MiB), then 200 turns of 8 blocks of
 *                           2 MiB (from the heap, at its top) allocated, filled, checked
 *                           and freed; then 2.5 s of a small churning working set. Prints
 *                           trims_late (how many of the last 100 turns lowered the break
 *                           when their blocks were freed), faults_late (page faults in
 *                           those turns; each turn writes 4096 pages), rss_start_kib,
 *                           rss_cycling_kib (after the last turn), rss_after_kib. With
 *                           "fixed", mallopt sets M_MMAP_THRESHOLD (64 MiB) and
 *                           M_TRIM_THRESHOLD (1 MiB) first, which turns the dynamic
 *                           threshold off; with "thread", a second thread runs the loop
 *                           (in oxmalloc, from an arena that grows with mmap, not brk).
 *   memory_return handoff   the main thread allocates 3000 blocks of 500 B (1.5 MB) and frees
 *                           them all; then a second thread allocates and frees 64 blocks of
 *                           100 kB without writing them (its arena now has free pages), and
 *                           allocates 3000 blocks of 500 B, fills and checks them. Prints
 *                           rss_before_kib (before the 500 B blocks), rss_thread_kib (with
 *                           them out), reused (how many lie where the main thread's were).
 *   memory_return convert   one thread allocates 3000 blocks of 500 B (1.5 MB) and frees them
 *                           all, then allocates 1500 blocks of 1000 B, fills and checks
 *                           them. Prints rss_freed_kib, rss_after_kib (with the 1000 B
 *                           blocks out), reused (how many of them lie where the 500 B ones
 *                           were).
 * Exit status 0 and a line "SUMMARY memory-return-<mode> failed=0" when every check holds.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


static void fill(unsigned char *p, size_t n, uint64_t tag) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(tag * 131 + i * 7);
}

static int intact(const unsigned char *p, size_t n, uint64_t tag) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(tag * 131 + i * 7)) return 0;
    return 1;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define N (1 << 20)

static void *thread_blocks(void *arg) {
    (void)arg;
    void **v = malloc(5000 * sizeof *v);
    for (int i = 0; i < 5000; i++) v[i] = malloc(1024);
    return v;
}

/* A small working set churning for `ms` (1000 blocks of 16..4096 B, 200 replaced every
 * millisecond, each checked before its free); its blocks stay live until
 * small_churn_end. */
enum { CHURN = 1000 };
static unsigned char *churn[CHURN];
static size_t churn_len[CHURN];
static void small_churn(long ms) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int k = 0; k < 200; k++) {
            int i = next() % CHURN;
            if (churn[i]) CHECK(intact(churn[i], churn_len[i], (uint64_t)i), "working block %d damaged", i);
            free(churn[i]);
            churn_len[i] = 16 + next() % 4081;
            churn[i] = malloc(churn_len[i]);
            fill(churn[i], churn_len[i], (uint64_t)i);
        }
        usleep(1000);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}
static void small_churn_end(void) {
    for (int i = 0; i < CHURN; i++) {
        free(churn[i]);
        churn[i] = NULL;
    }
}

/* topcycle: the loop over large buffers (see the mode's description above). Counts, over
 * its last 100 turns, the turns that lowered the break when their blocks were freed and
 * the page faults. */
static long cycle_trims, cycle_faults;
static void *top_cycle(void *arg) {
    enum { B = 8, TURNS = 200, MIB = 1 << 20 };
    static unsigned char *v[B];
    void *raise = malloc(4 * MIB);
    CHECK(raise != NULL, "malloc(4 MiB) failed");
    memset(raise, 1, 4 * MIB);
    free(raise);
    struct rusage ru;
    long faults_before = 0;
    for (int t = 0; t < TURNS; t++) {
        if (t == TURNS / 2) {
            getrusage(RUSAGE_SELF, &ru);
            faults_before = ru.ru_minflt;
        }
        for (int i = 0; i < B; i++) {
            v[i] = malloc(2 * MIB);
            CHECK(v[i] != NULL, "malloc(2 MiB) failed");
            fill(v[i], 2 * MIB, (uint64_t)(t * B + i));
        }
        /* the real break (sbrk(0) is libc's idea of it, which a preloaded allocator that
         * moves the break with the syscall does not update) */
        long brk_full = syscall(SYS_brk, 0);
        for (int i = 0; i < B; i++) {
            CHECK(intact(v[i], 2 * MIB, (uint64_t)(t * B + i)), "2 MiB block %d damaged (turn %d)", i, t);
            free(v[i]);
        }
        if (t >= TURNS / 2 && syscall(SYS_brk, 0) < brk_full) cycle_trims++;
        if (failed) break;
    }
    getrusage(RUSAGE_SELF, &ru);
    cycle_faults = ru.ru_minflt - faults_before;
    return arg;
}

enum { HANDOFF = 3000, HANDOFF_SIZE = 500 };

/* n blocks of `size` into w[], each filled (tag + i); widens [*lo, *hi) to cover them
 * when lo is given, else returns how many lie inside [reuse_lo, reuse_hi). */
static long alloc_filled(unsigned char **w, int n, size_t size, uint64_t tag, uintptr_t *lo, uintptr_t *hi,
                         uintptr_t reuse_lo, uintptr_t reuse_hi) {
    long inside = 0;
    for (int i = 0; i < n; i++) {
        w[i] = malloc(size);
        CHECK(w[i] != NULL, "malloc(%zu) failed", size);
        fill(w[i], size, tag + (uint64_t)i);
        uintptr_t a = (uintptr_t)w[i];
        if (lo) {
            if (a < *lo) *lo = a;
            if (a + size > *hi) *hi = a + size;
        } else if (a >= reuse_lo && a < reuse_hi) {
            inside++;
        }
    }
    return inside;
}

/* Checks and frees what alloc_filled gave. */
static void check_free(unsigned char **w, int n, size_t size, uint64_t tag) {
    for (int i = 0; i < n; i++) {
        CHECK(intact(w[i], size, tag + (uint64_t)i), "block %d of %zu B damaged", i, size);
        free(w[i]);
    }
}

static uintptr_t handoff_lo, handoff_hi;
static long handoff_rss_before, handoff_rss, handoff_reused;
static void *handoff_thread(void *arg) {
    static unsigned char *w[HANDOFF];
    /* Give this thread's arena free pages first: 64 blocks of 100 kB (a size whose
     * spans no other class has), not written to, then freed. */
    enum { BIG = 64 };
    void *big[BIG];
    for (int i = 0; i < BIG; i++) {
        big[i] = malloc(100000);
        CHECK(big[i] != NULL, "malloc(100000) failed");
    }
    for (int i = 0; i < BIG; i++) free(big[i]);
    handoff_rss_before = rss_kib();
    handoff_reused = alloc_filled(w, HANDOFF, HANDOFF_SIZE, 11, NULL, NULL, handoff_lo, handoff_hi);
    handoff_rss = rss_kib();
    check_free(w, HANDOFF, HANDOFF_SIZE, 11);
    return arg;
}

static long within(size_t got, size_t want) {
    return got >= want - want / 20 && got <= want + want / 20;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "reverse";
    static unsigned char *v[N];
    long start = rss_kib();
    if (!strcmp(mode, "reverse") || !strcmp(mode, "sparse")) {
        for (int i = 0; i < N; i++) {
            v[i] = malloc(256);
            CHECK(v[i] != NULL, "malloc(256) failed");
            fill(v[i], 256, (uint64_t)i);
        }
        if (!strcmp(mode, "reverse")) {
            for (int i = N - 1; i >= 0; i--) free(v[i]);
            printf("rss_start_kib=%ld\nrss_after_kib=%ld\n", start, rss_kib());
        } else {
            for (int i = 0; i < N; i++)
                if (i % 64) free(v[i]);
            malloc_trim(0);
            long after = rss_kib();
            for (int i = 0; i < N; i += 64) CHECK(intact(v[i], 256, (uint64_t)i), "survivor %d damaged by trim", i);
            printf("rss_start_kib=%ld\nrss_after_trim_kib=%ld\n", start, after);
            /* Reuse the purged space: same size and a neighbouring one. */
            for (int i = 0; i < N; i++) {
                if (i % 64 == 0) continue;
                size_t n = i % 2 ? 256 : 200;
                v[i] = malloc(n);
                CHECK(v[i] != NULL, "malloc after trim failed");
                fill(v[i], n, (uint64_t)i + 7);
            }
            for (int i = 0; i < N; i++) {
                if (i % 64 == 0)
                    CHECK(intact(v[i], 256, (uint64_t)i), "survivor %d damaged after reuse", i);
                else
                    CHECK(intact(v[i], i % 2 ? 256 : 200, (uint64_t)i + 7), "reused block %d damaged", i);
                if (failed > 20) break;
            }
            for (int i = 0; i < N; i++) free(v[i]);
        }
    } else if (!strcmp(mode, "convert")) {
        uintptr_t lo = UINTPTR_MAX, hi = 0;
        alloc_filled(v, HANDOFF, HANDOFF_SIZE, 0, &lo, &hi, 0, 0);
        check_free(v, HANDOFF, HANDOFF_SIZE, 0);
        long freed = rss_kib();
        long reused = alloc_filled(v, HANDOFF / 2, 2 * HANDOFF_SIZE, 5, NULL, NULL, lo, hi);
        long after = rss_kib();
        check_free(v, HANDOFF / 2, 2 * HANDOFF_SIZE, 5);
        printf("rss_freed_kib=%ld\nrss_after_kib=%ld\nreused=%ld\n", freed, after, reused);
    } else if (!strcmp(mode, "handoff")) {
        handoff_lo = UINTPTR_MAX;
        alloc_filled(v, HANDOFF, HANDOFF_SIZE, 0, &handoff_lo, &handoff_hi, 0, 0);
        check_free(v, HANDOFF, HANDOFF_SIZE, 0);
        pthread_t t;
        pthread_create(&t, 0, handoff_thread, 0);
        pthread_join(t, 0);
        printf("rss_before_kib=%ld\nrss_thread_kib=%ld\nreused=%ld\n", handoff_rss_before, handoff_rss, handoff_reused);
    } else if (!strcmp(mode, "mallinfo")) {
        struct mallinfo2 a = mallinfo2();
        for (int i = 0; i < 10240; i++) v[i] = malloc(1024);
        unsigned char *big = malloc(200000);
        pthread_t t;
        void *tv;
        pthread_create(&t, 0, thread_blocks, 0);
        pthread_join(t, &tv);
        struct mallinfo2 b = mallinfo2();
        size_t live = 10240 * 1024 + 5000 * 1024 + 200000;
        CHECK(within(b.uordblks - a.uordblks + b.hblkhd - a.hblkhd, live), "uordblks(+hblkhd) grew %zu, live %zu",
              b.uordblks - a.uordblks + b.hblkhd - a.hblkhd, live);
        CHECK(b.arena == b.uordblks + b.fordblks, "arena %zu != uordblks %zu + fordblks %zu", b.arena, b.uordblks, b.fordblks);
        for (int i = 0; i < 10240; i++) free(v[i]);
        free(big);
        struct mallinfo2 c = mallinfo2();
        CHECK(b.uordblks + b.hblkhd - c.uordblks - c.hblkhd >= (10240 * 1024 + 200000) * 19 / 20,
              "freeing 10.2 MB lowered uordblks+hblkhd by only %zu", b.uordblks + b.hblkhd - c.uordblks - c.hblkhd);
        printf("uordblks_growth=%zu live=%zu\n", b.uordblks - a.uordblks + b.hblkhd - a.hblkhd, live);
    } else if (!strcmp(mode, "large")) {
        enum { L = 64, MIB = 1 << 20 };
        for (int r = 0; r < 2; r++) {
            for (int i = 0; i < L; i++) {
                v[i] = malloc(MIB);
                CHECK(v[i] != NULL, "malloc(1 MiB) failed");
                fill(v[i], MIB, (uint64_t)i + (uint64_t)r);
            }
            unsigned char *pin = r ? malloc(64) : NULL;
            for (int i = 0; i < L; i++) {
                CHECK(intact(v[i], MIB, (uint64_t)i + (uint64_t)r), "1 MiB block %d damaged", i);
                free(v[i]);
                v[i] = NULL;
            }
            v[L] = pin;
        }
        long freed = rss_kib();
        small_churn(2500);
        printf("rss_start_kib=%ld\nrss_freed_kib=%ld\nrss_after_kib=%ld\n", start, freed, rss_kib());
        small_churn_end();
        free(v[L]);
    } else if (!strcmp(mode, "topcycle")) {
        enum { MIB = 1 << 20 };
        int in_thread = argc > 2 && !strcmp(argv[2], "thread");
        if (argc > 2 && !strcmp(argv[2], "fixed")) {
            CHECK(mallopt(M_MMAP_THRESHOLD, 64 * MIB) == 1, "mallopt(M_MMAP_THRESHOLD) failed");
            CHECK(mallopt(M_TRIM_THRESHOLD, MIB) == 1, "mallopt(M_TRIM_THRESHOLD) failed");
        }
        if (in_thread) {
            pthread_t th;
            pthread_create(&th, NULL, top_cycle, NULL);
            pthread_join(th, NULL);
        } else {
            top_cycle(NULL);
        }
        long cycling = rss_kib();
        small_churn(2500);
        printf("trims_late=%ld\nfaults_late=%ld\nrss_start_kib=%ld\nrss_cycling_kib=%ld\nrss_after_kib=%ld\n", cycle_trims,
               cycle_faults, start, cycling, rss_kib());
        small_churn_end();
    } else {
        /* mixed: sizes 16..4096, random 90% freed, trim, reuse, check all */
        enum { M = 200000 };
        static size_t sz[M];
        for (int r = 0; r < 3; r++) {
            for (int i = 0; i < M; i++) {
                if (!v[i]) {
                    sz[i] = 16 + next() % 4081;
                    v[i] = malloc(sz[i]);
                    fill(v[i], sz[i], (uint64_t)i * 3 + (uint64_t)r);
                    sz[i] |= (size_t)r << 32;
                }
            }
            for (int i = 0; i < M; i++)
                if (next() % 10) {
                    free(v[i]);
                    v[i] = NULL;
                }
            malloc_trim(0);
            for (int i = 0; i < M; i++)
                if (v[i])
                    CHECK(intact(v[i], sz[i] & 0xffffffff, (uint64_t)i * 3 + (sz[i] >> 32)), "block %d damaged (round %d)", i, r);
            if (failed > 20) break;
        }
        for (int i = 0; i < M; i++) free(v[i]);
    }
    printf("SUMMARY memory-return-%s failed=%d\n", mode, failed);
    return failed != 0;
}
