/* fastpath: the allocator's hot paths, for instruction counting with
 * callgrind (`rjem bench --instructions`). Run it with N = 0 and N = 10^6
 * and divide the difference in instructions by N.
 *
 *   fastpath pair N     N times: p = malloc(32); one volatile write; free(p)
 *   fastpath batch N    N mallocs of 32 bytes in batches of 1000; each batch
 *                       is then freed by the same thread
 *   fastpath batches N  the same with batches of 1000 to 1099 blocks (the
 *                       size steps by 37 modulo 100), so that where a thread
 *                       cache's stack stands when a batch turns from
 *                       allocating to freeing varies: `batch`'s fixed size
 *                       meets a cache's fill and flush sizes at one phase
 *   fastpath remote N   the same batches, freed by a second thread: one
 *                       thread allocates a batch and hands it over, the
 *                       other frees it, strictly alternating
 *
 * The second thread of `remote` exists for N = 0 too, so only the loop is
 * counted; the hand-over costs two semaphore operations per batch (a
 * fraction of an instruction per block).
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 1000
#define BATCH_MAX 1099

static void *batch[BATCH_MAX];
static long batches;
static sem_t full, empty;

static void *freer(void *arg) {
    (void)arg;
    for (long b = 0; b < batches; b++) {
        sem_wait(&full);
        for (int i = 0; i < BATCH; i++) free(batch[i]);
        sem_post(&empty);
    }
    return NULL;
}

static void fill_batch(void) {
    for (int i = 0; i < BATCH; i++) {
        batch[i] = malloc(32);
        if (!batch[i]) abort();
        *(volatile char *)batch[i] = 1;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fastpath pair|batch|batches|remote N\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (strcmp(argv[1], "pair") == 0) {
        for (long i = 0; i < n; i++) {
            void *p = malloc(32);
            if (!p) abort();
            *(volatile char *)p = 1;
            free(p);
        }
    } else if (strcmp(argv[1], "batch") == 0) {
        for (long b = 0; b < n / BATCH; b++) {
            fill_batch();
            for (int i = 0; i < BATCH; i++) free(batch[i]);
        }
    } else if (strcmp(argv[1], "batches") == 0) {
        for (long done = 0, b = 0; done < n; b++) {
            long size = BATCH + (b * 37) % 100;
            if (size > n - done) size = n - done;
            for (long i = 0; i < size; i++) {
                batch[i] = malloc(32);
                if (!batch[i]) abort();
                *(volatile char *)batch[i] = 1;
            }
            for (long i = 0; i < size; i++) free(batch[i]);
            done += size;
        }
    } else if (strcmp(argv[1], "remote") == 0) {
        batches = n / BATCH;
        sem_init(&full, 0, 0);
        sem_init(&empty, 0, 0);
        pthread_t t;
        if (pthread_create(&t, NULL, freer, NULL)) abort();
        for (long b = 0; b < batches; b++) {
            fill_batch();
            sem_post(&full);
            sem_wait(&empty);
        }
        pthread_join(t, NULL);
    } else {
        fprintf(stderr, "fastpath: unknown mode %s\n", argv[1]);
        return 2;
    }
    return 0;
}
