/* Too many arenas for the threads: 16 threads, all alive at once (so they
 * spread over the arenas), each keep 8 MiB of 64 KiB blocks and allocate
 * 3 MiB of 64-byte objects of which they free 3 in 4, then exit: the
 * arenas they used keep up to 36 MiB of free slots in slabs that only
 * threads bound to them could fill (under 25% of active, so the
 * fragmentation rule stays silent); one thread remains. Run with
 * narenas:16. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
enum { T = 16, BIG = 128, SMALL = 49152 };
static pthread_barrier_t bar;
static void *big[T][BIG];
static void *small[T][SMALL];
static void *work(void *arg) {
    long t = (long)arg;
    pthread_barrier_wait(&bar);
    for (int i = 0; i < BIG; i++) {
        big[t][i] = malloc(64 << 10);
        memset(big[t][i], 1, 64 << 10);
    }
    for (int i = 0; i < SMALL; i++) {
        small[t][i] = malloc(64);
        memset(small[t][i], 1, 64);
    }
    for (int i = 0; i < SMALL; i++)
        if (i % 4) {
            free(small[t][i]);
            small[t][i] = NULL;
        }
    return NULL;
}
int main(void) {
    pthread_t th[T];
    pthread_barrier_init(&bar, NULL, T);
    for (long t = 0; t < T; t++)
        pthread_create(&th[t], NULL, work, (void *)t);
    for (int t = 0; t < T; t++)
        pthread_join(th[t], NULL);
    return 0;
}
