/*
 * thread-churn: many short-lived threads. NTHREADS threads in total are started
 * in batches of BATCH running at once; each allocates BLOCKS blocks (16..1024
 * bytes, one in eight up to 16 KiB), frees two thirds of them itself, in random
 * order, and leaves the last third to the main thread, which frees them after
 * the thread has exited.
 *
 * usage: thread-churn SCALE
 * Exercises: thread-cache / heap creation and teardown, adoption or return of
 * an exited thread's memory, frees of blocks whose owning thread is gone.
 */
#include "common.h"

#define THREADS_PER_SCALE 500
#define BATCH 8
#define BLOCKS 300

typedef struct {
    uint64_t id;
    void *left[BLOCKS];
    int nleft;
    uint64_t sum;
} job_t;

static void *worker(void *arg) {
    job_t *j = arg;
    rng_t r = rng_seed(j->id);
    void *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        size_t size = rng_below(&r, 8) == 0 ? rng_range(&r, 1025, 16384) : rng_range(&r, 16, 1024);
        blocks[i] = xmalloc(size);
        obj_stamp(blocks[i], size, (j->id << 20) + (uint64_t)i);
    }
    /* shuffle, free the first two thirds, hand the rest over */
    for (int i = BLOCKS - 1; i > 0; i--) {
        int k = (int)rng_below(&r, (uint64_t)i + 1);
        void *t = blocks[i];
        blocks[i] = blocks[k];
        blocks[k] = t;
    }
    uint64_t sum = 0;
    int keep = BLOCKS / 3;
    for (int i = keep; i < BLOCKS; i++) {
        sum += obj_check(blocks[i]);
        free(blocks[i]);
    }
    for (int i = 0; i < keep; i++) j->left[i] = blocks[i];
    j->nleft = keep;
    j->sum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    uint64_t total = THREADS_PER_SCALE * (uint64_t)scale;
    job_t *jobs = xcalloc(BATCH, sizeof(job_t));
    pthread_t tids[BATCH];
    uint64_t sum = 0, id = 0;
    while (id < total) {
        int n = 0;
        for (; n < BATCH && id < total; n++) {
            jobs[n].id = ++id;
            xpthread_create(&tids[n], worker, &jobs[n]);
        }
        for (int t = 0; t < n; t++) {
            pthread_join(tids[t], NULL);
            sum += jobs[t].sum;
            for (int i = 0; i < jobs[t].nleft; i++) {
                sum += obj_check(jobs[t].left[i]);
                free(jobs[t].left[i]);
            }
        }
    }
    free(jobs);
    return finish(sum, total * BLOCKS);
}
