/*
 * rjem: jemalloc 5.3's design rebuilt in Rust. This header declares
 * librjem's non-standard API with jemalloc 5.3's names and flag values, so
 * code written for jemalloc builds against rjem unchanged (or include
 * <jemalloc/jemalloc.h>, which includes this file).
 *
 * The standard functions (malloc, free, calloc, realloc, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size,
 * reallocarray, free_sized, free_aligned_sized) are exported unprefixed and
 * declared by the C library's own headers.
 */
#ifndef RJEM_H_
#define RJEM_H_

#include <stddef.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RJEM_VERSION "0.1.0"
/* The jemalloc API level this library implements. */
#define JEMALLOC_VERSION "5.3.0-0-rjem"
#define JEMALLOC_VERSION_MAJOR 5
#define JEMALLOC_VERSION_MINOR 3
#define JEMALLOC_VERSION_BUGFIX 0
#define JEMALLOC_VERSION_NREV 0

/* Flags for mallocx, rallocx, xallocx, sallocx, dallocx, sdallocx, nallocx. */
#define MALLOCX_LG_ALIGN(la) ((int)(la))
#define MALLOCX_ALIGN(a) ((int)__builtin_ctzl((unsigned long)(a)))
#define MALLOCX_ZERO ((int)0x40)
/* Use tcache tc (from tcache.create); bypass the thread cache with NONE. */
#define MALLOCX_TCACHE(tc) ((int)(((tc) + 2) << 8))
#define MALLOCX_TCACHE_NONE (MALLOCX_TCACHE(-1))
/* Allocate from arena a. */
#define MALLOCX_ARENA(a) ((((int)(a)) + 1) << 20)

/* mallctl's special arena indices. */
#define MALLCTL_ARENAS_ALL 4096
#define MALLCTL_ARENAS_DESTROYED 4097

void *mallocx(size_t size, int flags);
void *rallocx(void *ptr, size_t size, int flags);
size_t xallocx(void *ptr, size_t size, size_t extra, int flags);
size_t sallocx(const void *ptr, int flags);
void dallocx(void *ptr, int flags);
void sdallocx(void *ptr, size_t size, int flags);
size_t nallocx(size_t size, int flags);

/* jemalloc's control interface, with jemalloc 5.3's names, types and
 * error codes: ENOENT for an unknown name or index, EPERM for a write to a
 * read-only control or an action given values, EINVAL for a value of the
 * wrong size, EFAULT for a value out of range. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
                 size_t newlen);

/* Extent hooks (arenas.create, arena.<i>.extent_hooks): the functions an
 * arena calls to get, purge and return its pages. All but alloc return
 * true for failure or refusal; a NULL function refuses. rjem keeps every
 * extent committed, never merges extents from different alloc calls, and
 * calls hooks with the arena's page lock held (see the README). */
typedef struct extent_hooks_s extent_hooks_t;
typedef void *(extent_alloc_t)(extent_hooks_t *, void *new_addr, size_t size, size_t alignment,
                               bool *zero, bool *commit, unsigned arena_ind);
typedef bool(extent_dalloc_t)(extent_hooks_t *, void *addr, size_t size, bool committed,
                              unsigned arena_ind);
typedef void(extent_destroy_t)(extent_hooks_t *, void *addr, size_t size, bool committed,
                               unsigned arena_ind);
typedef bool(extent_commit_t)(extent_hooks_t *, void *addr, size_t size, size_t offset,
                              size_t length, unsigned arena_ind);
typedef bool(extent_decommit_t)(extent_hooks_t *, void *addr, size_t size, size_t offset,
                                size_t length, unsigned arena_ind);
typedef bool(extent_purge_t)(extent_hooks_t *, void *addr, size_t size, size_t offset,
                             size_t length, unsigned arena_ind);
typedef bool(extent_split_t)(extent_hooks_t *, void *addr, size_t size, size_t size_a,
                             size_t size_b, bool committed, unsigned arena_ind);
typedef bool(extent_merge_t)(extent_hooks_t *, void *addr_a, size_t size_a, void *addr_b,
                             size_t size_b, bool committed, unsigned arena_ind);
struct extent_hooks_s {
    extent_alloc_t *alloc;
    extent_dalloc_t *dalloc;
    extent_destroy_t *destroy;
    extent_commit_t *commit;
    extent_decommit_t *decommit;
    extent_purge_t *purge_lazy;
    extent_purge_t *purge_forced;
    extent_split_t *split;
    extent_merge_t *merge;
};

/* jemalloc's statistics report, text or (opts containing 'J') JSON, in
 * pieces to write_cb; with a null write_cb, to malloc_message if the
 * program set it, else stderr. */
void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                        const char *opts);
extern void (*malloc_message)(void *cbopaque, const char *s);

#ifdef __cplusplus
}
#endif

#endif /* RJEM_H_ */
