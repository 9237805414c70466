/* A seeded random-operation driver over librjem's whole C API, checked
 * against a model of every live block.
 *
 *   fuzz SEED OPS THREADS
 *
 * Each of THREADS threads runs OPS operations drawn from its own random
 * stream (from SEED and its index): allocations by every function (malloc,
 * calloc, realloc, posix_memalign, aligned_alloc, memalign, mallocx),
 * resizes (realloc, rallocx, xallocx), frees by every function (free,
 * free_sized, free_aligned_sized, sdallocx, dallocx, realloc(p, 0)), cache
 * flushes and purges, and hand-overs of blocks to other threads through
 * shared mailboxes. Sizes are log-distributed from 0 to 8 MiB (one in 256
 * from 8 to 40 MiB), alignments from 1 to 2 MiB. The model checks, for
 * every block:
 *   - alignment, and the usable size: malloc_usable_size == sallocx ==
 *     nallocx(size, alignment) (xallocx: its result), at least the size;
 *   - contents: a pattern derived from the block's address and size is
 *     written on allocation and checked before every resize, hand-over and
 *     free (every byte of the first 4 KiB, then the last 256 bytes and 64
 *     points between); a resize keeps the common prefix; calloc,
 *     MALLOCX_ZERO and rallocx's grown part read as zero.
 * The interleaving of threads is not reproducible, each thread's operations
 * are. On a failure it prints the seed, thread and operation and exits 1;
 * on success "fuzz ok". */
#include <jemalloc/jemalloc.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* C23; not yet declared by every C library's headers. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);

#define SLOTS 64
#define MAILBOXES 64
#define HEAD 4096

typedef struct {
    unsigned char *p; /* NULL: empty */
    size_t size;      /* size asked for (for a sized free: any of [size, usable]) */
    size_t align;     /* alignment asked for; 1 if none */
    int aligned;      /* from an aligned allocation function (free_aligned_sized) */
    uint64_t tag;     /* the content pattern */
} block;

static uint64_t seed;
static block mailbox[MAILBOXES];
static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    int id;
    uint64_t rng;
    unsigned long op;
    unsigned long ops;
    block slot[SLOTS];
} worker;

static _Noreturn void fail(worker *w, const char *what, const block *b) {
    printf("fuzz FAILED (seed %llu, thread %d, operation %lu): %s", (unsigned long long)seed,
           w ? w->id : -1, w ? w->op : 0, what);
    if (b) printf(" [block %p size %zu align %zu]", (void *)b->p, b->size, b->align);
    printf("\n");
    fflush(stdout);
    _exit(1);
}

static uint64_t next(worker *w) {
    /* splitmix64 */
    uint64_t z = (w->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t below(worker *w, size_t n) { return (size_t)(next(w) % n); }

/* 0, or log-distributed below 8 MiB; one in 256 from 8 to 40 MiB: past
 * the thread caches' largest class (the pointer map leaves those classes
 * to the extent record) and at or above `oversize_threshold`. */
static size_t rand_size(worker *w) {
    if (below(w, 256) == 0) return ((size_t)8 << 20) + below(w, (size_t)32 << 20);
    size_t k = below(w, 24);
    if (k == 0) return 0;
    size_t lo = (size_t)1 << (k - 1);
    return lo + below(w, lo);
}

/* Mostly small alignments; every power of two up to 2 MiB. */
static size_t rand_align(worker *w) {
    size_t r = below(w, 10), lg;
    if (r < 6) lg = below(w, 5);
    else if (r < 9) lg = 5 + below(w, 8);
    else lg = 13 + below(w, 9);
    return (size_t)1 << lg;
}

static unsigned char pattern(uint64_t tag, size_t i) {
    return (unsigned char)(((tag + i) * 0x9e3779b97f4a7c15ull) >> 56);
}

/* Calls f(b, i) for each checked position i of a block of `size` bytes. */
#define FOR_POSITIONS(size, i, body)                                       \
    do {                                                                   \
        size_t n_ = (size), h_ = n_ < HEAD ? n_ : HEAD;                    \
        for (size_t i = 0; i < h_; i++) body;                             \
        if (n_ > HEAD) {                                                   \
            for (size_t i = n_ - 256; i < n_; i++) body;                  \
            for (size_t k_ = 1; k_ < 64; k_++) {                          \
                size_t i = n_ / 64 * k_;                                   \
                body;                                                      \
            }                                                              \
        }                                                                  \
    } while (0)

static void fill(block *b) {
    b->tag = ((uint64_t)(uintptr_t)b->p * 0x100000001b3ull) ^ ((uint64_t)b->size << 20) ^ seed;
    FOR_POSITIONS(b->size, i, b->p[i] = pattern(b->tag, i));
}

/* The block's contents are its pattern, in the first `upto` bytes. */
static void check_contents(worker *w, const block *b, size_t upto) {
    FOR_POSITIONS(b->size, i, {
        if (i < upto && b->p[i] != pattern(b->tag, i)) fail(w, "contents changed", b);
    });
}

static void check_zero(worker *w, const block *b, size_t from) {
    FOR_POSITIONS(b->size, i, {
        if (i >= from && b->p[i] != 0) fail(w, "memory that must be zero is not", b);
    });
}

static int lg(size_t a) { return __builtin_ctzl(a); }

/* Alignment and usable size of a block just (re)allocated. */
static void check_block(worker *w, const block *b) {
    if (!b->p) fail(w, "allocation failed", b);
    if ((uintptr_t)b->p % b->align) fail(w, "misaligned", b);
    size_t u = malloc_usable_size(b->p);
    if (u < b->size) fail(w, "usable size below the size", b);
    if (sallocx(b->p, 0) != u) fail(w, "sallocx != malloc_usable_size", b);
    if (nallocx(b->size, MALLOCX_LG_ALIGN(lg(b->align))) != u)
        fail(w, "nallocx != malloc_usable_size", b);
}

static void alloc_into(worker *w, block *b) {
    size_t size = rand_size(w), align = 1;
    int zero = 0, aligned = 0;
    void *p = NULL;
    switch (below(w, 8)) {
    case 0:
        p = malloc(size);
        break;
    case 1: {
        size_t n = 1 + below(w, 4);
        size /= n;
        p = calloc(n, size);
        size *= n;
        zero = 1;
        break;
    }
    case 2:
        align = rand_align(w);
        if (align < sizeof(void *)) align = sizeof(void *);
        if (posix_memalign(&p, align, size) != 0) p = NULL;
        aligned = 1;
        break;
    case 3:
        align = rand_align(w);
        p = aligned_alloc(align, size);
        aligned = 1;
        break;
    case 4:
        align = rand_align(w);
        p = memalign(align, size);
        aligned = 1;
        break;
    case 5:
    case 6: {
        int flags = 0;
        if (below(w, 2)) {
            align = rand_align(w);
            flags |= MALLOCX_LG_ALIGN(lg(align));
            aligned = 1;
        }
        if (below(w, 3) == 0) {
            flags |= MALLOCX_ZERO;
            zero = 1;
        }
        if (below(w, 8) == 0) flags |= MALLOCX_TCACHE_NONE;
        p = mallocx(size, flags);
        break;
    }
    default:
        p = realloc(NULL, size);
        break;
    }
    *b = (block){p, size, align, aligned, 0};
    check_block(w, b);
    if (zero) check_zero(w, b, 0);
    fill(b);
}

static void free_block(worker *w, block *b) {
    check_contents(w, b, b->size);
    size_t u = malloc_usable_size(b->p);
    size_t sized = b->size + below(w, u - b->size + 1); /* any of [size, usable] */
    switch (below(w, 6)) {
    case 0:
        free(b->p);
        break;
    case 1:
        if (b->aligned) free_aligned_sized(b->p, b->align, sized);
        else free_sized(b->p, sized);
        break;
    case 2:
        sdallocx(b->p, sized, MALLOCX_LG_ALIGN(lg(b->align)));
        break;
    case 3:
        dallocx(b->p, below(w, 4) == 0 ? MALLOCX_TCACHE_NONE : 0);
        break;
    case 4:
        if (realloc(b->p, 0) != NULL) fail(w, "realloc(p, 0) did not free", b);
        break;
    default:
        free(b->p);
        break;
    }
    b->p = NULL;
}

static void resize_block(worker *w, block *b) {
    check_contents(w, b, b->size);
    block old = *b;
    size_t old_usable = malloc_usable_size(b->p);
    size_t size = rand_size(w);
    switch (below(w, 3)) {
    case 0: {
        if (size == 0) size = 1; /* realloc(p, 0) frees: a free, above */
        unsigned char *q = realloc(b->p, size);
        if (!q) fail(w, "realloc failed", b);
        *b = (block){q, size, 1, 0, old.tag};
        check_block(w, b);
        break;
    }
    case 1: {
        size_t align = below(w, 2) ? rand_align(w) : 1;
        int zero = below(w, 3) == 0;
        int flags = MALLOCX_LG_ALIGN(lg(align)) | (zero ? MALLOCX_ZERO : 0);
        unsigned char *q = rallocx(b->p, size, flags);
        if (!q) fail(w, "rallocx failed", b);
        *b = (block){q, size, align, align > 1, old.tag};
        check_block(w, b);
        /* The grown part (beyond the old usable size) reads as zero. */
        if (zero && size > old_usable) check_zero(w, b, old_usable);
        break;
    }
    default: {
        size_t extra = below(w, 2) ? rand_size(w) : 0;
        size_t got = xallocx(b->p, size, extra, MALLOCX_LG_ALIGN(lg(b->align)));
        if (got != malloc_usable_size(b->p)) fail(w, "xallocx result != usable size", b);
        if (got < (size < old_usable ? size : old_usable)) fail(w, "xallocx lost the size", b);
        /* Its usable size is now the size to free it with. */
        b->size = got;
        break;
    }
    }
    /* The common prefix is kept (positions of the old block, read at the
     * new address). */
    size_t keep = old.size < b->size ? old.size : b->size;
    FOR_POSITIONS(old.size, i, {
        if (i < keep && b->p[i] != pattern(old.tag, i)) fail(w, "resize lost contents", b);
    });
    fill(b);
}

/* Hands block b to another thread (a random mailbox), or takes one. */
static void exchange(worker *w, block *b) {
    size_t m = below(w, MAILBOXES);
    pthread_mutex_lock(&mailbox_lock);
    if (b->p && !mailbox[m].p) {
        check_contents(w, b, b->size);
        mailbox[m] = *b;
        b->p = NULL;
    } else if (!b->p && mailbox[m].p) {
        *b = mailbox[m];
        mailbox[m].p = NULL;
    }
    pthread_mutex_unlock(&mailbox_lock);
    if (b->p) check_contents(w, b, b->size);
}

static void *run(void *arg) {
    worker *w = arg;
    for (w->op = 0; w->op < w->ops; w->op++) {
        block *b = &w->slot[below(w, SLOTS)];
        size_t r = below(w, 1000);
        if (r < 5) {
            mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
        } else if (r < 6) {
            mallctl("arena." "4096" ".purge", NULL, NULL, NULL, 0);
        } else if (r < 150) {
            exchange(w, b);
        } else if (!b->p) {
            alloc_into(w, b);
        } else if (r < 600) {
            free_block(w, b);
        } else if (r < 850) {
            resize_block(w, b);
        } else {
            check_contents(w, b, b->size);
            check_block(w, b);
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (w->slot[i].p) free_block(w, &w->slot[i]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: fuzz SEED OPS THREADS\n");
        return 2;
    }
    seed = strtoull(argv[1], NULL, 10);
    unsigned long ops = strtoul(argv[2], NULL, 10);
    int nthreads = atoi(argv[3]);
    if (nthreads < 1 || nthreads > 64) return 2;
    static worker workers[64];
    pthread_t tid[64];
    for (int t = 0; t < nthreads; t++) {
        workers[t].id = t;
        workers[t].rng = seed * 0x2545f4914f6cdd1dull + (uint64_t)t;
        workers[t].ops = ops;
        if (pthread_create(&tid[t], NULL, run, &workers[t]) != 0) fail(NULL, "pthread_create", NULL);
    }
    for (int t = 0; t < nthreads; t++) pthread_join(tid[t], NULL);
    worker last = {.id = -1};
    for (int m = 0; m < MAILBOXES; m++)
        if (mailbox[m].p) free_block(&last, &mailbox[m]);
    printf("fuzz ok (seed %llu, %lu operations x %d threads)\n", (unsigned long long)seed, ops,
           nthreads);
    return 0;
}
