/* The purger thread is created on an allocation, never on a free. glibc
 * calls free with its own locks held: it frees an exited thread's
 * thread-local tables under its stack-cache lock, which pthread_create
 * takes, and a free that created the purger there hung larson.
 *
 * Run with MALLOC_CONF=max_background_threads:0. With the purger allowed
 * only once 12 MiB are mapped, freeing them asks for it: the free must
 * leave it to the next allocation. Then detached threads with 16 MiB
 * stacks exit in waves (glibc frees their tables once more than 40 MiB of
 * stacks are cached). alarm() turns a hang into a failure. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);

static mallctl_t ctl(void) {
    mallctl_t mallctl = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) abort();
    return mallctl;
}

/* Purger threads running (rjem comes in through LD_PRELOAD). */
static size_t purgers(void) {
    size_t n = 99, sz = sizeof n;
    if (ctl()("stats.background_thread.num_threads", &n, &sz, NULL, 0)) abort();
    return n;
}

static void *worker(void *arg) {
    (void)arg;
    void *v[512];
    for (int i = 0; i < 512; i++) {
        v[i] = malloc(1024 + (i % 7) * 128);
        if (!v[i]) abort();
        memset(v[i], i, 64);
    }
    for (int i = 0; i < 512; i++) free(v[i]);
    return NULL;
}

int main(void) {
    alarm(60);
    int fails = 0;
    if (purgers() != 0) {
        fprintf(stderr, "FAIL: a purger before anything was freed\n");
        fails++;
    }
    /* 12 MiB mapped while no purger is allowed; then it is, and freeing
     * them (under the dirty floor, so they stay dirty) asks for it. */
    void *a = malloc(6 << 20), *b = malloc(6 << 20);
    if (!a || !b) abort();
    memset(a, 1, 6 << 20);
    memset(b, 2, 6 << 20);
    size_t one = 1;
    if (ctl()("max_background_threads", NULL, NULL, &one, sizeof one)) abort();
    free(a);
    free(b);
    if (purgers() != 0) {
        fprintf(stderr, "FAIL: a free created the purger thread\n");
        fails++;
    }
    /* A large allocation takes the slow path, which starts it. */
    void *c = malloc(64 << 10);
    if (!c) abort();
    if (purgers() != 1) {
        fprintf(stderr, "FAIL: the allocation after the frees did not start the purger\n");
        fails++;
    }
    free(c);

    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 16 << 20);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int round = 0; round < 100; round++) {
        for (int k = 0; k < 4; k++) {
            pthread_t t;
            if (pthread_create(&t, &at, worker, NULL)) abort();
        }
        usleep(2000);
    }
    usleep(100000);
    printf("thread exit %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
