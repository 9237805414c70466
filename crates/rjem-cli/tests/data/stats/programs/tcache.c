/* Thread caches holding much memory: with tcache_max:1048576, 8 threads
 * each allocate and free 20 blocks of several large sizes (they stay in
 * the threads' caches), then block; the process exits while they wait. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
enum { T = 8, PER = 20 };
static pthread_barrier_t done;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static void *work(void *arg) {
    (void)arg;
    static const size_t sizes[] = {40 << 10, 80 << 10, 160 << 10, 320 << 10, 640 << 10};
    for (unsigned s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        void *p[PER];
        for (int i = 0; i < PER; i++) {
            p[i] = malloc(sizes[s]);
            memset(p[i], 1, 4096);
        }
        for (int i = 0; i < PER; i++)
            free(p[i]);
    }
    pthread_barrier_wait(&done);
    pthread_mutex_lock(&m);
    for (;;)
        pthread_cond_wait(&never, &m);
    return NULL;
}
int main(void) {
    pthread_t th[T];
    pthread_barrier_init(&done, NULL, T + 1);
    void *live = malloc(8 << 20);
    memset(live, 1, 8 << 20);
    for (int t = 0; t < T; t++)
        pthread_create(&th[t], NULL, work, NULL);
    pthread_barrier_wait(&done);
    exit(0);
}
