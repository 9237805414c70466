/* Memory-return workloads for issue 5, run under any allocator with
 * LD_PRELOAD. Prints "key value" lines.
 *
 *   phases idle      Two threads allocate and touch ~1 GiB in mixed sizes,
 *                    free it all, make one more malloc/free, then sleep and
 *                    report RSS at 1, 5, 10 and 15 s after the free.
 *   phases grow      Grow to 1 GiB, shrink to 64 MiB, grow again: peak RSS
 *                    and RSS 1 s and 15 s after the shrink.
 *   phases churn16k  8 threads pass 16 KiB messages through a queue
 *                    (4 producers, 4 consumers): time and peak RSS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long rss_kib(void) {
    long pages = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) { if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0; fclose(f); }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

#define MAXB (1 << 20)
struct set { void **p; long n; size_t bytes; unsigned seed; };

static void *fill(void *arg) {
    struct set *s = arg;
    size_t target = s->bytes;
    s->bytes = 0;
    while (s->bytes < target && s->n < MAXB) {
        s->seed = s->seed * 1103515245u + 12345u;
        unsigned r = s->seed >> 8;
        size_t n = (r % 10 < 7) ? 16 + r % 2048 : 16384 + r % (1 << 20);
        char *p = malloc(n);
        memset(p, 1, n);
        s->p[s->n++] = p;
        s->bytes += n;
    }
    return NULL;
}

static void *drain(void *arg) {
    struct set *s = arg;
    for (long i = 0; i < s->n; i++) free(s->p[i]);
    s->n = 0;
    return NULL;
}

static void two_threads(void *(*f)(void *), struct set *a, struct set *b) {
    pthread_t t1, t2;
    pthread_create(&t1, NULL, f, a);
    pthread_create(&t2, NULL, f, b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
}

static void idle(void) {
    long base = rss_kib();
    struct set a = {malloc(MAXB * sizeof(void *)), 0, 512u << 20, 1};
    struct set b = {malloc(MAXB * sizeof(void *)), 0, 512u << 20, 2};
    two_threads(fill, &a, &b);
    printf("base_mib %.1f\npeak_mib %.1f\n", base / 1024.0, rss_kib() / 1024.0);
    two_threads(drain, &a, &b);
    free(malloc(100));
    printf("after_free_mib %.1f\n", rss_kib() / 1024.0);
    int marks[] = {1, 5, 10, 15};
    int slept = 0;
    for (int i = 0; i < 4; i++) {
        sleep(marks[i] - slept);
        slept = marks[i];
        printf("rss_%ds_mib %.1f\n", marks[i], rss_kib() / 1024.0);
    }
}

static void grow(void) {
    struct set a = {malloc(MAXB * sizeof(void *)), 0, 512u << 20, 3};
    struct set b = {malloc(MAXB * sizeof(void *)), 0, 512u << 20, 4};
    two_threads(fill, &a, &b);
    printf("peak1_mib %.1f\n", rss_kib() / 1024.0);
    /* shrink: keep about 1/16 of the blocks */
    for (long i = 0; i < a.n; i++) if (i % 16) { free(a.p[i]); a.p[i] = NULL; }
    for (long i = 0; i < b.n; i++) if (i % 16) { free(b.p[i]); b.p[i] = NULL; }
    sleep(1);
    printf("shrunk_1s_mib %.1f\n", rss_kib() / 1024.0);
    sleep(14);
    printf("shrunk_15s_mib %.1f\n", rss_kib() / 1024.0);
    for (long i = 0; i < a.n; i++) free(a.p[i]);
    for (long i = 0; i < b.n; i++) free(b.p[i]);
    a.n = b.n = 0;
    a.bytes = b.bytes = 512u << 20;
    two_threads(fill, &a, &b);
    printf("peak2_mib %.1f\n", rss_kib() / 1024.0);
}

/* churn16k: bounded queue of 16 KiB messages */
#define QCAP 256
static void *q[QCAP];
static long qh, qt, produced, consumed, total;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ne = PTHREAD_COND_INITIALIZER, nf = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        if (produced >= total) { pthread_mutex_unlock(&mu); return NULL; }
        produced++;
        pthread_mutex_unlock(&mu);
        char *m = malloc(16384);
        memset(m, 7, 16384);
        pthread_mutex_lock(&mu);
        while (qt - qh == QCAP) pthread_cond_wait(&nf, &mu);
        q[qt++ % QCAP] = m;
        pthread_cond_signal(&ne);
        pthread_mutex_unlock(&mu);
    }
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (qt == qh && consumed < total) pthread_cond_wait(&ne, &mu);
        if (consumed >= total) { pthread_cond_broadcast(&ne); pthread_mutex_unlock(&mu); return NULL; }
        char *m = q[qh++ % QCAP];
        consumed++;
        if (consumed >= total) pthread_cond_broadcast(&ne);
        pthread_cond_signal(&nf);
        pthread_mutex_unlock(&mu);
        if (m[100] != 7) abort();
        free(m);
    }
}

static void churn(long n) {
    total = n;
    double t0 = now();
    pthread_t t[8];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, producer, NULL);
    for (int i = 4; i < 8; i++) pthread_create(&t[i], NULL, consumer, NULL);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("messages %ld\nseconds %.3f\npeak_rss_mib %.1f\n", n, now() - t0, ru.ru_maxrss / 1024.0);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "idle";
    if (!strcmp(mode, "idle")) idle();
    else if (!strcmp(mode, "grow")) grow();
    else if (!strcmp(mode, "churn16k")) churn(argc > 2 ? atol(argv[2]) : 2000000);
    else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
    return 0;
}
