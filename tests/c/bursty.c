/*
 * A bursty program (issue 4's third RSS scenario): a large temporary working set, then
 * a small steady one, with no call to malloc_trim anywhere.
 *
 *   bursty [burst_mib] [steady_kib] [steady_ms] [worker]
 *
 *   burst    Two threads (main and a worker) each allocate half of ~burst_mib MiB
 *            (default 256) of mixed blocks: 80% of 16..256 B, 15% up to 4 KiB, 4% up to
 *            32 KiB, 1% up to 128 KiB, every byte written. Then the blocks are
 *            shuffled and freed in that random order, half by each thread, so about
 *            half of the frees are cross-thread.
 *   steady   For steady_ms (default 8000), the main thread keeps a live set of
 *            ~steady_kib KiB (default 4096) of 16 B..8 KiB blocks, replacing a random
 *            one at a time (and writing it); the worker does the same with a quarter of
 *            that if `worker` is "churn" (the default), or sleeps if it is "idle".
 *            Every 250 ms the main thread prints
 *              sample t_ms=<since the steady phase began> rss_kib=<statm> live_kib=<both sets>
 * It also prints rss_start_kib (before the burst, after the program's own arrays were
 * touched), rss_peak_kib (after the burst's allocations), mallinfo2 at the end, and
 * "SUMMARY bursty failed=0" if every block kept its contents.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"


static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t burst_size(uint64_t *rng) {
    unsigned r = next(rng) % 100;
    if (r < 80) return 16 + next(rng) % 241;
    if (r < 95) return 257 + next(rng) % (4096 - 256);
    if (r < 99) return 4097 + next(rng) % (32768 - 4096);
    return 32769 + next(rng) % (131072 - 32768);
}

/* Blocks are filled with a pattern of their tag; the first and last bytes are checked. */
static void fill(unsigned char *p, size_t n, unsigned char tag) { memset(p, tag, n); }
static int intact(const unsigned char *p, size_t n, unsigned char tag) { return p[0] == tag && p[n - 1] == tag && p[n / 2] == tag; }

#define MAX_BURST (1 << 19) /* enough for ~1 GiB of bursts at ~2 KiB a block */
static unsigned char *burst[MAX_BURST];
static size_t burst_len[MAX_BURST];
static size_t burst_n;
static size_t burst_target;

#define MAX_STEADY (1 << 16)
struct steady {
    unsigned char *p[MAX_STEADY];
    size_t len[MAX_STEADY];
    size_t n, bytes;
    uint64_t rng;
};
static struct steady main_set, worker_set;

static pthread_barrier_t bar;
static volatile int stop;
static int worker_churns = 1;
static size_t steady_bytes;

/* Allocates blocks [first, first + ...) of `burst` up to half of the target bytes. */
static void burst_alloc(size_t first, uint64_t seed) {
    uint64_t rng = seed;
    size_t bytes = 0;
    for (size_t i = first; i < MAX_BURST && bytes < burst_target / 2; i += 2) {
        size_t n = burst_size(&rng);
        burst[i] = malloc(n);
        CHECK(burst[i] != NULL, "malloc(%zu) failed", n);
        if (!burst[i]) return;
        burst_len[i] = n;
        fill(burst[i], n, (unsigned char)i);
        bytes += n;
    }
}

static void burst_free(size_t parity) {
    for (size_t i = parity; i < burst_n; i += 2) {
        if (!burst[i]) continue;
        if (!intact(burst[i], burst_len[i], (unsigned char)(uintptr_t)burst[i]))
            CHECK(0, "burst block damaged before free");
        free(burst[i]);
        burst[i] = NULL;
    }
}

static void steady_step(struct steady *s) {
    size_t i = next(&s->rng) % s->n;
    if (s->p[i]) {
        if (!intact(s->p[i], s->len[i], (unsigned char)i)) CHECK(0, "steady block %zu damaged", i);
        free(s->p[i]);
        s->bytes -= s->len[i];
    }
    size_t n = 16 + next(&s->rng) % (next(&s->rng) % 8 ? 1024 : 8192);
    s->p[i] = malloc(n);
    CHECK(s->p[i] != NULL, "steady malloc(%zu) failed", n);
    s->len[i] = n;
    s->bytes += n;
    fill(s->p[i], n, (unsigned char)i);
}

/* Sets up a steady set of about `bytes` (mean block ~1.4 KiB). */
static void steady_init(struct steady *s, size_t bytes, uint64_t seed) {
    s->rng = seed;
    s->n = bytes / 1400;
    if (s->n < 1) s->n = 1;
    if (s->n > MAX_STEADY) s->n = MAX_STEADY;
    for (size_t k = 0; k < s->n; k++) steady_step(s);
}

static void steady_done(struct steady *s) {
    for (size_t i = 0; i < s->n; i++) {
        if (s->p[i]) CHECK(intact(s->p[i], s->len[i], (unsigned char)i), "steady block %zu damaged at end", i);
        free(s->p[i]);
        s->p[i] = NULL;
    }
}

static void *worker(void *arg) {
    (void)arg;
    pthread_barrier_wait(&bar); /* main measured the starting RSS */
    burst_alloc(1, 0x9e3779b97f4a7c15ull);
    pthread_barrier_wait(&bar); /* both halves allocated */
    pthread_barrier_wait(&bar); /* main shuffled */
    burst_free(1);
    pthread_barrier_wait(&bar); /* burst freed */
    if (worker_churns) {
        steady_init(&worker_set, steady_bytes / 4, 0x2545f4914f6cdd1dull);
        while (!stop) {
            for (int k = 0; k < 64; k++) steady_step(&worker_set);
            usleep(200);
        }
    } else {
        while (!stop) usleep(10000);
    }
    pthread_barrier_wait(&bar); /* main sampled the last time */
    steady_done(&worker_set);
    return NULL;
}

int main(int argc, char **argv) {
    size_t burst_mib = argc > 1 ? strtoul(argv[1], 0, 10) : 256;
    steady_bytes = (argc > 2 ? strtoul(argv[2], 0, 10) : 4096) * 1024;
    long steady_ms = argc > 3 ? strtol(argv[3], 0, 10) : 8000;
    worker_churns = !(argc > 4 && !strcmp(argv[4], "idle"));
    burst_target = burst_mib << 20;

    /* Touch the program's own arrays so that they are in the starting RSS. */
    memset(burst, 0, sizeof burst);
    memset(burst_len, 0, sizeof burst_len);
    memset(&main_set, 0, sizeof main_set);
    memset(&worker_set, 0, sizeof worker_set);
    pthread_barrier_init(&bar, 0, 2);
    pthread_t t;
    pthread_create(&t, 0, worker, 0);
    long start = rss_kib();
    printf("rss_start_kib=%ld\n", start);
    pthread_barrier_wait(&bar);

    /* Burst: both threads allocate (interleaved slots), then free in a random order. */
    burst_alloc(0, 88172645463325252ull);
    pthread_barrier_wait(&bar);
    burst_n = MAX_BURST;
    while (burst_n > 0 && !burst[burst_n - 1]) burst_n--;
    size_t burst_bytes = 0;
    uint64_t rng = 12345;
    for (size_t i = 0; i < burst_n; i++) burst_bytes += burst_len[i];
    /* Retag each block by its address so that it can be checked after the shuffle. */
    for (size_t i = 0; i < burst_n; i++)
        if (burst[i]) fill(burst[i], burst_len[i], (unsigned char)(uintptr_t)burst[i]);
    printf("burst_blocks=%zu burst_kib=%zu rss_peak_kib=%ld\n", burst_n, burst_bytes / 1024, rss_kib());
    for (size_t i = burst_n; i > 1; i--) {
        size_t j = next(&rng) % i;
        unsigned char *p = burst[i - 1];
        size_t l = burst_len[i - 1];
        burst[i - 1] = burst[j];
        burst_len[i - 1] = burst_len[j];
        burst[j] = p;
        burst_len[j] = l;
    }
    pthread_barrier_wait(&bar);
    burst_free(0);
    pthread_barrier_wait(&bar);
    printf("rss_after_burst_kib=%ld\n", rss_kib());

    /* Steady phase. */
    steady_init(&main_set, steady_bytes, 42);
    long t0 = now_ms(), next_sample = t0;
    for (;;) {
        long now = now_ms();
        if (now >= next_sample) {
            size_t live = main_set.bytes + (worker_churns ? worker_set.bytes : 0);
            printf("sample t_ms=%ld rss_kib=%ld live_kib=%zu\n", now - t0, rss_kib(), live / 1024);
            fflush(stdout);
            next_sample += 250;
            if (now - t0 >= steady_ms) break;
        }
        for (int k = 0; k < 256; k++) steady_step(&main_set);
        usleep(200);
    }
    stop = 1;
    struct mallinfo2 m = mallinfo2();
    printf("mallinfo2 arena=%zu uordblks=%zu fordblks=%zu keepcost=%zu hblkhd=%zu ordblks=%zu\n", m.arena, m.uordblks,
           m.fordblks, m.keepcost, m.hblkhd, m.ordblks);
    pthread_barrier_wait(&bar);
    pthread_join(t, 0);
    steady_done(&main_set);
    printf("SUMMARY bursty failed=%d\n", failed);
    return failed != 0;
}
