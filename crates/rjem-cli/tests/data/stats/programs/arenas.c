/* Too many arenas for the threads: 16 threads, all alive at once (so they
 * spread over 16 arenas), each leave 4 MiB allocated behind and exit; one
 * thread remains. Run with narenas:16. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
enum { T = 16, BLOCKS = 64 };
static pthread_barrier_t bar;
static void *keep[T][BLOCKS];
static void *work(void *arg) {
    long t = (long)arg;
    pthread_barrier_wait(&bar);
    for (int i = 0; i < BLOCKS; i++) {
        keep[t][i] = malloc(64 << 10);
        memset(keep[t][i], 1, 64 << 10);
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
