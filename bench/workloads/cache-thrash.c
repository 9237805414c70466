/* cache-thrash: active false sharing, after Hoard's cache-thrash benchmark
 * (Berger et al., ASPLOS 2000).
 *
 *   cache-thrash THREADS ITERATIONS WRITES [SIZE]
 *
 * Each of THREADS threads, ITERATIONS times, allocates a small object
 * (SIZE bytes, default 8), writes to it WRITES times and frees it. Nothing
 * is shared by the program; an allocator that gives concurrent threads
 * objects on the same cache line makes them fight over it (active false
 * sharing). Each object's final contents are checked.
 */
#include "common.h"

static long iterations, writes, size;

static void *worker(void *arg) {
    (void)arg;
    scribble_rounds(iterations, writes, size, "cache-thrash");
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_long(argc, argv, 1, 2);
    iterations = arg_long(argc, argv, 2, 1000);
    writes = arg_long(argc, argv, 3, 10000);
    size = arg_long(argc, argv, 4, 8);
    pthread_t *t = xmalloc(sizeof *t * threads);
    for (int i = 0; i < threads; i++) start_thread(&t[i], worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    free(t);
    printf("cache-thrash ok: %d threads x %ld objects x %ld writes\n", threads, iterations,
           writes);
    return 0;
}
