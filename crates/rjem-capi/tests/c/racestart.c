/* The first allocations of the process's threads race: main allocates
 * nothing before starting 8 threads that pass a barrier and then allocate
 * at once; the library loads a dlopen()ed plugin that allocates. */
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_barrier_t bar;
static long sums[8];

static void *racer(void *arg) {
    long id = (long)arg, s = 0;
    pthread_barrier_wait(&bar);
    for (int i = 0; i < 20000; i++) {
        unsigned char *p = malloc(1 + (i * 13 + id) % 3000);
        p[0] = (unsigned char)i;
        s += p[0];
        free(p);
    }
    sums[id] = s;
    return NULL;
}

int main(int argc, char **argv) {
    pthread_t t[8];
    pthread_barrier_init(&bar, NULL, 8);
    for (long i = 0; i < 8; i++) pthread_create(&t[i], NULL, racer, (void *)i);
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    for (int i = 1; i < 8; i++) if (sums[i] != sums[0]) { puts("racestart FAILED: sums"); return 1; }

    if (argc < 2) { puts("racestart FAILED: no plugin path"); return 1; }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("racestart FAILED: %s\n", dlerror()); return 1; }
    char *(*work)(int) = (char *(*)(int))dlsym(h, "plugin_work");
    const char *(*state)(void) = (const char *(*)(void))dlsym(h, "plugin_state");
    char *last = work(5000);
    int ok = strcmp(state(), "plugin") == 0 && malloc_usable_size(last) >= 16;
    free(last);
    dlclose(h);
    puts(ok ? "racestart ok" : "racestart FAILED: plugin");
    return !ok;
}
