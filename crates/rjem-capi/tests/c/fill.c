/* jemalloc's fill options, junk and zero: what new, freed, reused and
 * grown blocks hold. argv[1] is the setting in force: "junk:true",
 * "junk:alloc", "junk:free", "zero:true" or "none". Prints "ok" or what
 * went wrong. Reads freed memory on purpose (it stays mapped: small
 * blocks sit in the thread cache, large ones in the arena's dirty pages),
 * as jemalloc's own tests of junk do. Runs on jemalloc 5.3 too (its
 * functions are looked up at run time). */
#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wuse-after-free"

/* jemalloc's API and flags. */
static int (*mallctl)(const char *, void *, size_t *, void *, size_t);
static void *(*mallocx)(size_t, int);
static size_t (*sallocx)(const void *, int);
static size_t (*xallocx)(void *, size_t, size_t, int);
static void (*dallocx)(void *, int);
static void (*sdallocx)(void *, size_t, int);
#define MALLOCX_ZERO 0x40
#define MALLOCX_ALIGN(a) (__builtin_ctzl(a))
#define MALLOCX_TCACHE_NONE (1 << 8)

/* memset that the compiler cannot drop before a free. */
static void *(*volatile set)(void *, int, size_t) = memset;

static int junk_alloc, junk_free, zero;
static const char *failed;

/* Whether all n bytes at p are b; if not, prints where. */
static int all(const void *p, size_t n, unsigned char b, const char *what) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        if (c[i] != b) {
            printf("%s: byte %zu of %zu is %#x, not %#x\n", what, i, n, c[i], b);
            failed = what;
            return 0;
        }
    }
    return 1;
}

/* rjem keeps its double-free key in the first word of a freed block a
 * thread cache holds, and clears it when it hands the block out again:
 * freed and reused blocks are read from the second word on. */
#define KEY 8

/* What a new block's bytes must be, or -1 for "anything". */
static int fresh(void) {
    if (zero) return 0;
    if (junk_alloc) return 0xa5;
    return -1;
}

static void check_new(const void *p, size_t n, const char *what) {
    int want = fresh();
    if (want >= 0) all(p, n, (unsigned char)want, what);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "none";
    junk_alloc = !strcmp(mode, "junk:true") || !strcmp(mode, "junk:alloc");
    junk_free = !strcmp(mode, "junk:true") || !strcmp(mode, "junk:free");
    zero = !strcmp(mode, "zero:true");
    free(malloc(1)); /* start the allocator */
    *(void **)&mallctl = dlsym(RTLD_DEFAULT, "mallctl");
    *(void **)&mallocx = dlsym(RTLD_DEFAULT, "mallocx");
    *(void **)&sallocx = dlsym(RTLD_DEFAULT, "sallocx");
    *(void **)&xallocx = dlsym(RTLD_DEFAULT, "xallocx");
    *(void **)&dallocx = dlsym(RTLD_DEFAULT, "dallocx");
    *(void **)&sdallocx = dlsym(RTLD_DEFAULT, "sdallocx");
    if (!mallctl || !mallocx || !sallocx || !xallocx || !dallocx || !sdallocx)
        return puts("jemalloc's API is missing"), 1;

    /* The options read back as set. */
    const char *junk = NULL;
    bool z = false;
    size_t len = sizeof(junk);
    if (mallctl("opt.junk", &junk, &len, NULL, 0) != 0) return puts("no opt.junk"), 1;
    len = sizeof(z);
    if (mallctl("opt.zero", &z, &len, NULL, 0) != 0) return puts("no opt.zero"), 1;
    const char *want_junk = !strncmp(mode, "junk:", 5) ? mode + 5 : "false";
    if (strcmp(junk, want_junk) != 0 || z != zero) {
        printf("opt.junk %s, opt.zero %d\n", junk, z);
        return 1;
    }

    /* New blocks of every kind: small, cached large, large, huge. Freed
     * blocks up to 100000 bytes are read back. */
    size_t sizes[] = {1, 8, 100, 3000, 20000, 100000, 3 << 20, 10 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = malloc(sizes[i]);
        size_t u = malloc_usable_size(p);
        check_new(p, u, "malloc");
        set(p, 0x11, u);
        free(p);
        if (sizes[i] <= 100000 && u > KEY)
            all(p + KEY, u - KEY, junk_free ? 0x5a : 0x11, "freed block");
    }
    /* A freed block handed out again (the cache gives the last one back). */
    unsigned char *p = malloc(100);
    set(p, 0x11, malloc_usable_size(p));
    free(p);
    unsigned char *q = malloc(100);
    if (q != p) return puts("the cache did not hand the block out again"), 1;
    int want = fresh() >= 0 ? fresh() : junk_free ? 0x5a : 0x11;
    size_t from = fresh() >= 0 ? 0 : KEY;
    all(q + from, malloc_usable_size(q) - from, (unsigned char)want, "reused block");
    /* Zeroing asked for wins over junk. */
    set(q, 0x11, malloc_usable_size(q));
    free(q);
    q = calloc(1, 100);
    all(q, malloc_usable_size(q), 0, "calloc");
    free(q);
    q = mallocx(5000, MALLOCX_ZERO);
    all(q, sallocx(q, 0), 0, "mallocx zero");
    dallocx(q, 0);
    if (junk_free) all(q + KEY, 5000 - KEY, 0x5a, "dallocx");
    /* Other entry points. */
    void *a = NULL;
    if (posix_memalign(&a, 4096, 5000) != 0) return puts("posix_memalign"), 1;
    check_new(a, malloc_usable_size(a), "posix_memalign");
    free(a);
    a = aligned_alloc(64, 640);
    check_new(a, malloc_usable_size(a), "aligned_alloc");
    sdallocx(a, 640, MALLOCX_ALIGN(64));
    if (junk_free) all((char *)a + KEY, 640 - KEY, 0x5a, "sdallocx");
    a = mallocx(700, MALLOCX_TCACHE_NONE);
    check_new(a, sallocx(a, 0), "mallocx");
    free(a);

    /* Growing: the old contents stay, the bytes past the old usable size
     * are new (junk or zero); small to small (moves) and large (in place
     * if the pages after it are free). */
    size_t grow[][2] = {{100, 1000}, {100000, 300000}, {3 << 20, 5 << 20}};
    for (size_t i = 0; i < 3; i++) {
        unsigned char *b = malloc(grow[i][0]);
        size_t old = malloc_usable_size(b);
        set(b, 0x22, old);
        b = realloc(b, grow[i][1]);
        size_t u = malloc_usable_size(b);
        all(b, old, 0x22, "realloc kept");
        check_new(b + old, u - old, "realloc grown");
        free(b);
    }
    unsigned char *x = mallocx(1 << 20, 0);
    set(x, 0x33, 1 << 20);
    size_t u = xallocx(x, 2 << 20, 0, 0);
    all(x, 1 << 20, 0x33, "xallocx kept");
    check_new(x + (1 << 20), u - (1 << 20), "xallocx grown");
    dallocx(x, 0);

    if (failed) return 1;
    puts("ok");
    return 0;
}
