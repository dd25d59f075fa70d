/*
 * prodcons: one producer thread allocates and stamps blocks (16..2048 bytes,
 * log-uniform) and hands them, in batches of 64, through a bounded queue (mutex
 * and condition variables) to NCONS consumer threads, which check and free them.
 * Every free is a remote free of a block allocated by another thread.
 *
 * usage: prodcons SCALE [NCONS=2]
 * Exercises: cross-thread free paths (remote free lists, return of memory to the
 * owning heap), and whether memory freed by consumers is reused by the producer
 * or piles up.
 */
#include "common.h"

#define BATCH 64
#define QCAP 128 /* batches in flight at most */
#define TOTAL 1500000ULL

typedef struct {
    void *p[BATCH];
    int n;
} batch_t;

static batch_t *queue[QCAP];
static size_t q_head, q_len;
static int q_done;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;

static void push(batch_t *b) {
    pthread_mutex_lock(&q_lock);
    while (q_len == QCAP) pthread_cond_wait(&q_not_full, &q_lock);
    queue[(q_head + q_len) % QCAP] = b;
    q_len++;
    pthread_cond_signal(&q_not_empty);
    pthread_mutex_unlock(&q_lock);
}

/* NULL once the producer is done and the queue is drained */
static batch_t *pop(void) {
    pthread_mutex_lock(&q_lock);
    while (q_len == 0 && !q_done) pthread_cond_wait(&q_not_empty, &q_lock);
    batch_t *b = NULL;
    if (q_len > 0) {
        b = queue[q_head];
        q_head = (q_head + 1) % QCAP;
        q_len--;
        pthread_cond_signal(&q_not_full);
    }
    pthread_mutex_unlock(&q_lock);
    return b;
}

static void *consumer(void *arg) {
    uint64_t *out = arg, sum = 0;
    batch_t *b;
    while ((b = pop()) != NULL) {
        for (int i = 0; i < b->n; i++) {
            sum += obj_check(b->p[i]);
            free(b->p[i]);
        }
        free(b);
    }
    *out = sum;
    return NULL;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    int ncons = (int)arg_long(argc, argv, 2, 2);
    uint64_t total = TOTAL * (uint64_t)scale;
    pthread_t *tids = xmalloc(sizeof(pthread_t) * (size_t)ncons);
    uint64_t *sums = xcalloc((size_t)ncons, sizeof(uint64_t));
    for (int t = 0; t < ncons; t++) xpthread_create(&tids[t], consumer, &sums[t]);

    rng_t r = rng_seed(3);
    uint64_t made = 0;
    while (made < total) {
        batch_t *b = xmalloc(sizeof(batch_t));
        b->n = 0;
        while (b->n < BATCH && made < total) {
            size_t size = rng_log_range(&r, 16, 2048);
            void *p = xmalloc(size);
            obj_stamp(p, size, ++made);
            b->p[b->n++] = p;
        }
        push(b);
    }
    pthread_mutex_lock(&q_lock);
    q_done = 1;
    pthread_cond_broadcast(&q_not_empty);
    pthread_mutex_unlock(&q_lock);

    uint64_t sum = 0;
    for (int t = 0; t < ncons; t++) {
        pthread_join(tids[t], NULL);
        sum += sums[t];
    }
    free(tids);
    free(sums);
    return finish(sum, total);
}
