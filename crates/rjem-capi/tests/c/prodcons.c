/* Multi-threaded producer/consumer: producers allocate blocks of assorted
 * sizes filled with a pattern derived from address and size; consumers on
 * other threads check the pattern and free them (every free is remote). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 200000
#define QCAP 4096

struct block { unsigned char *p; size_t n; };
static struct block q[QCAP];
static size_t head, tail;
static int done_producers;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static long bad;

static unsigned char pat(uintptr_t a, size_t n, size_t i) {
    uint64_t x = a ^ (n << 17) ^ (i * 0x9e3779b97f4a7c15ull);
    return (unsigned char)(x ^ (x >> 29));
}

static void *producer(void *arg) {
    uint64_t r = (uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < PER_PRODUCER; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        size_t n = (r % 100 < 90) ? 1 + r % 512 : 1 + r % 70000;
        unsigned char *p = malloc(n);
        for (size_t k = 0; k < n; k += (n > 4096 ? 97 : 1)) p[k] = pat((uintptr_t)p, n, k);
        pthread_mutex_lock(&mu);
        while (tail - head == QCAP) pthread_cond_wait(&not_full, &mu);
        q[tail++ % QCAP] = (struct block){p, n};
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&mu);
    }
    pthread_mutex_lock(&mu);
    done_producers++;
    pthread_cond_broadcast(&not_empty);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (tail == head && done_producers < PRODUCERS) pthread_cond_wait(&not_empty, &mu);
        if (tail == head) { pthread_mutex_unlock(&mu); return NULL; }
        struct block b = q[head++ % QCAP];
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&mu);
        for (size_t k = 0; k < b.n; k += (b.n > 4096 ? 97 : 1))
            if (b.p[k] != pat((uintptr_t)b.p, b.n, k)) { __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED); break; }
        free(b.p);
    }
}

int main(void) {
    pthread_t t[PRODUCERS + CONSUMERS];
    for (long i = 0; i < PRODUCERS; i++) pthread_create(&t[i], NULL, producer, (void *)(i + 1));
    for (long i = 0; i < CONSUMERS; i++) pthread_create(&t[PRODUCERS + i], NULL, consumer, NULL);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(t[i], NULL);
    printf("blocks %d corrupted %ld\n", PRODUCERS * PER_PRODUCER, bad);
    return bad != 0;
}
