/*
 * frag: long-running fragmentation. A series of phases, each of which allocates
 * PHASE_BYTES worth of blocks whose sizes follow that phase's distribution
 * (small, medium, mixed, ...), then frees a random 90% of everything live.
 * What survives pins pages, and the next phase asks for different sizes, which
 * the holes left by the previous ones may not fit.
 *
 * The workload samples its own RSS (/proc/self/statm) against the bytes it has
 * live (sum of requested sizes), after every free step and eight times during
 * each allocation step, and prints the largest ratio as `max_rss_over_live=` (also
 * `final_rss_over_live=` after the last phase). 1.0 is perfect; glibc's typical
 * result here is several times that.
 *
 * usage: frag SCALE
 * Exercises: fragmentation, returning free memory to the OS (purging/decommit),
 * size-class segregation.
 */
#include "common.h"

#define PHASE_BYTES (96u << 20)
#define PHASES_PER_SCALE 4

static long page_size;

static double rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return 0.0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)page_size : 0.0;
}

static size_t phase_size(rng_t *r, int phase) {
    switch (phase % 4) {
    case 0: return rng_range(r, 16, 256);             /* small */
    case 1: return rng_log_range(r, 512, 8192);       /* medium */
    case 2: return rng_below(r, 4) ? rng_range(r, 24, 96) : rng_range(r, 1024, 4096);
    default: return rng_log_range(r, 16, 32768);       /* anything */
    }
}

static double max_ratio = 0.0;
static uint64_t samples;

static void sample(size_t live_bytes) {
    if (live_bytes < 4 * 1024 * 1024) return; /* the ratio means little below that */
    double ratio = rss_bytes() / (double)live_bytes;
    if (ratio > max_ratio) max_ratio = ratio;
    samples++;
}

int main(int argc, char **argv) {
    long scale = arg_long(argc, argv, 1, 1);
    int phases = PHASES_PER_SCALE * (int)scale;
    page_size = sysconf(_SC_PAGESIZE);
    rng_t r = rng_seed(13);
    size_t cap = 1 << 20;
    void **live = xmalloc(cap * sizeof(void *));
    size_t nlive = 0, live_bytes = 0;
    uint64_t sum = 0, tag = 0, ops = 0;

    for (int ph = 0; ph < phases; ph++) {
        size_t phase_bytes = 0, next_sample = PHASE_BYTES / 8;
        while (phase_bytes < PHASE_BYTES) {
            size_t size = phase_size(&r, ph);
            phase_bytes += size;
            void *p = xmalloc(size);
            obj_stamp(p, size, ++tag);
            if (nlive == cap) {
                cap *= 2;
                live = xrealloc(live, cap * sizeof(void *));
            }
            live[nlive++] = p;
            live_bytes += size;
            ops++;
            if (phase_bytes >= next_sample) {
                sample(live_bytes);
                next_sample += PHASE_BYTES / 8;
            }
        }
        /* free a random 90% (partial Fisher-Yates: the survivors end up in front) */
        size_t keep = nlive / 10;
        for (size_t k = 0; k < keep; k++) {
            size_t j = k + rng_below(&r, nlive - k);
            void *t = live[k];
            live[k] = live[j];
            live[j] = t;
        }
        for (size_t k = keep; k < nlive; k++) {
            uint64_t hdr[2];
            memcpy(hdr, live[k], sizeof hdr);
            live_bytes -= hdr[1];
            sum += obj_check(live[k]);
            free(live[k]);
            ops++;
        }
        nlive = keep;
        sample(live_bytes);
    }
    double final_ratio = live_bytes > 0 ? rss_bytes() / (double)live_bytes : 0.0;
    for (size_t k = 0; k < nlive; k++) {
        sum += obj_check(live[k]);
        free(live[k]);
    }
    free(live);
    printf("max_rss_over_live=%.3f\n", max_ratio);
    printf("final_rss_over_live=%.3f\n", final_ratio);
    printf("rss_samples=%llu\n", (unsigned long long)samples);
    return finish(sum, ops);
}
