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
