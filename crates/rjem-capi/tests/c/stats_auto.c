/* Statistics printed without being asked (stats_print, stats_interval):
 * a plain program, run with librjem preloaded. It checks the options read
 * back as set, allocates about argv[1] MiB in small and large blocks (all
 * freed), and exits through exit(), which runs the exit report. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 1;
    /* Found through the preloaded library (the program is not linked to
     * it, so it also runs, and prints nothing, without it). */
    mallctl_t mallctl = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
    if (mallctl != NULL) {
        int64_t interval = 0;
        size_t len = sizeof(interval);
        if (mallctl("opt.stats_interval", &interval, &len, NULL, 0) != 0) return 2;
        printf("stats_interval %lld\n", (long long)interval);
    }
    size_t total = 0;
    unsigned char *keep[64] = {0};
    for (int i = 0; total < (size_t)mib << 20; i++) {
        size_t n = i % 8 == 0 ? 100000 : 24 + (size_t)(i * 37) % 4000;
        unsigned char *p = malloc(n);
        if (p == NULL) return 3;
        memset(p, (int)i, n);
        total += n;
        free(keep[i % 64]);
        keep[i % 64] = p;
    }
    for (int i = 0; i < 64; i++) free(keep[i]);
    printf("allocated %zu\n", total);
    exit(0);
}
