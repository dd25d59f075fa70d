/*
 * larson: a server in the shape of Larson & Krishnan's benchmark. N threads each
 * perform a fixed share of a fixed total number of operations (so wall time is
 * an inverse throughput, comparable across thread counts and allocators). An
 * operation allocates a block of a random size (16..1024 bytes, one in sixteen up
 * to 8 KiB), stamps it, and puts it either in a slot of the thread's own array or
 * in a slot shared by all threads, swapping out the block that was there; the old
 * block is checked and freed by the thread that took it out, which for a shared
 * slot is usually not the thread that allocated it.
 *
 * usage: larson SCALE NTHREADS
 * Exercises: thread caches, remote (cross-thread) frees, contention, blowup.
 */
#include "common.h"

#define SHARED 8192
#define PRIVATE 4096
#define TOTAL_OPS 1500000ULL

static _Atomic(void *) shared[SHARED];
static uint64_t per_thread_ops;

typedef struct {
    int id;
    uint64_t sum;
} worker_t;

static size_t block_size(rng_t *r) {
    if (rng_below(r, 16) == 0) return rng_range(r, 1025, 8192);
    return rng_range(r, 16, 1024);
}

static void *worker(void *arg) {
    worker_t *w = arg;
    rng_t r = rng_seed(1000 + (uint64_t)w->id);
    void **mine = xcalloc(PRIVATE, sizeof(void *));
    uint64_t sum = 0;
    uint64_t tag = (uint64_t)w->id << 48;
    for (uint64_t i = 0; i < per_thread_ops; i++) {
        size_t size = block_size(&r);
        void *p = xmalloc(size);
        obj_stamp(p, size, ++tag);
        void *old;
        if (rng_below(&r, 2) == 0) {
            size_t k = rng_below(&r, PRIVATE);
            old = mine[k];
            mine[k] = p;
        } else {
            old = atomic_exchange(&shared[rng_below(&r, SHARED)], p);
        }
        if (old != NULL) {
            sum += obj_check(old);
            free(old);
        }
    }
    for (size_t k = 0; k < PRIVATE; k++) {
        if (mine[k] != NULL) {
            sum += obj_check(mine[k]);
            free(mine[k]);
        }
    }
    free(mine);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    int nthreads = (int)arg_long(argc, argv, 2, 2);
    uint64_t total = TOTAL_OPS * (uint64_t)scale;
    per_thread_ops = total / (uint64_t)nthreads;
    uint64_t sum = 0;

    /* the main thread fills the shared slots: the workers free those blocks */
    rng_t r = rng_seed(7);
    for (size_t k = 0; k < SHARED; k++) {
        size_t size = block_size(&r);
        void *p = xmalloc(size);
        obj_stamp(p, size, (0xffffULL << 48) + k);
        atomic_store(&shared[k], p);
    }

    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)nthreads);
    worker_t *ws = xcalloc((size_t)nthreads, sizeof(worker_t));
    for (int t = 0; t < nthreads; t++) {
        ws[t].id = t;
        xpthread_create(&tids[t], worker, &ws[t]);
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(tids[t], NULL);
        sum += ws[t].sum;
    }
    for (size_t k = 0; k < SHARED; k++) {
        void *p = atomic_load(&shared[k]);
        sum += obj_check(p);
        free(p);
    }
    free(tids);
    free(ws);
    return finish(sum, per_thread_ops * (uint64_t)nthreads);
}
