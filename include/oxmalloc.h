/*
 * oxmalloc: a general-purpose memory allocator for Linux.
 *
 * liboxmalloc.so exports glibc's whole malloc API under glibc's names (malloc, free,
 * calloc, realloc, posix_memalign, mallopt, mallinfo2, malloc_trim, ...), so a program
 * needs no header to use it: LD_PRELOAD=liboxmalloc.so is enough.
 *
 * This header declares oxmalloc's own entry points: the same functions under an
 * oxmalloc_ prefix (usable side by side with glibc's malloc when the library is linked
 * rather than preloaded), the library version, and the mallopt parameter numbers that
 * oxmalloc honours (glibc's numbering). Compiles as C and C++.
 */
#ifndef OXMALLOC_H
#define OXMALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <malloc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OXMALLOC_VERSION_MAJOR 0
#define OXMALLOC_VERSION_MINOR 1
#define OXMALLOC_VERSION_PATCH 0

/* "0.1.0": the version of the library actually loaded. */
const char *oxmalloc_version(void);

void *oxmalloc_malloc(size_t size);
void oxmalloc_free(void *ptr);
void *oxmalloc_calloc(size_t nmemb, size_t size);
void *oxmalloc_realloc(void *ptr, size_t size);
void *oxmalloc_reallocarray(void *ptr, size_t nmemb, size_t size);
int oxmalloc_posix_memalign(void **memptr, size_t alignment, size_t size);
void *oxmalloc_aligned_alloc(size_t alignment, size_t size);
void *oxmalloc_memalign(size_t alignment, size_t size);
void *oxmalloc_valloc(size_t size);
void *oxmalloc_pvalloc(size_t size);
size_t oxmalloc_malloc_usable_size(void *ptr);
void oxmalloc_free_sized(void *ptr, size_t size);
void oxmalloc_free_aligned_sized(void *ptr, size_t alignment, size_t size);
int oxmalloc_mallopt(int param, int value);
struct mallinfo oxmalloc_mallinfo(void);
struct mallinfo2 oxmalloc_mallinfo2(void);
int oxmalloc_malloc_trim(size_t pad);
void oxmalloc_malloc_stats(void);
int oxmalloc_malloc_info(int options, FILE *stream);

/*
 * Seeing the heap. oxmalloc_stats_get fills *out with a census of the heap (taken on
 * demand: every span walked under the arena locks, resident pages asked of the kernel
 * with mincore; nothing is counted on the allocation paths) and returns
 * sizeof(struct oxmalloc_stats) as the library knows it; it copies at most `size`
 * bytes, so pass sizeof(struct oxmalloc_stats). out == NULL returns the size only.
 * The fields mean what the same fields of oxmalloc::Stats mean (src/census.rs).
 * oxmalloc_stats_print writes the malloc_stats report (glibc's lines, bytes in use
 * by size class, arenas, RSS breakdown) to a file descriptor.
 */
#define OXMALLOC_STATS_CLASSES 48
#define OXMALLOC_STATS_ARENAS 64

struct oxmalloc_class_stats {
    size_t block_size;
    size_t spans, span_bytes;          /* spans of this class and their bytes */
    size_t blocks_in_use, bytes_in_use; /* handed out, at the class size */
    size_t blocks_total;               /* blocks the spans hold in all */
    size_t resident;                   /* resident bytes of the spans */
};

struct oxmalloc_arena_stats {
    size_t system;                     /* address space in its regions */
    size_t resident;                   /* of which resident */
    size_t in_use;                     /* small blocks (class size) + big blocks */
    size_t regions;
    size_t small_spans, small_span_bytes;
    size_t big_blocks, big_bytes;
    size_t free_runs, free_bytes, decommitted_bytes;
    size_t cached_spans, cached_bytes; /* empty spans kept ready */
};

/* Resident bytes by what they hold; the lines up to `metadata` sum to `allocator`. */
struct oxmalloc_breakdown {
    size_t live_small, live_big, live_large;
    size_t free_in_thread_heaps, free_in_orphans;
    size_t heap_top, decay_free_runs, decay_cached_spans;
    size_t outside_spans, metadata;
    size_t allocator;                  /* the allocator's resident memory */
    size_t process_rss, process_anon;  /* /proc/self/smaps_rollup Rss, Anonymous */
    ptrdiff_t remainder;               /* process_rss - allocator */
};

struct oxmalloc_stats {
    size_t size;                       /* sizeof(struct oxmalloc_stats) of the library */
    size_t arena_count;
    size_t system, in_use;             /* over the arenas */
    size_t mmapped_blocks, mmapped_bytes, max_mmapped_blocks, max_mmapped_bytes;
    size_t thread_heaps;
    size_t program_break;
    size_t metadata_mapped;
    size_t residency_errors;
    struct oxmalloc_breakdown breakdown;
    struct oxmalloc_class_stats classes[OXMALLOC_STATS_CLASSES];
    struct oxmalloc_arena_stats arenas[OXMALLOC_STATS_ARENAS];
};

size_t oxmalloc_stats_get(struct oxmalloc_stats *out, size_t size);
void oxmalloc_stats_print(int fd);

/* mallopt parameters, glibc's numbers (all return 1 when accepted). */
#define OXMALLOC_M_MXFAST          1
#define OXMALLOC_M_TRIM_THRESHOLD (-1)
#define OXMALLOC_M_TOP_PAD        (-2)
#define OXMALLOC_M_MMAP_THRESHOLD (-3)
#define OXMALLOC_M_MMAP_MAX       (-4)
#define OXMALLOC_M_CHECK_ACTION   (-5)
#define OXMALLOC_M_PERTURB        (-6)
#define OXMALLOC_M_ARENA_TEST     (-7)
#define OXMALLOC_M_ARENA_MAX      (-8)

#ifdef __cplusplus
}
#endif

#endif /* OXMALLOC_H */
