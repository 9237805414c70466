/* jemalloc's control interface from C, as a program written for jemalloc
 * uses it: names, MIBs, C types and sizes, and the error codes. Prints each
 * failed check; exits non-zero if any. */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static int passed, failed;
#define CHECK(c)                                                      \
    do {                                                              \
        if (c) {                                                      \
            passed++;                                                 \
        } else {                                                      \
            failed++;                                                 \
            printf("FAILED line %d: %s\n", __LINE__, #c);             \
        }                                                             \
    } while (0)

int main(void) {
    /* Strings, unsigned, size_t, ssize_t, bool. */
    const char *version = NULL;
    size_t len = sizeof(version);
    CHECK(mallctl("version", &version, &len, NULL, 0) == 0);
    CHECK(version != NULL && strncmp(version, "5.3.0-", 6) == 0);

    unsigned narenas = 0;
    len = sizeof(narenas);
    CHECK(mallctl("opt.narenas", &narenas, &len, NULL, 0) == 0 && narenas >= 1);
    unsigned total = 0;
    len = sizeof(total);
    CHECK(mallctl("arenas.narenas", &total, &len, NULL, 0) == 0 && total >= narenas);

    size_t page = 0;
    len = sizeof(page);
    CHECK(mallctl("arenas.page", &page, &len, NULL, 0) == 0 && page >= 4096);

    bool tcache = false;
    len = sizeof(tcache);
    CHECK(mallctl("opt.tcache", &tcache, &len, NULL, 0) == 0 && tcache);

    ssize_t decay = 0;
    len = sizeof(decay);
    CHECK(mallctl("opt.dirty_decay_ms", &decay, &len, NULL, 0) == 0 && decay == 10000);

    /* Errors: unknown names, wrong sizes, read-only writes, actions. */
    CHECK(mallctl("no.such.name", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("arenas.page.x", NULL, NULL, NULL, 0) == ENOENT);
    unsigned small = 0;
    len = sizeof(small);
    CHECK(mallctl("arenas.page", &small, &len, NULL, 0) == EINVAL);
    CHECK(len == sizeof(small)); /* what fitted was copied */
    CHECK(mallctl("arenas.page", NULL, NULL, &page, sizeof(page)) == EPERM);
    CHECK(mallctl("opt.narenas", NULL, NULL, &narenas, sizeof(narenas)) == EPERM);
    len = sizeof(decay);
    CHECK(mallctl("arena.0.purge", &decay, &len, NULL, 0) == EPERM);
    CHECK(mallctl("arena.0.purge", NULL, &len, NULL, 0) == EPERM);
    CHECK(mallctl("arena.0.purge", NULL, NULL, NULL, 1) == EPERM);
    /* Read-only comes first, whatever the size (jemalloc's own test). */
    CHECK(mallctl("version", NULL, NULL, "0.0.0", 5) == EPERM);
    CHECK(mallctl("arena.0.purge", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.4096.purge", NULL, NULL, NULL, 0) == 0);
    CHECK(mallctl("arena.4000.purge", NULL, NULL, NULL, 0) == ENOENT);
    CHECK(mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) == 0);

    /* Read and write in one call; the old value comes back. */
    ssize_t set = 2500, old = 0;
    len = sizeof(old);
    CHECK(mallctl("arenas.dirty_decay_ms", &old, &len, &set, sizeof(set)) == 0);
    CHECK(old == 10000);
    len = sizeof(old);
    CHECK(mallctl("arenas.dirty_decay_ms", &old, &len, NULL, 0) == 0 && old == 2500);
    CHECK(mallctl("arenas.dirty_decay_ms", NULL, NULL, &set, sizeof(int)) == EINVAL);
    ssize_t bad = -2;
    CHECK(mallctl("arenas.dirty_decay_ms", NULL, NULL, &bad, sizeof(bad)) == EFAULT);
    /* A wrong old-value size: what fits is copied, and nothing is written. */
    unsigned short tiny = 0;
    len = sizeof(tiny);
    set = 3000;
    CHECK(mallctl("arenas.dirty_decay_ms", &tiny, &len, &set, sizeof(set)) == EINVAL);
    CHECK(len == sizeof(tiny));
    len = sizeof(old);
    CHECK(mallctl("arenas.dirty_decay_ms", &old, &len, NULL, 0) == 0 && old == 2500);

    /* MIBs: resolve once, then vary the arena index. */
    size_t mib[4], miblen = 4;
    CHECK(mallctlnametomib("arena.0.dirty_decay_ms", mib, &miblen) == 0 && miblen == 3);
    void *p = malloc(100); /* make sure this thread's arena exists */
    free(p);
    for (unsigned i = 0; i < total; i++) {
        mib[1] = i;
        ssize_t ms = -7;
        len = sizeof(ms);
        int r = mallctlbymib(mib, miblen, &ms, &len, NULL, 0);
        /* An index in use whose arena is not created yet: EFAULT. */
        CHECK((r == 0 && ms >= -1) || r == EFAULT);
    }
    mib[1] = 0;
    ssize_t never = -1;
    CHECK(mallctlbymib(mib, miblen, NULL, NULL, &never, sizeof(never)) == 0);
    len = sizeof(old);
    CHECK(mallctlbymib(mib, miblen, &old, &len, NULL, 0) == 0 && old == -1);
    mib[1] = 5000;
    CHECK(mallctlbymib(mib, miblen, &old, &len, NULL, 0) == ENOENT);
    miblen = 1;
    CHECK(mallctlnametomib("arena.0.purge", mib, &miblen) == 0 && miblen == 1);

    /* Per-thread counters: exact, in usable sizes. */
    uint64_t a0 = 0, a1 = 0, d0 = 0, d1 = 0;
    size_t len64 = sizeof(a0);
    CHECK(mallctl("thread.allocated", &a0, &len64, NULL, 0) == 0);
    CHECK(mallctl("thread.deallocated", &d0, &len64, NULL, 0) == 0);
    void *blocks[1000];
    for (int i = 0; i < 1000; i++) blocks[i] = malloc(100);
    for (int i = 0; i < 1000; i++) free(blocks[i]);
    CHECK(mallctl("thread.allocated", &a1, &len64, NULL, 0) == 0);
    CHECK(mallctl("thread.deallocated", &d1, &len64, NULL, 0) == 0);
    CHECK(a1 - a0 == 1000 * 112 && d1 - d0 == 1000 * 112);
    CHECK(mallctl("thread.peak.reset", NULL, NULL, NULL, 0) == 0);
    uint64_t peak = 1;
    CHECK(mallctl("thread.peak.read", &peak, &len64, NULL, 0) == 0 && peak < 4096);

    /* Explicit caches: create, use through MALLOCX_TCACHE, flush, destroy,
     * reuse of the id. */
    unsigned tc = 0, tc2 = 0;
    len = sizeof(tc);
    CHECK(mallctl("tcache.create", &tc, &len, NULL, 0) == 0);
    void *q[50];
    for (int i = 0; i < 50; i++) {
        q[i] = mallocx(64, MALLOCX_TCACHE(tc));
        CHECK(q[i] != NULL);
        memset(q[i], i, 64);
    }
    for (int i = 0; i < 50; i++) dallocx(q[i], MALLOCX_TCACHE(tc));
    void *back = mallocx(64, MALLOCX_TCACHE(tc));
    CHECK(back == q[49]); /* the last block freed into it comes back first */
    dallocx(back, MALLOCX_TCACHE(tc));
    CHECK(mallctl("tcache.flush", NULL, NULL, &tc, sizeof(tc)) == 0);
    len = sizeof(tc);
    CHECK(mallctl("tcache.flush", &tc2, &len, NULL, 0) == EPERM); /* write-only */
    CHECK(mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc)) == 0);
    CHECK(mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc)) == EFAULT);
    len = sizeof(tc2);
    CHECK(mallctl("tcache.create", &tc2, &len, NULL, 0) == 0 && tc2 == tc);
    CHECK(mallctl("tcache.destroy", NULL, NULL, &tc2, sizeof(tc2)) == 0);
    /* An id with no cache behind it is bypassed. */
    void *u = mallocx(64, MALLOCX_TCACHE(4000));
    CHECK(u != NULL);
    dallocx(u, MALLOCX_TCACHE(4000));

    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
