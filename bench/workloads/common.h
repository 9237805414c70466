/* Helpers shared by the rjem bench C workloads (the .c files beside this).
 *
 * Every workload is a standalone program that any allocator can serve via
 * LD_PRELOAD: it takes its scale from argv, checks what it computes, prints
 * one result line on stdout and exits 1 (with "FAILED: ..." on stderr) when
 * a check fails. The runner (`rjem bench`) compiles each with
 * `cc -O2 -pthread -I bench/workloads FILE -lm`.
 */
#ifndef RJEM_BENCH_COMMON_H
#define RJEM_BENCH_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* splitmix64: small, fast, and the same sequence under every allocator. */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rng_below(uint64_t *s, uint64_t n) {
    return rng_next(s) % n;
}

static inline void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("FAILED: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The cache-scratch/cache-thrash inner loop: allocate `size` bytes, write
 * them `writes` times round-robin (the false-sharing traffic), check the
 * counts, free. */
static inline void scribble_rounds(long iterations, long writes, long size, const char *who) {
    for (long it = 0; it < iterations; it++) {
        volatile unsigned char *p = malloc(size);
        if (!p) fail("%s: out of memory", who);
        for (long j = 0; j < size; j++) p[j] = 0;
        for (long w = 0; w < writes; w++) p[w % size]++;
        for (long j = 0; j < size; j++) {
            long expect = writes / size + (j < writes % size);
            if (p[j] != (unsigned char)expect) fail("%s: byte %ld is %d", who, j, p[j]);
        }
        free((void *)p);
    }
}

/* argv[i] as a positive number, or dflt when absent. */
static inline long arg_long(int argc, char **argv, int i, long dflt) {
    if (i >= argc) return dflt;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end != '\0' || v <= 0) fail("bad argument '%s' (want a positive number)", argv[i]);
    return v;
}

static inline void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) fail("malloc(%zu) returned NULL", n);
    return p;
}

static inline void start_thread(pthread_t *t, void *(*fn)(void *), void *arg) {
    int e = pthread_create(t, NULL, fn, arg);
    if (e) fail("pthread_create: error %d", e);
}

/* Resident set size now, in KiB. */
static inline long rss_kib(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Stamp a block: its first word and last byte carry `tag`, so a block that
 * another allocation overlapped or that moved is caught when checked. */
static inline void stamp(void *p, size_t size, uint64_t tag) {
    memcpy(p, &tag, sizeof tag < size ? sizeof tag : size);
    if (size > sizeof tag) ((unsigned char *)p)[size - 1] = (unsigned char)(tag >> 7);
}

static inline int stamp_ok(const void *p, size_t size, uint64_t tag) {
    uint64_t got = 0;
    size_t n = sizeof tag < size ? sizeof tag : size;
    memcpy(&got, p, n);
    if (n < sizeof tag) tag &= (1ull << (8 * n)) - 1;
    if (got != tag) return 0;
    return size <= sizeof tag || ((const unsigned char *)p)[size - 1] == (unsigned char)(tag >> 7);
}

#endif
