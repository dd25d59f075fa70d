/*
 * Long stress of the allocator under LD_PRELOAD (scripts/stress.sh, tests/stress.rs).
 *
 *   stress SECONDS THREADS [SEED]
 *
 * THREADS worker threads run random malloc / calloc / realloc / posix_memalign /
 * aligned_alloc / memalign / free / malloc_usable_size with sizes from 0 to 4 MiB, each
 * keeping up to 1000 live blocks filled with a pattern unique to the block, which is
 * checked in full before every free and realloc, on receipt from another thread, and for
 * all of a thread's blocks every 20000 operations. Blocks are handed between threads
 * through a table of atomic slots and freed, reallocated or kept by the receiver. A
 * worker exits after a random number of operations (leaving its blocks to the others
 * through the slots) and the main thread starts a new one, so thread heaps are given
 * back and reused all the time.
 *
 * Meanwhile the main thread forks every ~20 ms: the child (one thread, a copy of a heap
 * that others were using at that instant) checks and frees the main thread's inherited
 * blocks, runs 1000 random operations of its own (some > 128 KiB, some aligned) with the
 * same checks, starts a thread that allocates and frees, and exits 0. A child that fails
 * or takes over 10 s is a failure (killed). A worker that makes no progress for 20 s is a
 * hang (failure).
 *
 * Last line: "SUMMARY stress seconds=S threads=T seed=X ops=N forks=F exchanged=E
 * thread_exits=R failures=K"; exit status 0 only if failures=0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vcalls.h"

#define MAX_THREADS 64
#define MAX_LIVE 1000
#define NSLOTS 256

static double g_seconds;
static int g_threads;
static uint64_t g_seed;
static atomic_int g_stop;
static atomic_long g_ops, g_exchanged, g_thread_exits, g_forks, g_failures;
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static void summary(void) {
    printf("SUMMARY stress seconds=%g threads=%d seed=%llu ops=%ld forks=%ld exchanged=%ld thread_exits=%ld "
           "failures=%ld\n",
           g_seconds, g_threads, (unsigned long long)g_seed, (long)g_ops, (long)g_forks, (long)g_exchanged,
           (long)g_thread_exits, (long)g_failures);
    fflush(stdout);
}

/* A failure in the parent process: report, print the summary and exit 1 at once. */
#define FAILF(...)                                                                                  \
    do {                                                                                            \
        pthread_mutex_lock(&print_lock);                                                            \
        printf("FAIL (seed=%llu, line %d): ", (unsigned long long)g_seed, __LINE__);                \
        printf(__VA_ARGS__);                                                                        \
        printf("\n");                                                                               \
        atomic_fetch_add(&g_failures, 1);                                                           \
        summary();                                                                                  \
        _exit(1);                                                                                   \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#include "rng.h"

/* ------------------------------------------------------------------ blocks and patterns */

struct blk {
    unsigned char *p;
    size_t n;
    uint64_t id; /* pattern seed, unique per block */
};

static inline uint64_t pword(uint64_t id, size_t i) {
    uint64_t x = (id * 0x9E3779B97F4A7C15ull) ^ (i * 0xD6E8FEB86659FD93ull);
    return x ^ (x >> 29);
}

/* Fill bytes [from, to) with the block's pattern (word i of the block holds pword(id, i)). */
static void fill(unsigned char *p, uint64_t id, size_t from, size_t to) {
    size_t o = from;
    for (; o < to && (o % 8); o++) p[o] = (unsigned char)(pword(id, o / 8) >> (8 * (o % 8)));
    for (; o + 8 <= to; o += 8) {
        uint64_t w = pword(id, o / 8);
        memcpy(p + o, &w, 8);
    }
    for (; o < to; o++) p[o] = (unsigned char)(pword(id, o / 8) >> (8 * (o % 8)));
}

/* First offset below n that does not hold the pattern, or SIZE_MAX. */
static size_t bad_offset(const unsigned char *p, uint64_t id, size_t n) {
    size_t o = 0;
    for (; o + 8 <= n; o += 8) {
        uint64_t w = pword(id, o / 8), v;
        memcpy(&v, p + o, 8);
        if (v != w) break;
    }
    for (; o < n; o++)
        if (p[o] != (unsigned char)(pword(id, o / 8) >> (8 * (o % 8)))) return o;
    return SIZE_MAX;
}

static size_t rand_size(uint64_t *rng) {
    uint64_t r = xs(rng) % 10000, x = xs(rng);
    if (r < 4500) return x % 129;                          /* 0..128 */
    if (r < 7500) return 129 + x % (2048 - 128);           /* ..2 KiB */
    if (r < 9800) return 2049 + x % (65536 - 2048);        /* ..64 KiB */
    if (r < 9980) return 65537 + x % ((512u << 10) - 65536); /* ..512 KiB */
    return (512u << 10) + x % (3584u << 10);               /* ..4 MiB */
}

/* ------------------------------------------------------------------ worker threads */

struct worker {
    int slot;
    uint64_t rng;
    uint64_t next_id;
    struct blk b[MAX_LIVE];
    int n;
    atomic_long progress; /* ops done, read by the watchdog */
    atomic_int done;      /* set when the thread is about to exit */
    int leaving;          /* giving its blocks away: adopts none */
    pthread_t th;
    int running;
};

static struct worker *workers[MAX_THREADS];
static _Atomic(struct blk *) slots[NSLOTS];
static atomic_long g_generation;

static void check_block(const struct blk *b, const char *when) {
    size_t bad = bad_offset(b->p, b->id, b->n);
    if (bad != SIZE_MAX)
        FAILF("%s: block %p (size %zu, id %#llx) corrupted at offset %zu", when, (void *)b->p, b->n,
              (unsigned long long)b->id, bad);
}

static void add_block(struct worker *w, unsigned char *p, size_t n, size_t align, const char *how) {
    if (!p) FAILF("%s(%zu, align %zu) returned NULL", how, n, align);
    if ((uintptr_t)p % align) FAILF("%s(%zu) = %p is not %zu-aligned", how, n, (void *)p, align);
    size_t u = v_usable(p);
    if (u < n) FAILF("%s(%zu) = %p: usable size %zu", how, n, (void *)p, u);
    struct blk *b = &w->b[w->n++];
    b->p = p;
    b->n = n;
    b->id = g_seed ^ ((uint64_t)w->slot << 56) ^ ((uint64_t)atomic_load(&g_generation) << 40) ^ w->next_id++;
    fill(p, b->id, 0, n);
}

static void drop_block(struct worker *w, int i) { w->b[i] = w->b[--w->n]; }

static void op_alloc(struct worker *w) {
    size_t n = rand_size(&w->rng);
    uint64_t r = xs(&w->rng);
    size_t al = (size_t)1 << (r >> 8) % 13; /* 1 .. 4096 */
    switch (r % 8) {
    case 0: {
        unsigned char *p = v_calloc(1, n);
        if (p)
            for (size_t i = 0; i < n; i += 61)
                if (p[i]) FAILF("calloc(%zu) = %p: byte %zu is %#x", n, (void *)p, i, p[i]);
        add_block(w, p, n, n >= 16 ? 16 : 1, "calloc");
        break;
    }
    case 1: {
        void *p = NULL;
        if (al < sizeof(void *)) al = sizeof(void *);
        int e = v_posix_memalign(&p, al, n);
        if (e) FAILF("posix_memalign(%zu, %zu) = %d", al, n, e);
        add_block(w, p, n, al, "posix_memalign");
        break;
    }
    case 2:
        add_block(w, v_aligned_alloc(al, n), n, al, "aligned_alloc");
        break;
    case 3:
        add_block(w, v_memalign(al, n), n, al, "memalign");
        break;
    default:
        add_block(w, v_malloc(n), n, n >= 16 ? 16 : 1, "malloc");
    }
}

static void op_free(struct worker *w) {
    int i = (int)(xs(&w->rng) % (uint64_t)w->n);
    check_block(&w->b[i], "before free");
    v_free(w->b[i].p);
    drop_block(w, i);
}

static void op_realloc(struct worker *w) {
    int i = (int)(xs(&w->rng) % (uint64_t)w->n);
    struct blk *b = &w->b[i];
    check_block(b, "before realloc");
    uint64_t r = xs(&w->rng);
    size_t n = (r % 3 == 0) ? b->n / 2 + 1 : (r % 3 == 1) ? b->n + b->n / 2 + 1 : rand_size(&w->rng) + 1;
    unsigned char *q = v_realloc(b->p, n);
    if (!q) FAILF("realloc(%p, %zu -> %zu) returned NULL", (void *)b->p, b->n, n);
    size_t keep = n < b->n ? n : b->n;
    size_t bad = bad_offset(q, b->id, keep);
    if (bad != SIZE_MAX) FAILF("realloc(%p -> %p, %zu -> %zu) lost byte %zu", (void *)b->p, (void *)q, b->n, n, bad);
    if (v_usable(q) < n) FAILF("realloc(%zu): usable size %zu", n, v_usable(q));
    if (n > b->n) fill(q, b->id, b->n, n);
    b->p = q;
    b->n = n;
}

/* Hand a block to another thread; take whatever was in the slot and free it, realloc it
 * or keep it. */
static void op_exchange(struct worker *w) {
    int i = (int)(xs(&w->rng) % (uint64_t)w->n);
    check_block(&w->b[i], "before handing over");
    struct blk *x = v_malloc(sizeof *x);
    if (!x) FAILF("malloc(blk) failed");
    *x = w->b[i];
    drop_block(w, i);
    struct blk *got = atomic_exchange(&slots[xs(&w->rng) % NSLOTS], x);
    atomic_fetch_add(&g_exchanged, 1);
    if (!got) return;
    check_block(got, "block received from another thread");
    uint64_t r = w->leaving ? 2 : xs(&w->rng) % 3;
    if (r == 0 && w->n < MAX_LIVE) {
        w->b[w->n++] = *got;
        op_realloc(w); /* maybe this one, maybe another */
    } else if (r == 1 && w->n < MAX_LIVE) {
        w->b[w->n++] = *got;
    } else {
        v_free(got->p);
    }
    v_free(got);
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    long ops = 5000 + (long)(xs(&w->rng) % 150000), k;
    for (k = 0; k < ops && !atomic_load_explicit(&g_stop, memory_order_relaxed); k++) {
        uint64_t r = xs(&w->rng) % 100;
        if (w->n == 0 || (r < 42 && w->n < MAX_LIVE))
            op_alloc(w);
        else if (r < 80 || w->n >= MAX_LIVE)
            op_free(w);
        else if (r < 90)
            op_realloc(w);
        else if (r < 97)
            op_exchange(w);
        else {
            struct blk *b = &w->b[xs(&w->rng) % (uint64_t)w->n];
            if (v_usable(b->p) < b->n) FAILF("usable size of %p shrank below %zu", (void *)b->p, b->n);
        }
        if (k % 20000 == 19999)
            for (int j = 0; j < w->n; j++) check_block(&w->b[j], "periodic check");
        atomic_store_explicit(&w->progress, k + 1, memory_order_relaxed);
        if ((k & 1023) == 1023) atomic_fetch_add(&g_ops, 1024);
    }
    atomic_fetch_add(&g_ops, k & 1023);
    /* Leave: half of the blocks to the others through the slots, the rest freed. */
    w->leaving = 1;
    while (w->n > 0) {
        if (xs(&w->rng) & 1)
            op_exchange(w);
        else
            op_free(w);
    }
    atomic_fetch_add(&g_thread_exits, 1);
    atomic_store(&w->done, 1);
    return NULL;
}

static void start_worker(int slot) {
    struct worker *w = workers[slot];
    long gen = atomic_fetch_add(&g_generation, 1);
    w->slot = slot;
    w->rng = (g_seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(gen + 1))) | 1;
    w->n = 0;
    w->leaving = 0;
    atomic_store(&w->progress, 0);
    atomic_store(&w->done, 0);
    if (pthread_create(&w->th, NULL, worker_main, w)) FAILF("pthread_create: %s", strerror(errno));
    w->running = 1;
}

/* ------------------------------------------------------------------ fork children */

static void child_fail(const char *msg, size_t a, size_t b) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "FAIL in child %d: %s (%#zx, %#zx)\n", (int)getpid(), msg, a, b);
    if (n > 0) {
        ssize_t wr = write(1, buf, (size_t)n);
        (void)wr;
    }
    _exit(3);
}

static void *child_thread(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
    for (int k = 0; k < 200; k++) {
        size_t n = rand_size(&rng);
        unsigned char *p = v_malloc(n);
        if (!p) child_fail("malloc in a thread of the child", n, 0);
        fill(p, k, 0, n);
        if (bad_offset(p, k, n) != SIZE_MAX) child_fail("block of the child's thread", (size_t)p, n);
        v_free(p);
    }
    return NULL;
}

/* The main thread's own blocks, which children inherit. */
#define MAIN_BLOCKS 64
static struct blk main_blocks[MAIN_BLOCKS];

static void child_work(uint64_t seed) {
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        if (bad_offset(main_blocks[i].p, main_blocks[i].id, main_blocks[i].n) != SIZE_MAX)
            child_fail("inherited block corrupted", (size_t)main_blocks[i].p, main_blocks[i].n);
        if (i % 2) v_free(main_blocks[i].p);
    }
    static struct blk b[256];
    int n = 0;
    uint64_t rng = seed | 1;
    for (int k = 0; k < 1000; k++) {
        uint64_t r = xs(&rng) % 10;
        if (n == 0 || (r < 5 && n < 256)) {
            size_t sz = rand_size(&rng);
            unsigned char *p;
            if (r == 0) {
                size_t al = (size_t)64 << xs(&rng) % 7;
                p = v_aligned_alloc(al, sz);
                if (p && (uintptr_t)p % al) child_fail("misaligned aligned_alloc", (size_t)p, al);
            } else {
                p = v_malloc(sz);
            }
            if (!p) child_fail("malloc returned NULL", sz, 0);
            b[n] = (struct blk){p, sz, seed + (uint64_t)k};
            fill(p, b[n].id, 0, sz);
            n++;
        } else {
            int i = (int)(xs(&rng) % (uint64_t)n);
            if (bad_offset(b[i].p, b[i].id, b[i].n) != SIZE_MAX) child_fail("child's block corrupted", (size_t)b[i].p, b[i].n);
            if (r < 8) {
                v_free(b[i].p);
                b[i] = b[--n];
            } else {
                size_t sz = b[i].n * 2 + 1;
                unsigned char *q = v_realloc(b[i].p, sz);
                if (!q) child_fail("realloc returned NULL", sz, 0);
                if (bad_offset(q, b[i].id, b[i].n) != SIZE_MAX) child_fail("realloc lost the contents", (size_t)q, sz);
                fill(q, b[i].id, b[i].n, sz);
                b[i].p = q;
                b[i].n = sz;
            }
        }
    }
    unsigned char *big = v_malloc(1u << 20);
    if (!big) child_fail("malloc(1 MiB) returned NULL", 0, 0);
    memset(big, 0x5A, 1u << 20);
    v_free(big);
    pthread_t th;
    if (pthread_create(&th, NULL, child_thread, (void *)(uintptr_t)seed) == 0) pthread_join(th, NULL);
    while (n > 0) v_free(b[--n].p);
    for (int i = 0; i < MAIN_BLOCKS; i += 2) v_free(main_blocks[i].p);
    _exit(0);
}

/* Forks a child and waits for it (at most 10 s). */
static void do_fork(uint64_t *rng) {
    uint64_t seed = xs(rng);
    pid_t pid = fork();
    if (pid < 0) FAILF("fork: %s", strerror(errno));
    if (pid == 0) child_work(seed);
    atomic_fetch_add(&g_forks, 1);
    double t0 = now_s();
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                atomic_fetch_add(&g_failures, 1);
                printf("FAIL: child %d (fork %ld) %s %d\n", (int)pid, (long)g_forks,
                       WIFEXITED(st) ? "exited with" : "killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            }
            return;
        }
        if (r < 0 && errno != EINTR) FAILF("waitpid: %s", strerror(errno));
        if (now_s() - t0 > 10) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            atomic_fetch_add(&g_failures, 1);
            printf("FAIL: child %d (fork %ld) hung for 10 s (a lock held across fork?)\n", (int)pid, (long)g_forks);
            return;
        }
        usleep(200);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: stress SECONDS THREADS [SEED]\n");
        return 2;
    }
    g_seconds = atof(argv[1]);
    g_threads = atoi(argv[2]);
    g_seed = argc > 3 ? strtoull(argv[3], NULL, 0) : (uint64_t)time(NULL);
    if (g_threads < 1 || g_threads > MAX_THREADS) {
        fprintf(stderr, "THREADS must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    printf("stress: %g s, %d threads, seed %llu\n", g_seconds, g_threads, (unsigned long long)g_seed);
    uint64_t rng = g_seed | 1;
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        size_t n = rand_size(&rng);
        unsigned char *p = v_malloc(n);
        if (!p) FAILF("malloc(%zu) returned NULL", n);
        main_blocks[i] = (struct blk){p, n, g_seed + 0xABCDEF00ull + (uint64_t)i};
        fill(p, main_blocks[i].id, 0, n);
    }
    for (int t = 0; t < g_threads; t++) {
        workers[t] = calloc(1, sizeof(struct worker));
        if (!workers[t]) FAILF("calloc(worker) failed");
        start_worker(t);
    }
    double start = now_s(), end = start + g_seconds, next_report = start + 10;
    double last_move[MAX_THREADS];
    long last_progress[MAX_THREADS];
    for (int t = 0; t < g_threads; t++) last_move[t] = start, last_progress[t] = 0;
    while (now_s() < end) {
        usleep(20000);
        do_fork(&rng);
        double now = now_s();
        for (int t = 0; t < g_threads; t++) {
            struct worker *w = workers[t];
            if (atomic_load(&w->done)) {
                pthread_join(w->th, NULL);
                start_worker(t);
                last_move[t] = now, last_progress[t] = 0;
                continue;
            }
            long p = atomic_load_explicit(&w->progress, memory_order_relaxed);
            if (p != last_progress[t]) {
                last_progress[t] = p, last_move[t] = now;
            } else if (now - last_move[t] > 20) {
                FAILF("worker %d made no progress for 20 s (hang) at op %ld", t, p);
            }
        }
        if (now >= next_report) {
            printf("  %.0f s: ops=%ld forks=%ld exchanged=%ld thread_exits=%ld failures=%ld\n", now - start,
                   (long)g_ops, (long)g_forks, (long)g_exchanged, (long)g_thread_exits, (long)g_failures);
            next_report += 10;
        }
    }
    atomic_store(&g_stop, 1);
    for (int t = 0; t < g_threads; t++) pthread_join(workers[t]->th, NULL);
    /* Blocks parked in the slots: their threads are gone. */
    long drained = 0;
    for (int s = 0; s < NSLOTS; s++) {
        struct blk *x = atomic_exchange(&slots[s], NULL);
        if (!x) continue;
        check_block(x, "block left in a slot");
        v_free(x->p);
        v_free(x);
        drained++;
    }
    for (int i = 0; i < MAIN_BLOCKS; i++) {
        check_block(&main_blocks[i], "main thread's block at the end");
        v_free(main_blocks[i].p);
    }
    struct mallinfo2 mi = mallinfo2();
    printf("drained %ld blocks from the slots; mallinfo2: arena %zu KiB, in use %zu KiB, mmapped %zu KiB\n", drained,
           mi.arena >> 10, mi.uordblks >> 10, mi.hblkhd >> 10);
    summary();
    return atomic_load(&g_failures) ? 1 : 0;
}
