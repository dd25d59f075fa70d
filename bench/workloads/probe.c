/*
 * probe: not a workload. Run once per allocator before the suite to check that
 * the LD_PRELOAD really takes effect (ld.so ignores a library it cannot load
 * with a mere warning, and the run would silently measure glibc): prints the
 * file that provides the `malloc` this process calls, and survives a few
 * allocations of various sizes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        fprintf(stderr, "probe: cannot tell where malloc comes from\n");
        return 1;
    }
    size_t sizes[] = {1, 16, 100, 1000, 10000, 100000, 1000000, 10000000};
    void *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = malloc(sizes[i]);
        if (p[i] == NULL) return 3;
        memset(p[i], i, sizes[i]);
    }
    for (int i = 0; i < 8; i++) p[i] = realloc(p[i], sizes[i] * 2 + 1);
    for (int i = 0; i < 8; i++) free(p[i]);
    printf("malloc_from=%s\n", info.dli_fname);
    printf("checksum=0\n");
    return 0;
}
