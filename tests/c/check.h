/*
 * Shared by the C test programs: CHECK, which counts and prints failures (the program
 * ends with a "SUMMARY ... failed=N" line its Rust test reads), and the program's own
 * resident set from /proc/self/statm.
 */
#ifndef OXMALLOC_TEST_CHECK_H
#define OXMALLOC_TEST_CHECK_H

#include <stdio.h>
#include <unistd.h>

static int failed;
#define CHECK(c, ...)                                                     \
    do {                                                                  \
        if (!(c)) {                                                       \
            failed++;                                                     \
            printf("FAIL line %d: ", __LINE__);                           \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

/* Resident set size of this process, KiB. */
static inline long rss_kib(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif
