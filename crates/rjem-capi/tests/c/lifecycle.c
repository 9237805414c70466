/* Allocation at the edges of a process's life under LD_PRELOAD: in a
 * constructor before main, from a dlopen'ed library, from threads created
 * before the first malloc of main, in fork()ed children of a threaded
 * process, and in thread-exit destructors that run after rjem's own. */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *early;
static int fails;
#define CHECK(c) do { if (!(c)) { fails++; fprintf(stderr, "FAIL %d: %s\n", __LINE__, #c); } } while (0)

__attribute__((constructor)) static void before_main(void) {
    early = malloc(100);
    strcpy(early, "constructor");
}

static pthread_key_t key1, key2;

/* Runs at thread exit; allocates and frees, possibly after rjem's own
 * destructor has flushed and disabled the thread's cache. Re-arms itself a
 * few times so it surely runs after rjem's. */
static void late_dtor(void *v) {
    long n = (long)v;
    for (int i = 0; i < 100; i++) {
        void *p = malloc(16 + i * 37);
        memset(p, 1, 16 + i * 37);
        free(p);
    }
    if (n < 3) pthread_setspecific(key2, (void *)(n + 1));
}

static void *worker(void *arg) {
    pthread_setspecific(key1, (void *)1);
    pthread_setspecific(key2, (void *)1);
    char **v = malloc(1000 * sizeof *v);
    for (int i = 0; i < 1000; i++) v[i] = strdup("thread data");
    for (int i = 0; i < 1000; i++) free(v[i]);
    free(v);
    return arg;
}

static volatile int stop;
static void *spinner(void *arg) {
    while (!stop) { void *p = malloc(64 + ((long)arg & 1023)); free(p); }
    return NULL;
}

int main(void) {
    CHECK(early && strcmp(early, "constructor") == 0 && malloc_usable_size(early) == 112);
    free(early);

    pthread_key_create(&key1, late_dtor);
    pthread_key_create(&key2, late_dtor);
    for (int round = 0; round < 50; round++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
        pthread_join(t, NULL);
    }

    void *h = dlopen("libm.so.6", RTLD_NOW);
    CHECK(h != NULL);
    double (*cosf_)(double) = (double (*)(double))dlsym(h, "cos");
    CHECK(cosf_ && cosf_(0.0) == 1.0);
    dlclose(h);

    pthread_t spin[3];
    for (long i = 0; i < 3; i++) pthread_create(&spin[i], NULL, spinner, (void *)i);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *s = malloc(1 << 20);
            memset(s, 2, 1 << 20);
            for (int k = 0; k < 10000; k++) free(malloc(k % 5000 + 1));
            pthread_t t;
            pthread_create(&t, NULL, worker, NULL);
            pthread_join(t, NULL);
            free(s);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(spin[i], NULL);
    printf("lifecycle %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
