/* Prints the options MALLOC_CONF parsing decides, read back with mallctl
 * (looked up at run time, so the same program runs on rjem and jemalloc):
 * narenas, tcache, tcache_max, dirty_decay_ms, stats_interval. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);

int main(void) {
    free(malloc(1)); /* start the allocator */
    mallctl_t mallctl = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
    if (!mallctl) {
        puts("no mallctl");
        return 1;
    }
    unsigned narenas = 0;
    bool tcache = false;
    size_t tcache_max = 0;
    ssize_t dirty = 0;
    int64_t interval = 0;
    size_t len;
    len = sizeof narenas;
    mallctl("opt.narenas", &narenas, &len, NULL, 0);
    len = sizeof tcache;
    mallctl("opt.tcache", &tcache, &len, NULL, 0);
    len = sizeof tcache_max;
    mallctl("opt.tcache_max", &tcache_max, &len, NULL, 0);
    len = sizeof dirty;
    mallctl("opt.dirty_decay_ms", &dirty, &len, NULL, 0);
    len = sizeof interval;
    mallctl("opt.stats_interval", &interval, &len, NULL, 0);
    printf("narenas %u tcache %d tcache_max %zu dirty_decay_ms %zd stats_interval %lld\n",
           narenas, (int)tcache, tcache_max, dirty, (long long)interval);
    return 0;
}
