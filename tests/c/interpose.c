/*
 * Interposition check, run under LD_PRELOAD=liboxmalloc.so.
 *
 * argv: pairs "glibc_name=oxmalloc_function" from src/exports.list (plus the expected
 * version string as "--version=X"). For every pair:
 *   - dlsym(RTLD_DEFAULT, glibc_name) exists and dladdr() puts it in a file whose path
 *     ends with "liboxmalloc.so";
 *   - the oxmalloc_* function exists and lives in the same file.
 * Then libc functions that allocate internally (strdup, fopen/fclose, getline, asprintf,
 * open_memstream) must hand out memory of the interposed allocator.
 * Last line: "SUMMARY interpose checks=N failed=N".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n_checks, n_failed;
#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        n_checks++;                                                           \
        if (!(cond)) {                                                        \
            n_failed++;                                                       \
            printf("FAIL line %d: %s: ", __LINE__, #cond);                    \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const char *file_of(void *addr) {
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname) return "(unresolved)";
    return info.dli_fname;
}

#include "vcalls.h"
/* oxmalloc's own usable-size entry point: only meaningful for oxmalloc blocks. */
static size_t (*ox_usable)(void *);

/* A block handed out by libc must be one of the interposed allocator's blocks. */
static void check_block(const char *what, void *p, size_t min) {
    CHECK(p != NULL, "%s returned NULL", what);
    if (!p) return;
    size_t u = v_usable(p);
    CHECK(u >= min, "%s: malloc_usable_size = %zu, want >= %zu (block not from the interposed malloc?)", what, u, min);
    if (ox_usable) {
        size_t u2 = ox_usable(p);
        CHECK(u2 == u, "%s: oxmalloc_malloc_usable_size = %zu but malloc_usable_size = %zu", what, u2, u);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *want_version = NULL;
    int pairs = 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--version=", 10) == 0) {
            want_version = argv[i] + 10;
            continue;
        }
        char name[256], target[256];
        const char *eq = strchr(argv[i], '=');
        if (!eq || (size_t)(eq - argv[i]) >= sizeof name || strlen(eq + 1) >= sizeof target) {
            printf("bad argument %s\n", argv[i]);
            return 2;
        }
        memcpy(name, argv[i], (size_t)(eq - argv[i]));
        name[eq - argv[i]] = 0;
        strcpy(target, eq + 1);
        pairs++;
        void *a = dlsym(RTLD_DEFAULT, name);
        const char *fa = file_of(a);
        CHECK(a != NULL && ends_with(fa, "liboxmalloc.so"), "%s resolves to %p in %s, want liboxmalloc.so", name, a, fa);
        void *b = dlsym(RTLD_DEFAULT, target);
        const char *fb = file_of(b);
        CHECK(b != NULL && ends_with(fb, "liboxmalloc.so"), "%s (behind %s) resolves to %p in %s", target, name, b, fb);
        if (a && b && a != b) printf("note: %s (%p) and %s (%p) are distinct functions\n", name, a, target, b);
    }
    CHECK(pairs > 20, "only %d export pairs given", pairs);

    const char *(*ver)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "oxmalloc_version");
    CHECK(ver != NULL && ends_with(file_of((void *)ver), "liboxmalloc.so"), "oxmalloc_version missing");
    if (ver) {
        const char *v = ver();
        CHECK(v != NULL && *v, "oxmalloc_version() returned an empty string");
        if (v && want_version) CHECK(strcmp(v, want_version) == 0, "oxmalloc_version() = \"%s\", want \"%s\"", v, want_version);
    }
    ox_usable = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "oxmalloc_malloc_usable_size");

    /* libc's internal allocations go through the interposed allocator. */
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    char *s = strdup("hello, interposed world");
    check_block("strdup", s, 24);
    CHECK(s && strcmp(s, "hello, interposed world") == 0, "strdup content");
    free(s);
    s = strdup(big);
    check_block("strdup(5000)", s, 5000);
    CHECK(s && strlen(s) == 4999, "strdup(5000) content");
    free(s);
    s = strndup(big, 300);
    check_block("strndup", s, 301);
    free(s);
    char *as = NULL;
    CHECK(asprintf(&as, "%d-%s", 42, "abc") == 6, "asprintf");
    check_block("asprintf", as, 7);
    CHECK(as && strcmp(as, "42-abc") == 0, "asprintf content \"%s\"", as ? as : "(null)");
    free(as);

    char path[] = "/tmp/oxmalloc-interpose-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "fopen(w)");
    if (f) {
        check_block("fopen's FILE", f, 100);
        for (int i = 0; i < 1000; i++) fprintf(f, "line %d %s\n", i, i % 100 == 0 ? big : "short");
        CHECK(fclose(f) == 0, "fclose");
    }
    f = fopen(path, "r");
    CHECK(f != NULL, "fopen(r)");
    if (f) {
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int n = 0, bad = 0;
        while ((len = getline(&line, &cap, f)) >= 0) {
            char expect[6000];
            int el = snprintf(expect, sizeof expect, "line %d %s\n", n, n % 100 == 0 ? big : "short");
            if (len != el || strcmp(line, expect) != 0) bad++;
            n++;
        }
        CHECK(n == 1000 && bad == 0, "getline read %d lines, %d wrong", n, bad);
        check_block("getline buffer", line, cap);
        free(line);
        CHECK(fclose(f) == 0, "fclose(r)");
    }
    unlink(path);

    char *mbuf = NULL;
    size_t msize = 0;
    FILE *ms = open_memstream(&mbuf, &msize);
    CHECK(ms != NULL, "open_memstream");
    if (ms) {
        for (int i = 0; i < 10000; i++) fprintf(ms, "%d,", i);
        fclose(ms);
        check_block("open_memstream buffer", mbuf, msize + 1);
        CHECK(msize > 40000 && strncmp(mbuf, "0,1,2,", 6) == 0, "open_memstream content (%zu bytes)", msize);
        free(mbuf);
    }

    printf("SUMMARY interpose checks=%d failed=%d\n", n_checks, n_failed);
    return n_failed ? 1 : 0;
}
