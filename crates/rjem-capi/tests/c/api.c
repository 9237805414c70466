/* Every exported function and flag of librjem, with the edge cases C
 * programs rely on. Built against <jemalloc/jemalloc.h> and linked with
 * -lrjem (or preloaded). Prints each failed check; exits non-zero if any. */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void free_sized(void *, size_t);
void free_aligned_sized(void *, size_t, size_t);
void *pvalloc(size_t);

static int passed, failed;
#define CHECK(c)                                                      \
    do {                                                              \
        if (c) passed++;                                              \
        else { failed++; fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); } \
    } while (0)

static int all(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++) if (p[i] != v) return 0;
    return 1;
}

static void test_malloc_free(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    CHECK(malloc_usable_size(a) == 8);
    free(a); free(b);
    void *p = malloc(100);
    CHECK(malloc_usable_size(p) == 112); /* glibc says 104 or 120 */
    free(p);
    free(NULL);
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    CHECK(malloc_usable_size(NULL) == 0);
    size_t sizes[] = {1, 8, 9, 100, 4096, 14336, 14337, 20000, 1 << 20, 10 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *q = malloc(sizes[i]);
        CHECK(q != NULL && malloc_usable_size(q) >= sizes[i]);
        CHECK(((uintptr_t)q & 7) == 0);
        memset(q, 0xa5, sizes[i]);
        free(q);
    }
}

static void test_calloc(void) {
    for (int round = 0; round < 3; round++) {
        size_t sizes[] = {1, 64, 3000, 20000, 300000, 5 << 20};
        for (size_t i = 0; i < 6; i++) {
            unsigned char *d = malloc(sizes[i]);
            memset(d, 0xff, sizes[i]);
            free(d);
            unsigned char *z = calloc(1, sizes[i]);
            CHECK(z && all(z, sizes[i], 0));
            memset(z, 0xee, sizes[i]);
            free(z);
        }
    }
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    void *z = calloc(0, 0);
    CHECK(z != NULL);
    free(z);
}

static void test_realloc(void) {
    unsigned char *p = realloc(NULL, 10);
    CHECK(p != NULL);
    for (int i = 0; i < 10; i++) p[i] = (unsigned char)i;
    size_t n = 10;
    while (n < (8u << 20)) {
        size_t m = n * 2 + 3;
        p = realloc(p, m);
        CHECK(p != NULL);
        for (int i = 0; i < 10; i++) if (p[i] != i) { CHECK(!"content lost"); break; }
        n = m;
    }
    p = realloc(p, 5);
    CHECK(p && p[4] == 4);
    errno = 0;
    unsigned char *q = realloc(p, SIZE_MAX - 100);
    CHECK(q == NULL && errno == ENOMEM && p[3] == 3); /* original intact */
    CHECK(realloc(p, 0) == NULL); /* frees, as jemalloc 5.3 */
    errno = 0;
    CHECK(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    int *arr = reallocarray(NULL, 100, sizeof(int));
    CHECK(arr != NULL);
    arr[99] = 7;
    arr = reallocarray(arr, 1000, sizeof(int));
    CHECK(arr && arr[99] == 7);
    free(arr);
}

static void test_aligned(void) {
    for (size_t a = sizeof(void *); a <= (1u << 22); a <<= 1) {
        void *p = (void *)1;
        CHECK(posix_memalign(&p, a, 100) == 0 && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
        p = aligned_alloc(a, 3 * a);
        CHECK(p && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
        p = memalign(a, 1);
        CHECK(p && ((uintptr_t)p & (a - 1)) == 0);
        free(p);
    }
    void *out = (void *)0x1234;
    CHECK(posix_memalign(&out, 3, 10) == EINVAL && out == (void *)0x1234);
    CHECK(posix_memalign(&out, 0, 10) == EINVAL && out == (void *)0x1234);
    CHECK(posix_memalign(&out, 4, 10) == EINVAL && out == (void *)0x1234);
    CHECK(posix_memalign(&out, 64, SIZE_MAX - 10) == ENOMEM && out == (void *)0x1234);
    CHECK(posix_memalign(&out, 64, 0) == 0 && out != NULL && out != (void *)0x1234);
    CHECK(((uintptr_t)out & 63) == 0);
    free(out);
    /* Zero-byte aligned requests still honour the alignment. */
    for (size_t a = 16; a <= 8192; a <<= 1) {
        void *z = aligned_alloc(a, 0);
        CHECK(z && ((uintptr_t)z & (a - 1)) == 0);
        free(z);
        z = memalign(a, 0);
        CHECK(z && ((uintptr_t)z & (a - 1)) == 0);
        free(z);
    }
    errno = 0;
    CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(3, 48) == NULL && errno == EINVAL);
    void *p = aligned_alloc(1, 5); /* any power of two, as jemalloc */
    CHECK(p != NULL);
    free(p);
    long page = sysconf(_SC_PAGESIZE);
    p = valloc(10);
    CHECK(p && ((uintptr_t)p & (page - 1)) == 0);
    free(p);
    p = pvalloc(10);
    CHECK(p && ((uintptr_t)p & (page - 1)) == 0 && malloc_usable_size(p) >= (size_t)page);
    free(p);
    p = malloc(200);
    free_sized(p, 200);
    p = aligned_alloc(256, 1000);
    free_aligned_sized(p, 256, 1000);
}

static void test_mallocx(void) {
    void *p = mallocx(100, 0);
    CHECK(p && sallocx(p, 0) == 112 && malloc_usable_size(p) == 112);
    dallocx(p, 0);
    for (int lg = 0; lg <= 20; lg++) {
        p = mallocx(10, MALLOCX_LG_ALIGN(lg));
        CHECK(p && ((uintptr_t)p & ((1ul << lg) - 1)) == 0);
        CHECK(sallocx(p, 0) == nallocx(10, MALLOCX_LG_ALIGN(lg)));
        dallocx(p, MALLOCX_LG_ALIGN(lg));
        p = mallocx(5000, MALLOCX_ALIGN(1ul << lg));
        CHECK(p && ((uintptr_t)p & ((1ul << lg) - 1)) == 0);
        sdallocx(p, 5000, MALLOCX_ALIGN(1ul << lg));
    }
    for (int round = 0; round < 3; round++) {
        size_t sizes[] = {24, 4000, 40000, 3 << 20};
        for (int i = 0; i < 4; i++) {
            unsigned char *d = mallocx(sizes[i], 0);
            memset(d, 0x77, sizes[i]);
            dallocx(d, 0);
            unsigned char *z = mallocx(sizes[i], MALLOCX_ZERO);
            CHECK(z && all(z, sizes[i], 0));
            memset(z, 0x66, sizes[i]);
            sdallocx(z, sizes[i], 0);
        }
    }
    p = mallocx(64, MALLOCX_TCACHE_NONE);
    CHECK(p != NULL);
    dallocx(p, MALLOCX_TCACHE_NONE);
    for (int a = 0; a < 4; a++) {
        p = mallocx(1000, MALLOCX_ARENA(a) | MALLOCX_ZERO | MALLOCX_TCACHE_NONE);
        CHECK(p && all(p, 1000, 0));
        dallocx(p, MALLOCX_TCACHE_NONE);
        p = mallocx(100000, MALLOCX_ARENA(a));
        CHECK(p != NULL);
        dallocx(p, 0);
    }
    CHECK(mallocx(SIZE_MAX, 0) == NULL);
    CHECK(mallocx(1, MALLOCX_LG_ALIGN(63)) == NULL);
}

static void test_rallocx_xallocx(void) {
    unsigned char *p = mallocx(50, 0);
    memset(p, 9, 50);
    p = rallocx(p, 5000, MALLOCX_ZERO);
    CHECK(p && all(p, 50, 9) && all(p + 50, 5000 - 50, 0));
    p = rallocx(p, 100000, MALLOCX_ALIGN(4096));
    CHECK(p && ((uintptr_t)p & 4095) == 0 && all(p, 50, 9));
    p = rallocx(p, 30, 0);
    CHECK(p && all(p, 30, 9));
    CHECK(rallocx(p, SIZE_MAX, 0) == NULL && p[0] == 9);
    dallocx(p, 0);

    /* xallocx never moves: same pointer, size between old and requested. */
    p = mallocx(1 << 20, 0);
    memset(p, 3, 1 << 20);
    size_t old = sallocx(p, 0);
    size_t got = xallocx(p, 2 << 20, 0, 0);
    CHECK(got == old || got == (2u << 20));
    CHECK(sallocx(p, 0) == got && all(p, 1 << 20, 3));
    got = xallocx(p, 1 << 19, 0, 0); /* shrink in place */
    CHECK(got == (1u << 19) && sallocx(p, 0) == got && all(p, 1 << 19, 3));
    got = xallocx(p, 1 << 19, 1 << 20, 0);
    CHECK(got >= (1u << 19) && got <= (3u << 19));
    dallocx(p, 0);
    /* A size already within [size, size + extra] is never shrunk. */
    p = mallocx(65536, 0);
    got = xallocx(p, 20000, 100000, 0);
    CHECK(got >= 65536 && got <= nallocx(120000, 0) && sallocx(p, 0) == got);
    dallocx(p, 0);
    p = mallocx(10, 0);
    CHECK(xallocx(p, 16, 0, 0) == 16);  /* same class */
    CHECK(xallocx(p, 100, 0, 0) == 16); /* small classes cannot grow */
    dallocx(p, 0);
}

/* free must leave errno alone, even when it flushes, takes contended locks
 * or purges pages. */
static void test_errno_preserved(void) {
    void *v[5000];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 5000; i++) v[i] = malloc(16 + (i % 50) * 300);
        errno = EBADF;
        for (int i = 0; i < 5000; i++) free(v[i]);
        void *big = malloc(20 << 20);
        free(big);
        CHECK(errno == EBADF);
    }
}

static void test_nallocx(void) {
    CHECK(nallocx(1, 0) == 8);
    CHECK(nallocx(100, 0) == 112);
    CHECK(nallocx(14337, 0) == 16384);
    CHECK(nallocx(1, MALLOCX_ALIGN(16)) == 16);
    CHECK(nallocx(40, MALLOCX_ALIGN(32)) == 64);
    CHECK(nallocx(1, MALLOCX_ALIGN(8192)) == 16384);
    CHECK(nallocx(SIZE_MAX, 0) == 0);
    CHECK(nallocx(100000, 0) == 114688);
}

int main(void) {
    test_malloc_free();
    test_calloc();
    test_realloc();
    test_aligned();
    test_mallocx();
    test_rallocx_xallocx();
    test_nallocx();
    test_errno_preserved();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
