/* alloc-test: a Pareto-distributed size mix up to 1 KiB with random
 * lifetimes, in the style of alloc-test (as run in mimalloc-bench).
 *
 *   alloc-test THREADS OPS [SLOTS]
 *
 * Each of THREADS threads performs OPS replacements. Sizes follow a Pareto
 * distribution (minimum 8 bytes, shape 1.1, truncated at 1024): most
 * requests are tiny, a long tail is large. Lifetimes are random: a
 * replacement picks a slot in a short-lived pool (64 slots, 80% of
 * operations) or a long-lived pool (SLOTS slots, default 20000, 20%),
 * frees what is there and puts a new block in. Blocks carry checked tags.
 */
#include "common.h"
#include <math.h>

#define SHORT_SLOTS 64
#define TABLE 65536

static long ops, long_slots;
static uint16_t size_table[TABLE];

/* Inverse CDF of the Pareto distribution, truncated to [8, 1024]. */
static void build_sizes(void) {
    const double xm = 8, alpha = 1.1;
    const double fmax = 1 - pow(xm / 1024, alpha);
    for (int i = 0; i < TABLE; i++) {
        double u = (i + 0.5) / TABLE * fmax;
        double x = xm / pow(1 - u, 1 / alpha);
        size_table[i] = (uint16_t)(x < 1024 ? x : 1024);
    }
}

struct slot {
    void *p;
    uint32_t size;
};

static void *worker(void *arg) {
    uint64_t seed = (uintptr_t)arg + 17, sum = 0;
    struct slot *pool = calloc(SHORT_SLOTS + long_slots, sizeof *pool);
    if (!pool) fail("alloc-test: calloc");
    for (long i = 0; i < ops; i++) {
        uint64_t r = rng_next(&seed);
        long k = (r & 1023) < 820 ? (long)((r >> 10) % SHORT_SLOTS)
                                  : SHORT_SLOTS + (long)((r >> 10) % long_slots);
        struct slot *s = &pool[k];
        if (s->p) {
            if (!stamp_ok(s->p, s->size, (uint64_t)k * 31 + s->size))
                fail("alloc-test: block in slot %ld corrupted", k);
            sum += s->size;
            free(s->p);
        }
        s->size = size_table[(r >> 40) % TABLE];
        s->p = xmalloc(s->size);
        stamp(s->p, s->size, (uint64_t)k * 31 + s->size);
    }
    for (long k = 0; k < SHORT_SLOTS + long_slots; k++) {
        if (!pool[k].p) continue;
        if (!stamp_ok(pool[k].p, pool[k].size, (uint64_t)k * 31 + pool[k].size))
            fail("alloc-test: block in slot %ld corrupted at the end", k);
        sum += pool[k].size;
        free(pool[k].p);
    }
    free(pool);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    int threads = (int)arg_long(argc, argv, 1, 2);
    ops = arg_long(argc, argv, 2, 1000000);
    long_slots = arg_long(argc, argv, 3, 20000);
    build_sizes();
    pthread_t *t = xmalloc(sizeof *t * threads);
    for (int i = 0; i < threads; i++) start_thread(&t[i], worker, (void *)(uintptr_t)i);
    uint64_t bytes = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        bytes += (uintptr_t)r;
    }
    free(t);
    /* Every block allocated was freed exactly once: the bytes freed equal
     * the bytes allocated, which the same seeds give on every allocator. */
    uint64_t expect = 0;
    for (int i = 0; i < threads; i++) {
        uint64_t seed = (uint64_t)i + 17;
        for (long k = 0; k < ops; k++) expect += size_table[(rng_next(&seed) >> 40) % TABLE];
    }
    if (bytes != expect) fail("alloc-test: freed %llu bytes, allocated %llu",
                              (unsigned long long)bytes, (unsigned long long)expect);
    printf("alloc-test ok: %d threads x %ld ops, %llu bytes allocated\n", threads, ops,
           (unsigned long long)bytes);
    return 0;
}
