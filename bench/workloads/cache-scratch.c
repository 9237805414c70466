/* cache-scratch: passive false sharing, after Hoard's cache-scratch
 * benchmark (Berger et al., ASPLOS 2000).
 *
 *   cache-scratch THREADS ITERATIONS WRITES [SIZE]
 *
 * The main thread allocates THREADS small objects (SIZE bytes, default 8)
 * back to back, so they likely share a cache line, and gives one to each
 * thread. Each thread frees its object, then ITERATIONS times allocates an
 * object of the same size, writes to it WRITES times and frees it. An
 * allocator that hands the freed object (or its neighbours) back to the
 * thread keeps the threads writing to one cache line: passive false
 * sharing. Each object's final contents are checked.
 */
#include "common.h"

static long iterations, writes, size;

static void *worker(void *arg) {
    free(arg);
    scribble_rounds(iterations, writes, size, "cache-scratch");
    return NULL;
}

int main(int argc, char **argv) {
    int threads = (int)arg_long(argc, argv, 1, 2);
    iterations = arg_long(argc, argv, 2, 1000);
    writes = arg_long(argc, argv, 3, 10000);
    size = arg_long(argc, argv, 4, 8);
    pthread_t *t = xmalloc(sizeof *t * threads);
    void **objs = xmalloc(sizeof *objs * threads);
    for (int i = 0; i < threads; i++) objs[i] = xmalloc(size);
    for (int i = 0; i < threads; i++) start_thread(&t[i], worker, objs[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    free(objs);
    free(t);
    printf("cache-scratch ok: %d threads x %ld objects x %ld writes\n", threads, iterations,
           writes);
    return 0;
}
