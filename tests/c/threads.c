/*
 * Multi-threaded allocation tests.
 *
 *   threads waves    WAVES THREADS OPS   threads hand blocks to each other through shared
 *                                        slots (atomic exchange) and free the other side's
 *                                        blocks; threads exit at the end of every wave and
 *                                        leave blocks behind for the next wave to free.
 *   threads churn    TOTAL BATCH         TOTAL short-lived threads (BATCH at a time) each
 *                                        allocate a few KiB, check, free and exit; VmRSS
 *                                        after the first 100 threads vs at the end must stay
 *                                        within 8 MiB.
 *   threads prodcons BLOCKS QUEUE        one producer allocates BLOCKS blocks of 16..512
 *                                        bytes, 2 consumers free them; at most QUEUE blocks
 *                                        in flight; VmHWM must stay below 64 MiB.
 *   threads lifo                         a thread frees 6 blocks of one size that another
 *                                        thread allocated, then mallocs 6 of that size: it
 *                                        must get them back, the last freed first (and a
 *                                        block it freed itself, at once).
 *   threads scratch                      4 threads each free a small block handed to them
 *                                        (neighbours), then allocate 200 of that size: none
 *                                        may share a cache line with a handed-out block.
 *   threads pass                         A allocates 2000 blocks and stays alive, B frees
 *                                        them, then C allocates 2000: prints how many of
 *                                        C's blocks are A's old ones (reused=N).
 *
 * Every block carries a header (owner thread, sequence number, size, checksum) and a
 * pattern derived from them; every byte is checked by whoever frees it.
 * Last line: "SUMMARY threads-<mode> ... failed=N".
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

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *mode = "?";

#define FAILF(...)                                                           \
    do {                                                                     \
        pthread_mutex_lock(&print_lock);                                     \
        printf("FAIL line %d: ", __LINE__);                                  \
        printf(__VA_ARGS__);                                                 \
        printf("\nSUMMARY threads-%s failed=1\n", mode);                     \
        fflush(stdout);                                                      \
        _exit(1);                                                            \
    } while (0)

#include "rng.h"

/* ------------------------------------------------------------------ tagged blocks */

struct hdr {
    uint64_t tag; /* owner << 40 | seq */
    uint64_t size;
    uint64_t check;
};
#define HDR sizeof(struct hdr)

static inline uint64_t hsum(uint64_t tag, uint64_t size) { return (tag ^ 0xA5A5A5A5DEADBEEFull) * 0x9E3779B97F4A7C15ull + size; }
static inline uint64_t pword(uint64_t tag, size_t i) { return (tag + i) * 0xD6E8FEB86659FD93ull ^ (tag >> 17); }

static void *make_block(uint64_t owner, uint64_t seq, size_t size) {
    if (size < HDR) size = HDR;
    unsigned char *p = v_malloc(size);
    if (!p) FAILF("malloc(%zu) returned NULL in thread %llu", size, (unsigned long long)owner);
    if ((uintptr_t)p & 15) FAILF("malloc(%zu) = %p not 16-aligned", size, (void *)p);
    if (v_usable(p) < size) FAILF("malloc(%zu): usable %zu", size, v_usable(p));
    struct hdr h = {owner << 40 | seq, size, 0};
    h.check = hsum(h.tag, size);
    memcpy(p, &h, HDR);
    size_t words = (size - HDR) / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pword(h.tag, i);
        memcpy(p + HDR + 8 * i, &w, 8);
    }
    uint64_t w = pword(h.tag, i);
    memcpy(p + HDR + 8 * i, &w, (size - HDR) % 8);
    return p;
}

/* Verifies every byte; returns the block's size. */
static size_t check_block(const unsigned char *p, const char *who) {
    struct hdr h;
    memcpy(&h, p, HDR);
    if (h.check != hsum(h.tag, h.size) || h.size < HDR || h.size > (64u << 20))
        FAILF("%s: block %p has a corrupt header (tag %#llx size %llu check %#llx)", who, (const void *)p,
              (unsigned long long)h.tag, (unsigned long long)h.size, (unsigned long long)h.check);
    size_t words = (h.size - HDR) / 8, i;
    for (i = 0; i < words; i++) {
        uint64_t w = pword(h.tag, i), v;
        memcpy(&v, p + HDR + 8 * i, 8);
        if (v != w)
            FAILF("%s: block %p (owner thread %llu, seq %llu, size %llu) corrupted at offset %zu", who, (const void *)p,
                  (unsigned long long)(h.tag >> 40), (unsigned long long)(h.tag & ((1ull << 40) - 1)),
                  (unsigned long long)h.size, HDR + 8 * i);
    }
    uint64_t w = pword(h.tag, i);
    if (memcmp(p + HDR + 8 * i, &w, (h.size - HDR) % 8))
        FAILF("%s: block %p (size %llu) corrupted in its last bytes", who, (const void *)p, (unsigned long long)h.size);
    return h.size;
}

static size_t rand_size(uint64_t *r) {
    uint64_t k = xs(r) % 10000, x = xs(r);
    if (k < 6000) return HDR + x % (256 - HDR);
    if (k < 9500) return 256 + x % (4096 - 256);
    if (k < 9990) return 4096 + x % (65536 - 4096);
    return (256u << 10) + x % (768u << 10);
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

/* ------------------------------------------------------------------ waves */

#define NSLOTS 256
#define NLOCAL 64
static _Atomic(unsigned char *) slots[NSLOTS];
static long g_ops;
static atomic_long handed, received, freed_total;

struct wave_arg {
    uint64_t owner;
};

static void *wave_thread(void *arg) {
    uint64_t owner = ((struct wave_arg *)arg)->owner;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (owner + 1) | 1, seq = 0;
    unsigned char *local[NLOCAL];
    int nl = 0;
    long my_handed = 0, my_received = 0, my_freed = 0;
    for (long op = 0; op < g_ops; op++) {
        uint64_t r = xs(&rng) % 10;
        if (r < 5) {
            unsigned char *b = make_block(owner, seq++, rand_size(&rng));
            unsigned char *got = atomic_exchange(&slots[xs(&rng) % NSLOTS], b);
            my_handed++;
            if (got) {
                check_block(got, "block received through a slot");
                v_free(got);
                my_received++;
                my_freed++;
            }
        } else if (r < 8 || nl == 0) {
            if (nl == NLOCAL) {
                int i = (int)(xs(&rng) % NLOCAL);
                check_block(local[i], "local block");
                v_free(local[i]);
                my_freed++;
                local[i] = local[--nl];
            }
            local[nl++] = make_block(owner, seq++, rand_size(&rng));
        } else {
            int i = (int)(xs(&rng) % (uint64_t)nl);
            check_block(local[i], "local block");
            v_free(local[i]);
            my_freed++;
            local[i] = local[--nl];
        }
    }
    /* Leave half of the local blocks behind in the slots for other (later) threads. */
    for (int i = 0; i < nl; i++) {
        if (i & 1) {
            unsigned char *got = atomic_exchange(&slots[xs(&rng) % NSLOTS], local[i]);
            my_handed++;
            if (got) {
                check_block(got, "block received at thread exit");
                v_free(got);
                my_freed++;
            }
        } else {
            check_block(local[i], "local block at exit");
            v_free(local[i]);
            my_freed++;
        }
    }
    atomic_fetch_add(&handed, my_handed);
    atomic_fetch_add(&received, my_received);
    atomic_fetch_add(&freed_total, my_freed);
    return NULL;
}

static int mode_waves(int waves, int nthreads, long ops) {
    g_ops = ops;
    pthread_t th[256];
    struct wave_arg args[256];
    if (nthreads > 256) nthreads = 256;
    for (int w = 0; w < waves; w++) {
        for (int t = 0; t < nthreads; t++) {
            args[t].owner = (uint64_t)w * 1000 + (uint64_t)t + 1;
            if (pthread_create(&th[t], NULL, wave_thread, &args[t])) FAILF("pthread_create: %s", strerror(errno));
        }
        for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
        int parked = 0;
        for (int s = 0; s < NSLOTS; s++)
            if (atomic_load(&slots[s])) parked++;
        printf("wave %d: %d threads done, %d blocks of exited threads parked in slots, VmRSS %ld KiB\n", w, nthreads,
               parked, status_kib("VmRSS"));
    }
    int drained = 0;
    for (int s = 0; s < NSLOTS; s++) {
        unsigned char *b = atomic_exchange(&slots[s], NULL);
        if (b) {
            check_block(b, "block drained at the end");
            v_free(b);
            drained++;
        }
    }
    printf("handed %ld blocks through slots, %ld received and freed by another thread, %d drained by main\n",
           (long)handed, (long)received, drained);
    if (received < ops) FAILF("too few cross-thread frees (%ld): the test did not exercise the exchange", (long)received);
    printf("SUMMARY threads-waves waves=%d threads=%d ops=%ld failed=0\n", waves, nthreads, ops);
    return 0;
}

/* ------------------------------------------------------------------ churn */

static atomic_long churn_seq;

static void *churn_thread(void *arg) {
    uint64_t id = (uint64_t)(uintptr_t)arg;
    uint64_t rng = (id + 1) * 0x9E3779B97F4A7C15ull | 1;
    enum { NB = 24 };
    unsigned char *b[NB];
    int n = NB;
    for (int i = 0; i < NB; i++) {
        size_t sz;
        if (i == 0)
            sz = 4096 + xs(&rng) % 12288; /* one 4..16 KiB block */
        else if (i == 1 && id % 50 == 0)
            sz = 200000 + xs(&rng) % 100000; /* now and then a large one */
        else
            sz = HDR + xs(&rng) % 500;
        b[i] = make_block(id, (uint64_t)i, sz);
    }
    /* free in random order, checking every byte */
    while (n > 0) {
        int i = (int)(xs(&rng) % (uint64_t)n);
        check_block(b[i], "churn block");
        v_free(b[i]);
        b[i] = b[--n];
    }
    atomic_fetch_add(&churn_seq, 1);
    return NULL;
}

static int mode_churn(long total, int batch) {
    pthread_t th[64];
    if (batch > 64) batch = 64;
    long rss100 = -1, created = 0;
    while (created < total) {
        int k = 0;
        for (; k < batch && created < total; k++, created++)
            if (pthread_create(&th[k], NULL, churn_thread, (void *)(uintptr_t)created))
                FAILF("pthread_create #%ld: %s", created, strerror(errno));
        for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
        if (rss100 < 0 && created >= 100) {
            rss100 = status_kib("VmRSS");
            printf("VmRSS after %ld threads: %ld KiB\n", created, rss100);
        }
    }
    long rss_end = status_kib("VmRSS");
    printf("VmRSS after %ld threads: %ld KiB (growth %ld KiB); VmHWM %ld KiB\n", created, rss_end, rss_end - rss100,
           status_kib("VmHWM"));
    if ((long)churn_seq != total) FAILF("only %ld of %ld threads completed", (long)churn_seq, total);
    if (rss_end > rss100 + 8 * 1024)
        FAILF("RSS grew from %ld KiB (after 100 threads) to %ld KiB (after %ld threads): +%ld KiB > 8 MiB; memory of "
              "exited threads is not reused",
              rss100, rss_end, total, rss_end - rss100);
    printf("SUMMARY threads-churn threads=%ld rss100=%ld rss_end=%ld failed=0\n", total, rss100, rss_end);
    return 0;
}

/* ------------------------------------------------------------------ producer / consumer */

static unsigned char **queue;
static long qcap, qhead, qtail; /* qtail - qhead = count */
static int producer_done;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qnot_full = PTHREAD_COND_INITIALIZER, qnot_empty = PTHREAD_COND_INITIALIZER;
static atomic_long consumed;
static atomic_ullong seq_sum;

static long g_blocks;

static void *producer(void *arg) {
    (void)arg;
    uint64_t rng = 12345;
    enum { BATCH = 64 };
    unsigned char *batch[BATCH];
    for (long i = 0; i < g_blocks;) {
        int k = 0;
        for (; k < BATCH && i < g_blocks; k++, i++) batch[k] = make_block(1, (uint64_t)i, 16 + xs(&rng) % 497);
        pthread_mutex_lock(&qlock);
        for (int j = 0; j < k; j++) {
            while (qtail - qhead == qcap) pthread_cond_wait(&qnot_full, &qlock);
            queue[qtail++ % qcap] = batch[j];
        }
        pthread_cond_broadcast(&qnot_empty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    producer_done = 1;
    pthread_cond_broadcast(&qnot_empty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    enum { BATCH = 64 };
    unsigned char *batch[BATCH];
    unsigned long long sum = 0;
    long n = 0;
    for (;;) {
        int k = 0;
        pthread_mutex_lock(&qlock);
        while (qtail == qhead && !producer_done) pthread_cond_wait(&qnot_empty, &qlock);
        while (k < BATCH && qtail != qhead) batch[k++] = queue[qhead++ % qcap];
        int done = producer_done && qtail == qhead;
        pthread_cond_signal(&qnot_full);
        pthread_mutex_unlock(&qlock);
        for (int j = 0; j < k; j++) {
            struct hdr h;
            check_block(batch[j], "consumer");
            memcpy(&h, batch[j], HDR);
            sum += h.tag & ((1ull << 40) - 1);
            v_free(batch[j]);
            n++;
        }
        if (done && k == 0) break;
    }
    atomic_fetch_add(&consumed, n);
    atomic_fetch_add(&seq_sum, sum);
    return NULL;
}

static int mode_prodcons(long blocks, long cap) {
    g_blocks = blocks;
    qcap = cap;
    queue = v_malloc((size_t)cap * sizeof *queue);
    long hwm0 = status_kib("VmHWM");
    pthread_t p, c[2];
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c[0], NULL, consumer, NULL);
    pthread_create(&c[1], NULL, consumer, NULL);
    pthread_join(p, NULL);
    pthread_join(c[0], NULL);
    pthread_join(c[1], NULL);
    long hwm = status_kib("VmHWM");
    unsigned long long want = (unsigned long long)blocks * (unsigned long long)(blocks - 1) / 2;
    printf("consumed %ld blocks; VmHWM %ld KiB at start, %ld KiB at end; VmRSS %ld KiB\n", (long)consumed, hwm0, hwm,
           status_kib("VmRSS"));
    if ((long)consumed != blocks) FAILF("consumed %ld blocks, produced %ld", (long)consumed, blocks);
    if ((unsigned long long)seq_sum != want) FAILF("sum of sequence numbers %llu, want %llu", (unsigned long long)seq_sum, want);
    if (hwm >= 64 * 1024)
        FAILF("peak RSS (VmHWM) %ld KiB >= 64 MiB with at most %ld blocks of <= 512 bytes in flight: memory freed by "
              "the consumer threads is not reused by the producer",
              hwm, cap);
    v_free(queue);
    printf("SUMMARY threads-prodcons blocks=%ld vmhwm_kib=%ld failed=0\n", blocks, hwm);
    return 0;
}

/* ------------------------------------------------------------------ lifo */

#define LIFO_N 6
#define LIFO_SIZE 100
static char *lifo_blocks[LIFO_N];

static void *lifo_worker(void *arg) {
    (void)arg;
    /* This thread's first malloc sets up its cache. */
    char *own = v_malloc(LIFO_SIZE);
    memset(own, 1, LIFO_SIZE);
    v_free(own);
    char *again = v_malloc(LIFO_SIZE);
    if (again != own) FAILF("own block: freed %p, malloc gave %p", (void *)own, (void *)again);
    v_free(again);
    char *first = v_malloc(LIFO_SIZE); /* takes `own` back out of the cache */
    for (int i = 0; i < LIFO_N; i++) {
        for (int k = 0; k < LIFO_SIZE; k++)
            if (lifo_blocks[i][k] != (char)(i + 1)) FAILF("block %d byte %d changed", i, k);
        v_free(lifo_blocks[i]);
    }
    for (int i = LIFO_N - 1; i >= 0; i--) {
        char *p = v_malloc(LIFO_SIZE);
        if (p != lifo_blocks[i]) FAILF("malloc %d gave %p, expected the block freed %d-th last (%p)", LIFO_N - 1 - i, (void *)p, LIFO_N - 1 - i, (void *)lifo_blocks[i]);
        memset(p, 0x5a, LIFO_SIZE);
        lifo_blocks[i] = p;
    }
    for (int i = 0; i < LIFO_N; i++) v_free(lifo_blocks[i]);
    v_free(first);
    return NULL;
}

static int mode_lifo(void) {
    for (int i = 0; i < LIFO_N; i++) {
        lifo_blocks[i] = v_malloc(LIFO_SIZE);
        memset(lifo_blocks[i], i + 1, LIFO_SIZE);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, lifo_worker, NULL) != 0) FAILF("pthread_create");
    pthread_join(t, NULL);
    printf("SUMMARY threads-lifo blocks=%d failed=0\n", LIFO_N);
    return 0;
}

/* ------------------------------------------------------------------ scratch */

/* Hoard's cache-scratch, as a check: the main thread allocates one small block per
 * thread (neighbours, sharing cache lines) and hands them out; each thread frees its
 * block first thing, then allocates blocks of that size and keeps them. None of those
 * may share a cache line with the handed-out blocks: the thread would write into a
 * line other threads write into. */

#define SCRATCH_T 4
#define SCRATCH_SIZE 8
#define SCRATCH_KEEP 200
static char *scratch_given[SCRATCH_T];

static int shares_line(const char *p, const char *q) { return ((uintptr_t)p >> 6) == ((uintptr_t)q >> 6); }

static void *scratch_worker(void *arg) {
    long t = (long)arg;
    char *given = scratch_given[t];
    for (int k = 0; k < SCRATCH_SIZE; k++)
        if (given[k] != (char)(t + 1)) FAILF("thread %ld: given block byte %d changed", t, k);
    v_free(given);
    char *kept[SCRATCH_KEEP];
    for (int i = 0; i < SCRATCH_KEEP; i++) {
        kept[i] = v_malloc(SCRATCH_SIZE);
        memset(kept[i], 0x40 + (int)t, SCRATCH_SIZE);
        for (int g = 0; g < SCRATCH_T; g++)
            if (shares_line(kept[i], scratch_given[g]))
                FAILF("thread %ld: malloc %d gave %p, in the cache line of the block handed to thread %d (%p)", t, i,
                      (void *)kept[i], g, (void *)scratch_given[g]);
    }
    for (int i = 0; i < SCRATCH_KEEP; i++) {
        for (int k = 0; k < SCRATCH_SIZE; k++)
            if (kept[i][k] != (char)(0x40 + t)) FAILF("thread %ld: block %d byte %d changed", t, i, k);
        v_free(kept[i]);
    }
    return NULL;
}

static int mode_scratch(void) {
    for (int t = 0; t < SCRATCH_T; t++) {
        scratch_given[t] = v_malloc(SCRATCH_SIZE);
        memset(scratch_given[t], t + 1, SCRATCH_SIZE);
    }
    pthread_t tids[SCRATCH_T];
    for (long t = 0; t < SCRATCH_T; t++)
        if (pthread_create(&tids[t], NULL, scratch_worker, (void *)t) != 0) FAILF("pthread_create");
    for (int t = 0; t < SCRATCH_T; t++) pthread_join(tids[t], NULL);
    printf("SUMMARY threads-scratch threads=%d kept=%d failed=0\n", SCRATCH_T, SCRATCH_KEEP);
    return 0;
}

/* ------------------------------------------------------------------ pass */

/* Blocks one thread frees go to other threads, not only back to the thread that
 * allocated them: A allocates PASS_N blocks and stays alive; B frees them; then C
 * allocates PASS_N blocks of that size. Prints how many of C's are A's old blocks
 * ("reused"); every block's contents are checked on the way. */

#define PASS_N 2000
#define PASS_SIZE 200
static char *pass_blocks[PASS_N];
static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pass_cond = PTHREAD_COND_INITIALIZER;
static int pass_done;

static void *pass_owner(void *arg) {
    (void)arg;
    for (int i = 0; i < PASS_N; i++) {
        pass_blocks[i] = v_malloc(PASS_SIZE);
        memset(pass_blocks[i], (char)i, PASS_SIZE);
    }
    /* Stay alive (so that A's spans stay A's) until the test is over. */
    pthread_mutex_lock(&pass_lock);
    pass_done = 1;
    pthread_cond_broadcast(&pass_cond);
    while (pass_done != 2) pthread_cond_wait(&pass_cond, &pass_lock);
    pthread_mutex_unlock(&pass_lock);
    return NULL;
}

static void *pass_freer(void *arg) {
    (void)arg;
    v_free(v_malloc(PASS_SIZE)); /* a thread that allocates too: it has a cache */
    for (int i = 0; i < PASS_N; i++) {
        for (int k = 0; k < PASS_SIZE; k++)
            if (pass_blocks[i][k] != (char)i) FAILF("block %d byte %d changed", i, k);
        v_free(pass_blocks[i]);
    }
    return NULL;
}

static long pass_reused;

static void *pass_taker(void *arg) {
    (void)arg;
    static char *mine[PASS_N];
    for (int i = 0; i < PASS_N; i++) {
        mine[i] = v_malloc(PASS_SIZE);
        memset(mine[i], 0x77, PASS_SIZE);
        for (int j = 0; j < PASS_N; j++)
            if (mine[i] == pass_blocks[j]) {
                pass_reused++;
                break;
            }
    }
    for (int i = 0; i < PASS_N; i++) {
        for (int k = 0; k < PASS_SIZE; k++)
            if (mine[i][k] != 0x77) FAILF("taker block %d byte %d changed", i, k);
        v_free(mine[i]);
    }
    return NULL;
}

static int mode_pass(void) {
    pthread_t a, b, c;
    if (pthread_create(&a, NULL, pass_owner, NULL) != 0) FAILF("pthread_create");
    pthread_mutex_lock(&pass_lock);
    while (pass_done != 1) pthread_cond_wait(&pass_cond, &pass_lock);
    pthread_mutex_unlock(&pass_lock);
    if (pthread_create(&b, NULL, pass_freer, NULL) != 0) FAILF("pthread_create");
    pthread_join(b, NULL);
    if (pthread_create(&c, NULL, pass_taker, NULL) != 0) FAILF("pthread_create");
    pthread_join(c, NULL);
    pthread_mutex_lock(&pass_lock);
    pass_done = 2;
    pthread_cond_broadcast(&pass_cond);
    pthread_mutex_unlock(&pass_lock);
    pthread_join(a, NULL);
    printf("reused=%ld\n", pass_reused);
    printf("SUMMARY threads-pass blocks=%d failed=0\n", PASS_N);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "waves") && argc == 5) return mode_waves(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
    if (!strcmp(mode, "churn") && argc == 4) return mode_churn(atol(argv[2]), atoi(argv[3]));
    if (!strcmp(mode, "prodcons") && argc == 4) return mode_prodcons(atol(argv[2]), atol(argv[3]));
    if (!strcmp(mode, "lifo") && argc == 2) return mode_lifo();
    if (!strcmp(mode, "scratch") && argc == 2) return mode_scratch();
    if (!strcmp(mode, "pass") && argc == 2) return mode_pass();
    fprintf(stderr, "usage: threads waves WAVES THREADS OPS | churn TOTAL BATCH | prodcons BLOCKS QUEUE | lifo | scratch | pass\n");
    return 2;
}
