/*
 * Shared by the C test programs: the malloc API called through volatile function
 * pointers, so that gcc can neither elide malloc/free pairs nor fold
 * "malloc(SIZE_MAX) == NULL" at compile time. Include after <malloc.h> and <stdlib.h>
 * with _GNU_SOURCE defined (reallocarray, pvalloc). A program uses the ones it needs.
 */
#ifndef OXMALLOC_TEST_VCALLS_H
#define OXMALLOC_TEST_VCALLS_H

#include <malloc.h>
#include <stdlib.h>

#define VCALL static __attribute__((unused))
VCALL void *(*volatile v_malloc)(size_t) = malloc;
VCALL void (*volatile v_free)(void *) = free;
VCALL void *(*volatile v_calloc)(size_t, size_t) = calloc;
VCALL void *(*volatile v_realloc)(void *, size_t) = realloc;
VCALL void *(*volatile v_reallocarray)(void *, size_t, size_t) = reallocarray;
VCALL int (*volatile v_posix_memalign)(void **, size_t, size_t) = posix_memalign;
VCALL void *(*volatile v_aligned_alloc)(size_t, size_t) = aligned_alloc;
VCALL void *(*volatile v_memalign)(size_t, size_t) = memalign;
VCALL void *(*volatile v_valloc)(size_t) = valloc;
VCALL void *(*volatile v_pvalloc)(size_t) = pvalloc;
VCALL size_t (*volatile v_usable)(void *) = malloc_usable_size;
#undef VCALL

#endif
