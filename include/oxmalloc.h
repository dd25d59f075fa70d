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
