/*
 * One heap misuse per run, for tests/misuse.rs:   misuse MODE
 *
 * The program prints "ADDR 0x..." (the address the allocator should name) on stdout
 * and flushes it, then commits the misuse. Under oxmalloc each mode must end with
 * SIGABRT and one line on stderr naming the problem and that address. If the process
 * survives the misuse it prints "SURVIVED" and exits 0.
 *
 *   double-small     free a 32-byte block twice
 *   double-100k      free a 100 KB block twice (a size class below the mmap threshold)
 *   double-4m        free a 4 MiB block twice (a mapping of its own)
 *   double-remote    another thread frees a block twice
 *   interior         free p + 8 of a 64-byte block
 *   interior-remote  another thread frees p + 16 of a 64-byte block
 *   interior-remote-heap  the same, by a thread that has a heap (it allocated before):
 *                    its free takes the fast path into its cache, and the check comes
 *                    when the cache hands the block on (here at the thread's exit)
 *   interior-large   free p + 16 of a 1 MiB block
 *   stack            free the address of a local variable
 *   wild             free (void *)0x12345670
 *   realloc-wild     realloc((void *)0x12345670, 100)
 *   realloc-freed    realloc of a block already freed
 *   foreign          free a page from mmap(2): memory oxmalloc never returned
 *   usable-foreign   malloc_usable_size of a local variable's address
 *   free-sized       free_sized(malloc(100), 1000)
 *   overflow         write 16 bytes past a block into the free block after it (on its
 *                    span's free list), then malloc until it comes back
 *   write-after-free write the first 8 bytes of a freed block (on its span's free list),
 *                    then malloc until it comes back
 *   uaf-cached       write the first 8 bytes of a freed block while it is in the thread's
 *                    cache, then free more of its size until the caches send it back
 *   self-link-trim   overwrite the link of a freed block on its span's free list with
 *                    its own address, then malloc_trim(0) (which walks the list)
 *   uaf-link         overwrite the links (bytes 8..16) of freed blocks on their span's
 *                    free list with the address of a free block of another class (in
 *                    the thread's cache, marked free), then malloc until one comes back
 * For the strict mode (OXMALLOC_CHECK=1):
 *   uaf-late         write byte 40 of a freed block, then churn the class until it is reused
 *   interior-own     free p + 16 of a 64-byte block of this thread
 *   large-overflow   write one byte past the end of a 1 MiB block (a guard page: SIGSEGV)
 *   zero-on-free     read a freed block (prints "ZEROED" if its bytes after 16 read 0)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void show(const void *p) {
    printf("ADDR %p\n", p);
    fflush(stdout);
}

static void *opaque(void *p) {
    /* Keep the compiler from reasoning about the misuse (it may warn or fold it). */
    __asm__ volatile("" : "+r"(p));
    return p;
}

struct twice {
    void *p;
    int times;
};

static void *free_there(void *arg) {
    struct twice *t = arg;
    for (int i = 0; i < t->times; i++) free(opaque(t->p));
    return NULL;
}

/* As free_there, once, by a thread that allocated first (so it has a heap and caches). */
static void *free_there_with_heap(void *arg) {
    void *own = malloc(64);
    memset(own, 2, 64);
    free(opaque(own));
    free(opaque(arg));
    return NULL;
}

static void in_thread(void *p, int times) {
    struct twice t = {p, times};
    pthread_t th;
    pthread_create(&th, NULL, free_there, &t);
    pthread_join(th, NULL);
}

/* A block of `n` bytes, written, shown, freed twice. */
static void double_free(size_t n) {
    char *p = malloc(n);
    memset(p, 1, n);
    show(p);
    free(p);
    free(opaque(p));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: misuse MODE\n");
        return 2;
    }
    const char *m = argv[1];
    /* Unbuffered: the first printf allocates no buffer. (A buffer allocated in the
     * middle of a mode may need a new span, and before an arena grows the caches send
     * their blocks home: a block the mode wants in a cache would be on its span's list
     * by the time it is written.) */
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(m, "double-small")) {
        double_free(32);
    } else if (!strcmp(m, "double-100k")) {
        double_free(100000);
    } else if (!strcmp(m, "double-4m")) {
        double_free(4 << 20);
    } else if (!strcmp(m, "double-remote")) {
        char *p = malloc(48);
        memset(p, 1, 48);
        show(p);
        in_thread(p, 2);
    } else if (!strcmp(m, "interior")) {
        char *p = malloc(64);
        memset(p, 1, 64);
        show(p + 8);
        free(opaque(p + 8));
    } else if (!strcmp(m, "interior-remote")) {
        char *p = malloc(64);
        memset(p, 1, 64);
        show(p + 16);
        in_thread(p + 16, 1);
    } else if (!strcmp(m, "interior-remote-heap")) {
        char *p = malloc(64);
        memset(p, 1, 64);
        show(p + 16);
        pthread_t th;
        pthread_create(&th, NULL, free_there_with_heap, p + 16);
        pthread_join(th, NULL);
    } else if (!strcmp(m, "interior-large")) {
        char *p = malloc(1 << 20);
        memset(p, 1, 1 << 20);
        show(p + 16);
        free(opaque(p + 16));
    } else if (!strcmp(m, "stack")) {
        long local[4] = {0};
        show(local);
        free(opaque(local));
    } else if (!strcmp(m, "wild")) {
        void *p = (void *)(uintptr_t)0x12345670;
        show(p);
        free(opaque(p));
    } else if (!strcmp(m, "realloc-freed")) {
        char *p = malloc(40);
        memset(p, 1, 40);
        free(p);
        show(p);
        void *q = realloc(opaque(p), 80);
        printf("realloc gave %p\n", q);
    } else if (!strcmp(m, "realloc-wild")) {
        void *p = (void *)(uintptr_t)0x12345670;
        show(p);
        void *q = realloc(opaque(p), 100);
        printf("realloc gave %p\n", q);
    } else if (!strcmp(m, "foreign")) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        show(p);
        free(opaque(p));
    } else if (!strcmp(m, "usable-foreign")) {
        long local[4] = {0};
        show(local);
        printf("usable %zu\n", malloc_usable_size(opaque(local)));
    } else if (!strcmp(m, "free-sized")) {
        /* glibc 2.36 has no free_sized: look it up (oxmalloc exports it). */
        void (*free_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
        if (!free_sized) {
            printf("NO free_sized\n");
            return 3;
        }
        char *p = malloc(100);
        memset(p, 1, 100);
        show(p);
        free_sized(opaque(p), 1000);
    } else if (!strcmp(m, "overflow") || !strcmp(m, "write-after-free")) {
        /* 208 bytes: a class nothing else in this program uses, so consecutive blocks
         * come from a fresh span in address order. */
        enum { N = 200 };
        char *a = malloc(N);
        char *b = malloc(N);
        size_t sz = malloc_usable_size(a);
        if (b != a + sz) {
            printf("NOT ADJACENT %p %p %zu\n", (void *)a, (void *)b, sz);
            return 3;
        }
        /* A freed block waits in the thread's cache first, its link outside it; free
         * more of the class after b so that b, the oldest, goes back to its span's
         * free list (the thread's own blocks go there when the cache spills, other
         * threads' through the transfer cache), where its mark and link are in the
         * block. */
        enum { M = 512 };
        char *x[M];
        for (int i = 0; i < M; i++) x[i] = malloc(N);
        free(b);
        for (int i = 0; i < M; i++) free(x[i]);
        show(b);
        if (!strcmp(m, "overflow"))
            memset(opaque(a), 'A', sz + 16); /* 16 bytes into the free block after a */
        else
            memset(opaque(b), 0, 8); /* write after free */
        for (int i = 0; i < 2 * M; i++) {
            char *c = malloc(N);
            if (c == b) printf("malloc gave %p\n", (void *)c);
        }
    } else if (!strcmp(m, "self-link-trim")) {
        enum { M = 512 };
        char *x[M];
        for (int i = 0; i < M; i++) x[i] = malloc(200);
        /* b and keep from the span the class allocates from (a span carved to its end
         * waits on the full list, which malloc_trim does not purge), which keeps a live
         * block: it is purged, not given back. */
        char *b = malloc(200);
        char *keep = opaque(malloc(200)); /* (opaque: a malloc+free pair may be elided) */
        free(b); /* the oldest: it goes back to its span's free list as the cache spills */
        for (int i = 0; i < M; i++) free(x[i]);
        show(b);
        memcpy(opaque(b + 8), &b, sizeof b); /* write after free: b's link -> b */
        malloc_trim(0);
        free(opaque(keep));
    } else if (!strcmp(m, "uaf-link")) {
        enum { M = 512 };
        char *x[M];
        for (int i = 0; i < M; i++) x[i] = malloc(200);
        char *g = malloc(96);
        free(g);
        /* The oldest of x go back to their span's free list as the cache spills. */
        for (int i = 0; i < M; i++) free(x[i]);
        show(g);
        for (int i = 0; i < M; i++) memcpy(opaque(x[i] + 8), &g, sizeof g); /* write after free */
        for (int i = 0; i < 2 * M; i++) {
            char *c = malloc(200);
            if (c == g) {
                printf("malloc gave %p, a free block of another class\n", (void *)c);
                break;
            }
        }
    } else if (!strcmp(m, "uaf-cached")) {
        enum { M = 512 }; /* enough to push p through both caches */
        char *x[M];
        char *p = malloc(200);
        for (int i = 0; i < M; i++) x[i] = malloc(200);
        free(p);
        show(p);
        memset(opaque(p), 0, 8); /* write after free, into the cached block */
        for (int i = 0; i < M; i++) free(x[i]);
    } else if (!strcmp(m, "uaf-late")) {
        char *p = malloc(72);
        memset(p, 1, 72);
        free(p);
        show(p);
        ((volatile char *)opaque(p))[40] = 7;
        for (int round = 0; round < 4; round++) {
            void *keep[2048];
            for (int i = 0; i < 2048; i++) keep[i] = malloc(72);
            for (int i = 0; i < 2048; i++) free(keep[i]);
        }
    } else if (!strcmp(m, "interior-own")) {
        char *p = malloc(64);
        memset(p, 1, 64);
        show(p + 16);
        free(opaque(p + 16));
    } else if (!strcmp(m, "large-overflow")) {
        char *p = malloc(1 << 20);
        memset(p, 1, 1 << 20);
        show(p + (1 << 20));
        ((volatile char *)opaque(p))[1 << 20] = 1;
    } else if (!strcmp(m, "zero-on-free")) {
        char *p = malloc(96);
        memset(p, 0xab, 96);
        free(p);
        int zero = 1;
        for (int i = 16; i < 96; i++) zero &= ((volatile char *)opaque(p))[i] == 0;
        printf(zero ? "ZEROED\n" : "NOT ZEROED\n");
    } else {
        fprintf(stderr, "unknown mode %s\n", m);
        return 2;
    }
    printf("SURVIVED\n");
    return 0;
}
