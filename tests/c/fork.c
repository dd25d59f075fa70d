/*
 * fork() while the allocator is busy.
 *
 *   fork threaded N   4 threads allocate/free continuously, 1 thread feeds a pipe with
 *                     fprintf, 1 thread reads it with getline, 1 thread loops over
 *                     fprintf to /dev/null + fflush(NULL); meanwhile the main thread forks
 *                     N times. Every child checks and frees blocks inherited from the main
 *                     thread, mallocs/callocs/reallocs/frees its own (some > 128 KiB),
 *                     writes one byte to a pipe and _exit(0)s. Each child is waited for at
 *                     most 10 s (waitpid WNOHANG loop); a hung child is killed and the test
 *                     fails (a lock held across fork).
 *   fork brkrace N    2 threads keep growing and shrinking the heap while the main
 *                     thread forks N times; each child's heap must be mapped up to its
 *                     break, and fresh blocks must be writable.
 *   fork single N     single-threaded: the child checks, writes (copy-on-write), frees and
 *                     reallocates the parent's blocks and forks a grandchild that does the
 *                     same; the parent's blocks are unaffected.
 *
 *   fork reclaim N    N rounds: the main thread allocates 20000 blocks (16..2048 B) and
 *                     hands them to a second thread, which frees them, 50 every 3 ms (into
 *                     the main thread's spans), and keeps allocating; meanwhile, and for
 *                     1.2 s after, the main thread only forks. Spans of its heap that the
 *                     frees empty are taken from it by the freeing thread, under the heap's
 *                     lock, and once the heap has been idle for a second, that thread's
 *                     decay takes the rest (oxmalloc: thread_heap.rs, "Idle heaps"). A
 *                     fork's prepare handler must not let the child inherit that heap half
 *                     rewritten: every child allocates from it (checks, frees) and exits 0.
 *                     The main thread's surviving blocks are checked after each round.
 *   fork reused N     a thread of the parent allocates blocks (64 B, cached; 20 KiB, which
 *                     no cache takes), then mallocs and frees 20 KiB blocks in a loop
 *                     (holding its heap's lock part of the time) while the main thread
 *                     forks N times. In each child a new thread, which glibc starts on
 *                     the stack (so the thread pointer) of that parent thread the child
 *                     does not have, checks and frees those blocks, then allocates,
 *                     fills, checks and frees rounds of the same sizes, as does the
 *                     child's main thread after it. Neither may take the dead thread's
 *                     spans for its own: their blocks go back as any other thread's,
 *                     without the dead thread's lock, which may be held for good.
 * Last line: "SUMMARY fork-<mode> forks=N failed=N".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vcalls.h"

static const char *mode = "?";
#define FAILF(...)                                                           \
    do {                                                                     \
        printf("FAIL line %d: ", __LINE__);                                  \
        printf(__VA_ARGS__);                                                 \
        printf("\nSUMMARY fork-%s failed=1\n", mode);                        \
        fflush(stdout);                                                      \
        _exit(1);                                                            \
    } while (0)

/* In a child: no stdio, only write(2) of a preformatted message. */
static void child_fail(int code, const char *msg, size_t a, size_t b) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "FAIL in child %d: %s (%#zx, %#zx)\n", (int)getpid(), msg, a, b);
    if (n > 0) {
        ssize_t w = write(1, buf, (size_t)n);
        (void)w;
    }
    _exit(code);
}

/* Child crash diagnostics: fault address, program break and the mappings around the
 * fault, written with write(2) only; then _exit(11). */
static void child_segv(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    char buf[512];
    uintptr_t a = (uintptr_t)si->si_addr;
    int n = snprintf(buf, sizeof buf,
                     "child %d: signal %d at address %#lx; program break: glibc's sbrk(0) %#lx, kernel brk %#lx; "
                     "mappings near it:\n",
                     (int)getpid(), sig, (unsigned long)a, (unsigned long)(uintptr_t)sbrk(0),
                     (unsigned long)syscall(SYS_brk, 0));
    ssize_t w = write(1, buf, (size_t)n);
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd >= 0) {
        static char maps[1 << 16];
        ssize_t len = read(fd, maps, sizeof maps - 1);
        close(fd);
        if (len > 0) {
            maps[len] = 0;
            char *line = maps;
            while (line && *line) {
                char *nl = strchr(line, '\n');
                unsigned long lo = strtoul(line, NULL, 16), hi = strtoul(strchr(line, '-') + 1, NULL, 16);
                if (hi + (16ul << 20) > a && lo < a + (16ul << 20)) {
                    w = write(1, "  ", 2);
                    w = write(1, line, nl ? (size_t)(nl - line + 1) : strlen(line));
                }
                line = nl ? nl + 1 : NULL;
            }
        }
    }
    (void)w;
    _exit(11);
}

static void child_install_segv_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = child_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

#include "rng.h"
static inline uint64_t pword(uint64_t seed, size_t i) { return (seed + i) * 0x9E3779B97F4A7C15ull ^ (seed >> 5); }
static void fill(void *p, size_t n, uint64_t seed) {
    unsigned char *c = p;
    size_t w = n / 8, i;
    for (i = 0; i < w; i++) {
        uint64_t v = pword(seed, i);
        memcpy(c + 8 * i, &v, 8);
    }
    uint64_t v = pword(seed, i);
    memcpy(c + 8 * i, &v, n % 8);
}
static int intact(const void *p, size_t n, uint64_t seed) {
    const unsigned char *c = p;
    size_t w = n / 8, i;
    for (i = 0; i < w; i++) {
        uint64_t v = pword(seed, i);
        if (memcmp(c + 8 * i, &v, 8)) return 0;
    }
    uint64_t v = pword(seed, i);
    return memcmp(c + 8 * i, &v, n % 8) == 0;
}

struct blk {
    unsigned char *p;
    size_t n;
    uint64_t seed;
};

/* What every child (and grandchild) does with its inherited and its own memory. */
/* End of the last [heap] mapping in /proc/self/maps (the heap may be split into several
 * mappings, e.g. after growing in a forked child), or 0 if there is none. */
static unsigned long heap_vma_end(void) {
    static char maps[1 << 17];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0) return 0;
    size_t len = 0;
    ssize_t r;
    while (len < sizeof maps - 1 && (r = read(fd, maps + len, sizeof maps - 1 - len)) > 0) len += (size_t)r;
    close(fd);
    maps[len] = 0;
    unsigned long end = 0;
    for (char *h = strstr(maps, "[heap]"); h; h = strstr(h + 6, "[heap]")) {
        char *line = h;
        while (line > maps && line[-1] != '\n') line--;
        unsigned long e = strtoul(strchr(line, '-') + 1, NULL, 16);
        if (e > end) end = e;
    }
    return end;
}

static void child_work(struct blk *inh, int ninh, uint64_t rng, int depth) {
    child_install_segv_handler();
    /* The child's heap must be mapped up to its break. It is not when a thread of the
     * parent was inside brk() while another thread forked: Linux copies mm->brk before it
     * takes the mmap lock to copy the mappings, so the child can get a break above the end
     * of its [heap] (memory the allocator believes it has, but unmapped) -- or below it.
     * glibc never moves the break during fork: its atfork handlers hold the arena locks. */
    unsigned long he = heap_vma_end(), kb = (unsigned long)syscall(SYS_brk, 0);
    if (he && he < ((kb + 4095) & ~4095ul))
        child_fail(12, "at child start the [heap] mapping ends below the kernel's break: a brk() call raced with "
                   "fork() in the parent (heap end, break)", he, kb);
    for (int i = 0; i < ninh; i++)
        if (inh[i].p && !intact(inh[i].p, inh[i].n, inh[i].seed)) child_fail(2, "inherited block corrupted", (size_t)i, inh[i].n);
    /* write to inherited blocks (copy-on-write), free half, realloc the others */
    for (int i = 0; i < ninh; i++) {
        if (!inh[i].p) continue;
        fill(inh[i].p, inh[i].n, inh[i].seed ^ 0xC0C0);
        if (i % 2 == 0) {
            v_free(inh[i].p);
            inh[i].p = NULL;
        } else {
            size_t m = inh[i].n * 2 + 1000;
            unsigned char *q = v_realloc(inh[i].p, m);
            if (!q) child_fail(3, "realloc of inherited block failed", inh[i].n, m);
            if (!intact(q, inh[i].n, inh[i].seed ^ 0xC0C0)) child_fail(2, "realloc of inherited block lost data", inh[i].n, m);
            inh[i].p = q;
            inh[i].n = m;
            inh[i].seed ^= 0xC0C0;
            fill(q, m, inh[i].seed);
        }
    }
    /* own allocations, some > 128 KiB */
    static const size_t sizes[] = {16, 100, 1000, 5000, 40000, 140000, 300000, 1 << 20};
    struct blk own[64];
    int n = 0;
    for (int r = 0; r < 2; r++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t sz = sizes[k] + (size_t)(xs(&rng) % 64);
            unsigned char *p = (k % 3 == 0) ? v_calloc(1, sz) : v_malloc(sz);
            if (!p) child_fail(3, "malloc in child failed", sz, k);
            if (k % 3 == 0)
                for (size_t i = 0; i < sz; i += 512)
                    if (p[i]) child_fail(4, "calloc memory not zero in child", sz, i);
            own[n] = (struct blk){p, sz, xs(&rng)};
            fill(p, sz, own[n].seed);
            n++;
        }
    void *al = NULL;
    if (v_posix_memalign(&al, 65536, 200000) || ((uintptr_t)al & 65535)) child_fail(5, "posix_memalign in child", 65536, 200000);
    memset(al, 1, 200000);
    for (int i = 0; i < n; i++)
        if (!intact(own[i].p, own[i].n, own[i].seed)) child_fail(2, "own block corrupted in child", (size_t)i, own[i].n);
    for (int i = 0; i < ninh; i++)
        if (inh[i].p && !intact(inh[i].p, inh[i].n, inh[i].seed)) child_fail(2, "reallocated inherited block corrupted", (size_t)i, inh[i].n);
    if (depth > 0) {
        /* grandchild: inherits a heap that was itself inherited */
        pid_t g = fork();
        if (g < 0) child_fail(6, "fork in child failed", 0, 0);
        if (g == 0) {
            child_work(inh, ninh, rng ^ 0x5555, depth - 1);
            _exit(0);
        }
        int st = 0;
        for (int t = 0; t < 10000; t++) { /* 10 s */
            pid_t r = waitpid(g, &st, WNOHANG);
            if (r == g) break;
            if (t == 9999) {
                kill(g, SIGKILL);
                waitpid(g, &st, 0);
                child_fail(7, "grandchild hung", 0, 0);
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) child_fail(8, "grandchild failed", (size_t)st, 0);
    }
    for (int i = 0; i < n; i++) v_free(own[i].p);
    for (int i = 0; i < ninh; i++) v_free(inh[i].p);
    v_free(al);
}

/* Waits for a child at most 10 s; returns its status. */
static int wait_child(pid_t pid, int index) {
    int st = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r < 0) FAILF("waitpid(child #%d): %s", index, strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= 10) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            FAILF("child #%d (pid %d) did not exit within 10 s: deadlock in the child after fork (a lock held by "
                  "another thread at fork time?)",
                  index, (int)pid);
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
}

/* Waits for child #index (wait_child) and fails the test unless it exited 0. */
static void wait_child_ok(pid_t pid, int index) {
    int st = wait_child(pid, index);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAILF("child #%d: %s %d%s", index, WIFEXITED(st) ? "exit code" : "killed by signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
              WIFEXITED(st) && WEXITSTATUS(st) == 11 ? " (crashed: SIGSEGV/SIGBUS, see above)" : "");
}

/* ------------------------------------------------------------------ background threads */

static atomic_int stop;

/* Background threads pause briefly now and then so that, on 2 cores, the forking main
 * thread and its children are not starved; they still run (and hold allocator and stdio
 * locks) most of the time around every fork. */
static void breathe(long n) {
    if (n % 64 == 63) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}
static atomic_long alloc_ops, lines_read, flushes;
static int stdio_pipe[2];
/* Both ends are fdopen()ed by the main thread before the threads start and fclose()d after
 * they are joined: fdopen/fclose take glibc's stdio list lock, which fflush(NULL) holds
 * while it waits for the reader's FILE lock -- held by getline during a blocking read --
 * so a writer calling fdopen/fclose while the reader waits for its data would deadlock
 * inside glibc, whatever the allocator. */
static FILE *pipe_w, *pipe_r;

static void *alloc_thread(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull | 1;
    struct blk b[32] = {{0}};
    long ops = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int i = (int)(xs(&rng) % 32);
        if (b[i].p) {
            if (!intact(b[i].p, b[i].n, b[i].seed)) FAILF("alloc thread: block of %zu corrupted", b[i].n);
            if (xs(&rng) & 1) {
                v_free(b[i].p);
                b[i].p = NULL;
                ops++;
                continue;
            }
        }
        uint64_t r = xs(&rng) % 100;
        size_t sz = r < 70 ? 1 + xs(&rng) % 512 : r < 97 ? 512 + xs(&rng) % 30000 : 131072 + xs(&rng) % 400000;
        unsigned char *p = b[i].p ? v_realloc(b[i].p, sz) : v_malloc(sz);
        if (!p) FAILF("alloc thread: allocation of %zu failed", sz);
        if (b[i].p && !intact(p, sz < b[i].n ? sz : b[i].n, b[i].seed)) FAILF("alloc thread: realloc lost data");
        b[i] = (struct blk){p, sz, xs(&rng)};
        fill(p, sz, b[i].seed);
        ops++;
        breathe(ops);
    }
    for (int i = 0; i < 32; i++) v_free(b[i].p);
    atomic_fetch_add(&alloc_ops, ops);
    return NULL;
}

static void *pipe_writer(void *arg) {
    (void)arg;
    FILE *w = pipe_w;
    long n = 0;
    char pad[300];
    memset(pad, 'p', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        fprintf(w, "line %ld %.*s\n", n, (int)(n % 290), pad);
        n++;
        if (n % 16 == 0) fflush(w);
        breathe(n);
    }
    fprintf(w, "end %ld\n", n);
    fflush(w);
    return NULL;
}

static void *pipe_reader(void *arg) {
    (void)arg;
    FILE *r = pipe_r;
    char *line = NULL;
    size_t cap = 0;
    long expect = 0;
    ssize_t len;
    int ended = 0;
    while ((len = getline(&line, &cap, r)) >= 0) {
        long k;
        if (sscanf(line, "end %ld", &k) == 1) {
            if (k != expect) FAILF("pipe reader: end marker %ld after %ld lines", k, expect);
            ended = 1;
            break;
        }
        if (sscanf(line, "line %ld", &k) != 1 || k != expect)
            FAILF("pipe reader: got \"%.40s\", want line %ld", line, expect);
        size_t want_len = (size_t)snprintf(NULL, 0, "line %ld ", k) + (size_t)(k % 290) + 1;
        if ((size_t)len != want_len) FAILF("pipe reader: line %ld has length %zd, want %zu", k, len, want_len);
        expect++;
    }
    if (!ended) FAILF("pipe reader: no end marker after %ld lines", expect);
    free(line);
    atomic_store(&lines_read, expect);
    return NULL;
}

static void *flusher(void *arg) {
    (void)arg;
    FILE *null = fopen("/dev/null", "w");
    if (!null) FAILF("fopen(/dev/null)");
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        fprintf(null, "flush %ld %s\n", n, "some text to format");
        fflush(NULL);
        if (n % 64 == 0) {
            FILE *f = fopen("/dev/null", "w"); /* allocates and frees a FILE */
            if (f) {
                fprintf(f, "x");
                fclose(f);
            }
        }
        n++;
        breathe(n);
    }
    fclose(null);
    atomic_store(&flushes, n);
    return NULL;
}

static int mode_threaded(int nforks) {
    int res_pipe[2];
    if (pipe(stdio_pipe) || pipe(res_pipe)) FAILF("pipe: %s", strerror(errno));
    fcntl(res_pipe[0], F_SETFL, O_NONBLOCK);
    pipe_r = fdopen(stdio_pipe[0], "r");
    pipe_w = fdopen(stdio_pipe[1], "w");
    if (!pipe_r || !pipe_w) FAILF("fdopen(pipe)");
    pthread_t th[7];
    int nth = 0;
    for (int i = 0; i < 4; i++) pthread_create(&th[nth++], NULL, alloc_thread, (void *)(uintptr_t)(i + 1));
    pthread_create(&th[nth++], NULL, pipe_reader, NULL);
    pthread_create(&th[nth++], NULL, pipe_writer, NULL);
    pthread_create(&th[nth++], NULL, flusher, NULL);

    uint64_t rng = 42;
    enum { NB = 12 };
    struct blk mine[NB];
    for (int i = 0; i < NB; i++) {
        size_t sz = i == 0 ? 300000 : 10 + xs(&rng) % 3000;
        mine[i] = (struct blk){v_malloc(sz), sz, xs(&rng)};
        fill(mine[i].p, sz, mine[i].seed);
    }
    for (int f = 0; f < nforks; f++) {
        /* mutate the main thread's blocks between forks */
        int i = (int)(xs(&rng) % NB);
        v_free(mine[i].p);
        size_t sz = (f % 10 == 0) ? 150000 + xs(&rng) % 100000 : 10 + xs(&rng) % 3000;
        mine[i] = (struct blk){v_malloc(sz), sz, xs(&rng)};
        if (!mine[i].p) FAILF("main: malloc(%zu)", sz);
        fill(mine[i].p, sz, mine[i].seed);

        pid_t pid = fork();
        if (pid < 0) FAILF("fork #%d: %s", f, strerror(errno));
        if (pid == 0) {
            struct blk copy[NB];
            memcpy(copy, mine, sizeof copy);
            child_work(copy, NB, rng ^ (uint64_t)f, 0);
            char c = 'K';
            if (write(res_pipe[1], &c, 1) != 1) _exit(9);
            _exit(0);
        }
        wait_child_ok(pid, f);
        char c = 0;
        if (read(res_pipe[0], &c, 1) != 1 || c != 'K') FAILF("child #%d exited 0 but wrote no byte to the pipe", f);
    }
    for (int i = 0; i < NB; i++)
        if (!intact(mine[i].p, mine[i].n, mine[i].seed)) FAILF("main thread block %d corrupted", i);
    atomic_store(&stop, 1);
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    fclose(pipe_w);
    fclose(pipe_r);
    for (int i = 0; i < NB; i++) v_free(mine[i].p);
    printf("%d forks; meanwhile %ld alloc ops, %ld lines through the pipe, %ld fflush(NULL)\n", nforks,
           (long)alloc_ops, (long)lines_read, (long)flushes);
    if (alloc_ops == 0 || lines_read == 0 || flushes == 0) FAILF("a background thread did no work");
    printf("SUMMARY fork-threaded forks=%d failed=0\n", nforks);
    return 0;
}

static int mode_single(int nforks) {
    uint64_t rng = 7;
    enum { NB = 40 };
    struct blk b[NB];
    for (int i = 0; i < NB; i++) {
        size_t sz = (i % 8 == 0) ? 200000 + xs(&rng) % 200000 : 1 + xs(&rng) % 5000;
        b[i] = (struct blk){v_malloc(sz), sz, xs(&rng)};
        fill(b[i].p, sz, b[i].seed);
    }
    for (int f = 0; f < nforks; f++) {
        pid_t pid = fork();
        if (pid < 0) FAILF("fork: %s", strerror(errno));
        if (pid == 0) {
            struct blk copy[NB];
            memcpy(copy, b, sizeof copy);
            child_work(copy, NB, rng + (uint64_t)f, f % 5 == 0 ? 1 : 0);
            _exit(0);
        }
        wait_child_ok(pid, f);
        /* the child's writes and frees did not touch the parent's blocks */
        for (int i = 0; i < NB; i++)
            if (!intact(b[i].p, b[i].n, b[i].seed)) FAILF("parent block %d corrupted after child #%d", i, f);
        /* the parent keeps allocating normally */
        int i = (int)(xs(&rng) % NB);
        v_free(b[i].p);
        b[i].n = 1 + xs(&rng) % 300000;
        b[i].p = v_malloc(b[i].n);
        b[i].seed = xs(&rng);
        fill(b[i].p, b[i].n, b[i].seed);
    }
    for (int i = 0; i < NB; i++) v_free(b[i].p);
    printf("SUMMARY fork-single forks=%d failed=0\n", nforks);
    return 0;
}

/* ------------------------------------------------------------------ brkrace */

/* Two threads keep growing and shrinking the heap (1 MiB of 16 KiB blocks allocated,
 * then all freed, so that a brk-based allocator moves the break both ways) while the
 * main thread forks N times. Each child checks that its heap is mapped up to its break
 * and writes 2 MiB of fresh 16 KiB blocks. */
static void *brk_churn(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    enum { NB = 64, SZ = 16384 };
    unsigned char *b[NB];
    long rounds = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < NB; i++) {
            b[i] = v_malloc(SZ);
            if (!b[i]) FAILF("brk churn: malloc(%d) failed", SZ);
            fill(b[i], SZ, seed + (uint64_t)i);
        }
        for (int i = 0; i < NB; i++) {
            if (!intact(b[i], SZ, seed + (uint64_t)i)) FAILF("brk churn: block corrupted");
            v_free(b[i]);
        }
        rounds++;
    }
    atomic_fetch_add(&alloc_ops, rounds);
    return NULL;
}

static int mode_brkrace(int nforks) {
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, brk_churn, (void *)(uintptr_t)(i * 1000 + 1));
    for (int f = 0; f < nforks; f++) {
        pid_t pid = fork();
        if (pid < 0) FAILF("fork #%d: %s", f, strerror(errno));
        if (pid == 0) {
            child_install_segv_handler();
            unsigned long he = heap_vma_end(), kb = (unsigned long)syscall(SYS_brk, 0);
            if (he && he < ((kb + 4095) & ~4095ul))
                child_fail(12, "at child start the [heap] mapping ends below the kernel's break: a brk() call "
                           "raced with fork() in the parent (heap end, break)", he, kb);
            unsigned char *b[128];
            for (int i = 0; i < 128; i++) {
                b[i] = v_malloc(16384);
                if (!b[i]) child_fail(3, "malloc in child failed", 16384, (size_t)i);
                fill(b[i], 16384, (uint64_t)i);
            }
            for (int i = 0; i < 128; i++) {
                if (!intact(b[i], 16384, (uint64_t)i)) child_fail(2, "child block corrupted", (size_t)i, 16384);
                v_free(b[i]);
            }
            _exit(0);
        }
        wait_child_ok(pid, f);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    printf("%d forks while 2 threads grew and shrank the heap %ld times\n", nforks, (long)alloc_ops);
    printf("SUMMARY fork-brkrace forks=%d failed=0\n", nforks);
    return 0;
}

enum { HANDOFF = 20000 };
static void *handoff[HANDOFF];
static atomic_int handoff_ready, handoff_done;

/* Frees each round's blocks of the main thread, then allocates and frees until the next
 * round (or the end), so that its slow path (and its decay) keeps running. */
static void *reclaimer(void *arg) {
    (void)arg;
    uint64_t rng = 99;
    void *mine[64] = {0};
    long ops = 0;
    while (!atomic_load(&stop)) {
        if (atomic_load(&handoff_ready)) {
            /* 50 blocks every 3 ms: spans of the main thread's heap empty (and are
             * taken from it) all through the main thread's forks */
            for (int i = 0; i < HANDOFF; i++) {
                v_free(handoff[i]);
                if (i % 50 == 49) usleep(3000);
            }
            atomic_store(&handoff_ready, 0);
            atomic_store(&handoff_done, 1);
        }
        int k = (int)(xs(&rng) % 64);
        v_free(mine[k]);
        size_t sz = 16 + xs(&rng) % 2048;
        mine[k] = v_malloc(sz);
        if (!mine[k]) FAILF("reclaimer: malloc(%zu)", sz);
        memset(mine[k], 0x5a, sz);
        ops++;
    }
    for (int k = 0; k < 64; k++) v_free(mine[k]);
    atomic_fetch_add(&alloc_ops, ops);
    return NULL;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int mode_reclaim(int rounds) {
    pthread_t th;
    pthread_create(&th, NULL, reclaimer, NULL);
    uint64_t rng = 5;
    enum { NB = 16 };
    struct blk keep[NB];
    for (int i = 0; i < NB; i++) {
        size_t sz = 16 + xs(&rng) % 2048;
        keep[i] = (struct blk){v_malloc(sz), sz, xs(&rng)};
        if (!keep[i].p) FAILF("main: malloc(%zu)", sz);
        fill(keep[i].p, sz, keep[i].seed);
    }
    int forks = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < HANDOFF; i++) {
            size_t sz = 16 + xs(&rng) % 2048;
            handoff[i] = v_malloc(sz);
            if (!handoff[i]) FAILF("main: malloc(%zu)", sz);
            memset(handoff[i], 0xa5, sz);
        }
        atomic_store(&handoff_done, 0);
        atomic_store(&handoff_ready, 1);
        /* fork until the blocks are all freed and for 1.2 s after that (the main thread's
         * heap is idle by then: the decay of the other thread takes what is left) */
        double end = 0;
        for (; end == 0 || now_s() < end; forks++) {
            if (end == 0 && atomic_load(&handoff_done)) end = now_s() + 1.2;
            pid_t pid = fork();
            if (pid < 0) FAILF("fork #%d: %s", forks, strerror(errno));
            if (pid == 0) {
                child_install_segv_handler();
                struct blk copy[NB];
                memcpy(copy, keep, sizeof copy);
                child_work(copy, NB, rng ^ (uint64_t)forks, 0);
                _exit(0);
            }
            wait_child_ok(pid, forks);
        }
        for (int i = 0; i < NB; i++)
            if (!intact(keep[i].p, keep[i].n, keep[i].seed)) FAILF("main thread block %d corrupted (round %d)", i, r);
    }
    atomic_store(&stop, 1);
    pthread_join(th, NULL);
    for (int i = 0; i < NB; i++) v_free(keep[i].p);
    printf("%d rounds, %d forks while the other thread freed the main thread's blocks and kept allocating "
           "(%ld ops)\n", rounds, forks, (long)alloc_ops);
    if (forks < rounds * 10) FAILF("only %d forks", forks);
    printf("SUMMARY fork-reclaim forks=%d failed=0\n", forks);
    return 0;
}

/* ------------------------------------------------------------------ reused */

enum { REUSED_N = 3000, REUSED_ROUNDS = 4 };
static struct blk reused_blocks[REUSED_N];
static pthread_t reused_owner;
static pthread_mutex_t reused_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reused_cond = PTHREAD_COND_INITIALIZER;
static int reused_ready;
static atomic_int reused_stop;

static size_t reused_size(int i) { return i % 10 == 0 ? 20000 : 64; }

static void *reused_parent_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < REUSED_N; i++) {
        size_t n = reused_size(i);
        reused_blocks[i] = (struct blk){v_malloc(n), n, 1000 + (uint64_t)i};
        if (!reused_blocks[i].p) FAILF("malloc(%zu) failed", n);
        fill(reused_blocks[i].p, n, reused_blocks[i].seed);
    }
    pthread_mutex_lock(&reused_lock);
    reused_ready = 1;
    pthread_cond_signal(&reused_cond);
    pthread_mutex_unlock(&reused_lock);
    while (!atomic_load(&reused_stop)) {
        unsigned char *q = v_malloc(20000);
        if (!q) FAILF("malloc(20000) failed");
        q[0] = 1;
        v_free(q);
    }
    return NULL;
}

/* Rounds of REUSED_N blocks of the same sizes: all live at once, each filled, all
 * checked (no two overlap), all freed. Returns 0 or the child's failure code. */
static int reused_rounds(uint64_t seed) {
    static struct blk b[REUSED_N];
    for (int r = 0; r < REUSED_ROUNDS; r++) {
        for (int i = 0; i < REUSED_N; i++) {
            size_t n = reused_size(i);
            b[i] = (struct blk){v_malloc(n), n, seed + (uint64_t)(r * REUSED_N + i)};
            if (!b[i].p) return 2;
            fill(b[i].p, n, b[i].seed);
        }
        for (int i = 0; i < REUSED_N; i++)
            if (!intact(b[i].p, b[i].n, b[i].seed)) return 3;
        for (int i = 0; i < REUSED_N; i++) v_free(b[i].p);
    }
    return 0;
}

static void *reused_child_thread(void *arg) {
    int *result = arg;
    for (int i = 0; i < REUSED_N; i++) {
        if (!intact(reused_blocks[i].p, reused_blocks[i].n, reused_blocks[i].seed)) {
            *result = 4;
            return NULL;
        }
        v_free(reused_blocks[i].p);
    }
    *result = reused_rounds(77);
    /* Same thread pointer as the parent's thread: the case this mode is about (glibc
     * does it; report it, do not require it). */
    if (*result == 0 && pthread_equal(pthread_self(), reused_owner)) *result = -1;
    return NULL;
}

static int mode_reused(int nforks) {
    if (pthread_create(&reused_owner, NULL, reused_parent_thread, NULL)) FAILF("pthread_create");
    pthread_mutex_lock(&reused_lock);
    while (reused_ready != 1) pthread_cond_wait(&reused_cond, &reused_lock);
    pthread_mutex_unlock(&reused_lock);
    int same_tp = 0;
    for (int f = 0; f < nforks; f++) {
        int fds[2];
        if (pipe(fds)) FAILF("pipe: %s", strerror(errno));
        pid_t pid = fork();
        if (pid < 0) FAILF("fork: %s", strerror(errno));
        if (pid == 0) {
            child_install_segv_handler();
            close(fds[0]);
            int result = 1;
            pthread_t t;
            if (pthread_create(&t, NULL, reused_child_thread, &result)) _exit(5);
            pthread_join(t, NULL);
            char same = result == -1;
            if (result == -1) result = 0;
            if (result != 0) _exit(result);
            int r = reused_rounds(99);
            if (r != 0) _exit(10 + r);
            if (write(fds[1], &same, 1) != 1) _exit(6);
            _exit(0);
        }
        close(fds[1]);
        wait_child_ok(pid, f);
        char same = 0;
        if (read(fds[0], &same, 1) != 1) FAILF("child #%d reported nothing", f);
        close(fds[0]);
        same_tp += same;
    }
    atomic_store(&reused_stop, 1);
    pthread_join(reused_owner, NULL);
    for (int i = 0; i < REUSED_N; i++)
        if (!intact(reused_blocks[i].p, reused_blocks[i].n, reused_blocks[i].seed))
            FAILF("parent block %d corrupted", i);
    for (int i = 0; i < REUSED_N; i++) v_free(reused_blocks[i].p);
    printf("SUMMARY fork-reused forks=%d same_thread_pointer=%d failed=0\n", nforks, same_tp);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    mode = argc > 1 ? argv[1] : "";
    int n = argc > 2 ? atoi(argv[2]) : 300;
    if (!strcmp(mode, "threaded")) return mode_threaded(n);
    if (!strcmp(mode, "single")) return mode_single(n);
    if (!strcmp(mode, "brkrace")) return mode_brkrace(n);
    if (!strcmp(mode, "reclaim")) return mode_reclaim(n);
    if (!strcmp(mode, "reused")) return mode_reused(n);
    fprintf(stderr, "usage: fork threaded|single|brkrace|reclaim|reused N\n");
    return 2;
}
