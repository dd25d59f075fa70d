/*
 * cache-scratch: allocator-induced false sharing, in the shape of Hoard's
 * cache-scratch and cache-thrash. Two phases, NTHREADS threads each:
 *  - scratch: the main thread allocates one small block per thread (neighbours in
 *    memory under most allocators) and passes it on; each thread writes to it,
 *    frees it, then repeatedly allocates a small block, writes to it intensively
 *    and frees it. An allocator that gives the freed neighbour back to the thread
 *    (instead of memory of the thread's own) makes the threads share cache lines.
 *  - thrash: the same without the hand-off: threads allocate small blocks at the
 *    same time; an allocator that serves them from one shared heap interleaves
 *    them in the same cache lines.
 *
 * usage: cache-scratch SCALE [NTHREADS=2]
 * Exercises: per-thread heaps / cache-line separation of small blocks.
 */
#include "common.h"

#define ITERS 100000ULL /* allocations per thread and phase, per unit of scale */
#define WRITES 1000    /* writes into each block */
#define OBJ 8          /* bytes of each block */

typedef struct {
    int id;
    uint64_t iters;
    volatile unsigned char *given; /* scratch phase: block from the main thread */
    uint64_t sum;
} worker_t;

static uint64_t hammer(volatile unsigned char *p, uint64_t seed) {
    for (int w = 0; w < WRITES; w++) p[w % OBJ] += (unsigned char)(seed + (uint64_t)w);
    uint64_t s = 0;
    for (int k = 0; k < OBJ; k++) s = s * 257 + p[k];
    return s;
}

static void *worker(void *arg) {
    worker_t *w = arg;
    uint64_t sum = 0;
    if (w->given != NULL) {
        memset((void *)w->given, 0, OBJ);
        sum += hammer(w->given, (uint64_t)w->id);
        free((void *)w->given);
    }
    for (uint64_t i = 0; i < w->iters; i++) {
        volatile unsigned char *p = xmalloc(OBJ);
        memset((void *)p, 0, OBJ);
        sum += hammer(p, i + (uint64_t)w->id);
        free((void *)p);
    }
    w->sum = sum;
    return NULL;
}

static uint64_t phase(int nthreads, uint64_t iters, int scratch) {
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)nthreads);
    worker_t *ws = xcalloc((size_t)nthreads, sizeof(worker_t));
    for (int t = 0; t < nthreads; t++) {
        ws[t].id = t;
        ws[t].iters = iters;
        ws[t].given = scratch ? xmalloc(OBJ) : NULL;
    }
    for (int t = 0; t < nthreads; t++) xpthread_create(&tids[t], worker, &ws[t]);
    uint64_t sum = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(tids[t], NULL);
        sum += ws[t].sum;
    }
    free(tids);
    free(ws);
    return sum;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    int nthreads = (int)arg_long(argc, argv, 2, 2);
    uint64_t iters = ITERS * (uint64_t)scale;
    uint64_t sum = phase(nthreads, iters, 1);
    sum += phase(nthreads, iters, 0) * 3;
    return finish(sum, 2 * iters * (uint64_t)nthreads);
}
