/* thread-churn: threads created and destroyed by the thousand, checking
 * that memory does not leak (in the style of mleak, as run in
 * mimalloc-bench).
 *
 *   thread-churn THREADS [CONCURRENT] [ALLOCS]
 *
 * Starts THREADS threads in waves of CONCURRENT (default 8). Each thread
 * allocates ALLOCS blocks (default 500; 8 bytes to 4 KiB, one in 32 up to
 * 64 KiB), frees three quarters of them and hands the rest to the main
 * thread, which frees them after the wave (cross-thread, after the
 * allocating thread has exited). Check: once the first tenth of the waves
 * has warmed the allocator up, the resident set may not grow by more than
 * 32 MiB over the rest of the run: a per-thread leak of even a few KiB
 * (an unflushed thread cache, an arena nobody reuses) fails it.
 */
#include "common.h"

#define LEAK_LIMIT_KIB (32 * 1024)

static long allocs;

struct handoff {
    void **p;
    uint32_t *size;
    long n;
};

static void *worker(void *arg) {
    uint64_t seed = (uintptr_t)arg * 2654435761u + 1;
    struct handoff *h = xmalloc(sizeof *h);
    void **p = xmalloc(sizeof *p * allocs);
    uint32_t *size = xmalloc(sizeof *size * allocs);
    for (long i = 0; i < allocs; i++) {
        size[i] = (uint32_t)(rng_below(&seed, 32) ? 8 + rng_below(&seed, 4089)
                                                  : 8 + rng_below(&seed, 65529));
        p[i] = xmalloc(size[i]);
        stamp(p[i], size[i], (uint64_t)i * size[i]);
    }
    /* Free three quarters at random; compact the survivors to the front. */
    long kept = 0;
    for (long i = 0; i < allocs; i++) {
        if (!stamp_ok(p[i], size[i], (uint64_t)i * size[i])) fail("thread-churn: block corrupted");
        if (rng_below(&seed, 4) == 0) {
            stamp(p[i], size[i], (uint64_t)kept * size[i]);
            p[kept] = p[i];
            size[kept++] = size[i];
        } else {
            free(p[i]);
        }
    }
    *h = (struct handoff){p, size, kept};
    return h;
}

int main(int argc, char **argv) {
    long threads = arg_long(argc, argv, 1, 2000);
    long concurrent = arg_long(argc, argv, 2, 8);
    allocs = arg_long(argc, argv, 3, 500);
    long waves = (threads + concurrent - 1) / concurrent, warm = waves / 10 + 1;
    pthread_t *t = xmalloc(sizeof *t * concurrent);
    long started = 0, handed = 0, rss_warm = 0, rss_max = 0;
    for (long w = 0; w < waves; w++) {
        long n = threads - started < concurrent ? threads - started : concurrent;
        for (long i = 0; i < n; i++) start_thread(&t[i], worker, (void *)(uintptr_t)(started + i));
        for (long i = 0; i < n; i++) {
            struct handoff *h;
            pthread_join(t[i], (void **)&h);
            for (long k = 0; k < h->n; k++) {
                if (!stamp_ok(h->p[k], h->size[k], (uint64_t)k * h->size[k]))
                    fail("thread-churn: handed-off block corrupted");
                free(h->p[k]);
            }
            handed += h->n;
            free(h->p);
            free(h->size);
            free(h);
        }
        started += n;
        long rss = rss_kib();
        if (w + 1 == warm) rss_warm = rss;
        if (w + 1 >= warm && rss > rss_max) rss_max = rss;
    }
    free(t);
    if (rss_max - rss_warm > LEAK_LIMIT_KIB)
        fail("thread-churn: RSS grew from %ld KiB to %ld KiB after warm-up: memory leaks with "
             "thread exits",
             rss_warm, rss_max);
    printf("thread-churn ok: %ld threads, %ld blocks freed after their thread exited, RSS %ld KiB "
           "after warm-up, at most %ld KiB later\n",
           started, handed, rss_warm, rss_max);
    return 0;
}
