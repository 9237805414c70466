/* threadtest: after Hoard's threadtest benchmark (Berger et al., ASPLOS
 * 2000).
 *
 *   threadtest THREADS ITERATIONS OBJECTS [SIZE]
 *
 * Each of THREADS threads runs ITERATIONS rounds; a round allocates a batch
 * of OBJECTS / THREADS objects of SIZE bytes (default 8), writes each, then
 * checks and frees them all. No object leaves its thread: this measures
 * the allocator's scalability when threads do not share anything.
 */
#include "common.h"

static long iterations, per_thread, size;

static void *worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    char **objs = xmalloc(sizeof(char *) * per_thread);
    uint64_t sum = 0;
    for (long it = 0; it < iterations; it++) {
        for (long i = 0; i < per_thread; i++) {
            objs[i] = xmalloc(size);
            stamp(objs[i], size, (uint64_t)i ^ id << 40);
        }
        for (long i = 0; i < per_thread; i++) {
            if (!stamp_ok(objs[i], size, (uint64_t)i ^ id << 40))
                fail("threadtest: object %ld of thread %lu corrupted", i, (unsigned long)id);
            sum += (unsigned char)objs[i][0];
            free(objs[i]);
        }
    }
    free(objs);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv) {
    int threads = (int)arg_long(argc, argv, 1, 4);
    iterations = arg_long(argc, argv, 2, 100);
    long objects = arg_long(argc, argv, 3, 100000);
    size = arg_long(argc, argv, 4, 8);
    per_thread = objects / threads;
    if (per_thread < 1) fail("threadtest: fewer objects than threads");
    pthread_t *t = xmalloc(sizeof *t * threads);
    for (int i = 0; i < threads; i++) start_thread(&t[i], worker, (void *)(uintptr_t)i);
    uint64_t sum = 0, expect = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (uintptr_t)r;
        for (long k = 0; k < per_thread; k++) expect += (unsigned char)(k & 0xff);
    }
    expect *= iterations;
    free(t);
    if (sum != expect) fail("threadtest: checksum %llu, expected %llu", (unsigned long long)sum,
                            (unsigned long long)expect);
    printf("threadtest ok: %d threads x %ld rounds of %ld objects of %ld bytes\n", threads,
           iterations, per_thread, size);
    return 0;
}
