/* larson: a server simulation, after Larson & Krishnan, "Memory allocation
 * for long-running server applications" (ISMM 1998).
 *
 *   larson THREADS SLOTS OPS GENERATIONS [MIN MAX]
 *
 * Each of THREADS workers owns an array of SLOTS blocks of random sizes in
 * [MIN, MAX] bytes (default 8..1000). A worker repeatedly picks a random
 * slot, frees its block and allocates a new one of a random size (OPS
 * times); then it hands its whole array to a freshly created thread and
 * exits, like a server whose connection moves to another thread. After
 * GENERATIONS hand-overs the chain ends. The blocks a thread inherited were
 * allocated by its predecessor (and the first ones by the main thread), so
 * many frees are cross-thread, and threads come and go all the time.
 * Every block carries a tag that is checked before it is freed.
 */
#include "common.h"

struct chain {
    void **blk;
    uint32_t *size;
    long slots, ops;
    int gen, gens;
    uint64_t seed, done_ops, checksum;
};

static long min_size = 8, max_size = 1000;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int chains_left;

static uint64_t tag_of(long slot, uint32_t size) {
    return ((uint64_t)slot * 0x9e3779b97f4a7c15ull) ^ size;
}

static void *worker(void *arg) {
    struct chain *c = arg;
    for (long i = 0; i < c->ops; i++) {
        long k = (long)rng_below(&c->seed, c->slots);
        if (!stamp_ok(c->blk[k], c->size[k], tag_of(k, c->size[k])))
            fail("larson: block in slot %ld corrupted", k);
        c->checksum += c->size[k];
        free(c->blk[k]);
        uint32_t n = (uint32_t)(min_size + rng_below(&c->seed, max_size - min_size + 1));
        c->blk[k] = xmalloc(n);
        c->size[k] = n;
        stamp(c->blk[k], n, tag_of(k, n));
    }
    c->done_ops += c->ops;
    if (++c->gen < c->gens) {
        /* Hand the blocks to a new thread and exit. */
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, c)) fail("larson: pthread_create");
        pthread_attr_destroy(&a);
    } else {
        pthread_mutex_lock(&lock);
        chains_left--;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_long(argc, argv, 1, 4);
    long slots = arg_long(argc, argv, 2, 1000);
    long ops = arg_long(argc, argv, 3, 10000);
    int gens = (int)arg_long(argc, argv, 4, 10);
    min_size = arg_long(argc, argv, 5, 8);
    max_size = arg_long(argc, argv, 6, 1000);
    if (max_size < min_size) fail("larson: MAX < MIN");

    struct chain *c = xmalloc(sizeof *c * threads);
    uint64_t seed = 4141;
    for (int t = 0; t < threads; t++) {
        c[t] = (struct chain){xmalloc(sizeof(void *) * slots), xmalloc(sizeof(uint32_t) * slots),
                              slots, ops, 0, gens, rng_next(&seed), 0, 0};
        for (long k = 0; k < slots; k++) {
            uint32_t n = (uint32_t)(min_size + rng_below(&seed, max_size - min_size + 1));
            c[t].blk[k] = xmalloc(n);
            c[t].size[k] = n;
            stamp(c[t].blk[k], n, tag_of(k, n));
        }
    }
    chains_left = threads;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (int t = 0; t < threads; t++) {
        pthread_t id;
        if (pthread_create(&id, &a, worker, &c[t])) fail("larson: pthread_create");
    }
    pthread_mutex_lock(&lock);
    while (chains_left > 0) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);

    uint64_t total = 0, sum = 0;
    for (int t = 0; t < threads; t++) {
        for (long k = 0; k < slots; k++) {
            if (!stamp_ok(c[t].blk[k], c[t].size[k], tag_of(k, c[t].size[k])))
                fail("larson: block in slot %ld corrupted at the end", k);
            free(c[t].blk[k]);
        }
        if (c[t].done_ops != (uint64_t)ops * gens) fail("larson: chain %d did %llu ops", t,
                                                       (unsigned long long)c[t].done_ops);
        total += c[t].done_ops;
        sum += c[t].checksum;
        free(c[t].blk);
        free(c[t].size);
    }
    free(c);
    printf("larson ok: %d threads x %d generations, %llu replacements, checksum %llu\n", threads,
           gens, (unsigned long long)total, (unsigned long long)sum);
    return 0;
}
