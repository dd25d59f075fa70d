/*
 * cfrac: single-threaded churn of small objects of mixed sizes with a slowly
 * changing live set, in the shape of cfrac / espresso (symbolic math: bignums
 * created from other bignums, short-lived temporaries, a working set that grows
 * and shrinks over the run).
 *
 * usage: cfrac SCALE
 * Exercises: the thread-local small-size fast paths, size-class spread, reuse of
 * freed blocks of other sizes, and locality of a drifting live set.
 */
#include "common.h"

#define CAP 120000 /* the live set swings between CAP/8 and CAP numbers */

typedef struct node {
    struct node *next;
    uint64_t v;
    uint64_t pad[1]; /* 24..48 byte temporaries */
} node_t;

static size_t number_size(rng_t *r) {
    uint64_t k = rng_below(r, 100);
    if (k < 60) return rng_range(r, 24, 64);
    if (k < 85) return rng_range(r, 65, 256);
    if (k < 97) return rng_range(r, 257, 1024);
    return rng_range(r, 1025, 4096);
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    uint64_t ops = (uint64_t)scale * 1200000ULL;
    rng_t r = rng_seed(1);
    void **live = xmalloc(CAP * sizeof(void *));
    size_t nlive = 0;
    uint64_t sum = 0, tag = 0;
    uint64_t period = ops / 3 + 1;

    for (uint64_t i = 0; i < ops; i++) {
        /* triangular target: CAP/8 .. CAP .. CAP/8, three times over the run */
        uint64_t ph = i % period;
        uint64_t tri = ph < period / 2 ? ph : period - ph;
        size_t target = CAP / 8 + (size_t)((CAP - CAP / 8) * tri / (period / 2 + 1));
        int grow = nlive < target ? rng_below(&r, 100) < 75 : rng_below(&r, 100) < 25;
        if (nlive == 0 || (grow && nlive < CAP)) {
            /* "multiply" two live numbers into a new one */
            size_t size = number_size(&r);
            unsigned char *p = xmalloc(size);
            obj_stamp(p, size, ++tag);
            if (nlive >= 2) {
                const unsigned char *a = live[rng_below(&r, nlive)];
                const unsigned char *b = live[rng_below(&r, nlive)];
                sum += (uint64_t)a[16] * b[16] + a[8];
            }
            live[nlive++] = p;
        } else {
            size_t k = rng_below(&r, nlive);
            sum += obj_check(live[k]);
            free(live[k]);
            live[k] = live[--nlive];
        }
        if ((i & 63) == 0) {
            /* temporaries: a short list built, walked and dropped */
            int n = 8 + (int)rng_below(&r, 57);
            node_t *head = NULL;
            for (int j = 0; j < n; j++) {
                size_t sz = sizeof(node_t) + 8 * rng_below(&r, 4);
                node_t *t = xmalloc(sz);
                t->next = head;
                t->v = tag * 131 + (uint64_t)j;
                head = t;
            }
            while (head != NULL) {
                node_t *t = head;
                head = t->next;
                sum += mix64(t->v);
                free(t);
            }
        }
    }
    while (nlive > 0) {
        sum += obj_check(live[--nlive]);
        free(live[nlive]);
    }
    free(live);
    return finish(sum, ops);
}
