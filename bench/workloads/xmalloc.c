/* xmalloc: producer/consumer, in the style of xmalloc-test (Lever & Boreham,
 * "malloc() Performance in a Multithreaded Linux Environment", 2000).
 *
 *   xmalloc PRODUCERS CONSUMERS BLOCKS [MAXSIZE] [BATCH]
 *
 * PRODUCERS threads allocate BLOCKS blocks in total, of random sizes in
 * [8, MAXSIZE] (default 128), in batches of BATCH (default 256) that go
 * through a bounded queue to CONSUMERS threads, which check and free them.
 * Every free happens on a different thread than its malloc. Producers sum
 * the tags they write, consumers the tags they read; the sums must agree.
 */
#include "common.h"

#define QCAP 32

struct batch {
    int n;
    uint32_t size[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static void **queue[QCAP];
static int head, count, producers_left;
static long blocks_per_producer, max_size, batch_len;

static void push(void **b) {
    pthread_mutex_lock(&lock);
    while (count == QCAP) pthread_cond_wait(&not_full, &lock);
    queue[(head + count++) % QCAP] = b;
    pthread_cond_signal(&not_empty);
    pthread_mutex_unlock(&lock);
}

/* NULL when the producers are done and the queue is empty. */
static void **pop(void) {
    pthread_mutex_lock(&lock);
    while (count == 0 && producers_left > 0) pthread_cond_wait(&not_empty, &lock);
    void **b = NULL;
    if (count > 0) {
        b = queue[head];
        head = (head + 1) % QCAP;
        count--;
        pthread_cond_signal(&not_full);
    }
    pthread_mutex_unlock(&lock);
    return b;
}

/* A batch is an array of block pointers whose slot 0 holds the count and
 * sizes (a struct batch), all malloc'ed by the producer. */
static void *producer(void *arg) {
    uint64_t seed = (uintptr_t)arg * 7919 + 1, sum = 0;
    long left = blocks_per_producer;
    while (left > 0) {
        int n = (int)(left < batch_len ? left : batch_len);
        void **b = xmalloc(sizeof(void *) * (n + 1));
        struct batch *meta = xmalloc(sizeof *meta + sizeof(uint32_t) * n);
        meta->n = n;
        b[0] = meta;
        for (int i = 0; i < n; i++) {
            uint32_t sz = (uint32_t)(8 + rng_below(&seed, max_size - 7));
            uint64_t tag = rng_next(&seed);
            b[i + 1] = xmalloc(sz);
            meta->size[i] = sz;
            stamp(b[i + 1], sz, tag);
            sum += tag & 0xffffffff;
        }
        left -= n;
        push(b);
    }
    pthread_mutex_lock(&lock);
    if (--producers_left == 0) pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&lock);
    return (void *)(uintptr_t)sum;
}

static void *consumer(void *arg) {
    (void)arg;
    uint64_t sum = 0, n_blocks = 0;
    void **b;
    while ((b = pop()) != NULL) {
        struct batch *meta = b[0];
        for (int i = 0; i < meta->n; i++) {
            uint64_t tag = 0;
            memcpy(&tag, b[i + 1], 8);
            if (!stamp_ok(b[i + 1], meta->size[i], tag)) fail("xmalloc: block corrupted");
            sum += tag & 0xffffffff;
            free(b[i + 1]);
        }
        n_blocks += meta->n;
        free(meta);
        free(b);
    }
    uint64_t *r = xmalloc(2 * sizeof *r);
    r[0] = sum;
    r[1] = n_blocks;
    return r;
}

int main(int argc, char **argv) {
    int np = (int)arg_long(argc, argv, 1, 2);
    int nc = (int)arg_long(argc, argv, 2, 2);
    long blocks = arg_long(argc, argv, 3, 1000000);
    max_size = arg_long(argc, argv, 4, 128);
    batch_len = arg_long(argc, argv, 5, 256);
    if (max_size < 8) fail("xmalloc: MAXSIZE must be at least 8");
    blocks_per_producer = blocks / np;
    producers_left = np;
    pthread_t *t = xmalloc(sizeof *t * (np + nc));
    for (int i = 0; i < nc; i++) start_thread(&t[np + i], consumer, NULL);
    for (int i = 0; i < np; i++) start_thread(&t[i], producer, (void *)(uintptr_t)i);
    uint64_t made = 0, seen = 0, freed = 0;
    for (int i = 0; i < np + nc; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (i < np) {
            made += (uintptr_t)r;
        } else {
            seen += ((uint64_t *)r)[0];
            freed += ((uint64_t *)r)[1];
            free(r);
        }
    }
    free(t);
    if (made != seen || freed != (uint64_t)blocks_per_producer * np)
        fail("xmalloc: produced sum %llu, consumed %llu over %llu blocks",
             (unsigned long long)made, (unsigned long long)seen, (unsigned long long)freed);
    printf("xmalloc ok: %d producers, %d consumers, %llu blocks freed cross-thread\n", np, nc,
           (unsigned long long)freed);
    return 0;
}
