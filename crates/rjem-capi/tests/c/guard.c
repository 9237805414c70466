/* Guard pages (san_guard_small, san_guard_large). argv[1]:
 *   "overflow small|large right|left": one byte past the end (or before
 *     the start) of a block whose slab or extent is guarded (the test sets
 *     N = 1): must die with SIGSEGV; prints "survived" otherwise.
 *   "pattern small|large K": allocates K blocks that each take a new slab
 *     (4 KiB blocks, one per slab, bypassing the cache) or a new large
 *     extent (64 KiB, above tcache_max), and prints one letter per block:
 *     G if inaccessible pages lie on both sides of it, . otherwise. The
 *     mappings are read from /proc/self/maps without allocating, so that
 *     no other slab counts in between. */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char maps[1 << 22];

/* Whether the page holding address a is mapped without any access. */
static int inaccessible(uintptr_t a) {
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd, maps + n, sizeof(maps) - 1 - n)) > 0) n += (size_t)r;
    close(fd);
    maps[n] = 0;
    for (char *l = maps; *l; l = strchr(l, '\n') + 1) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(l, "%lx-%lx %4s", &lo, &hi, perms) == 3 && lo <= a && a < hi)
            return strcmp(perms, "---p") == 0;
        if (!strchr(l, '\n')) break;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) return puts("usage: overflow|pattern small|large ..."), 2;
    int small = strcmp(argv[2], "small") == 0;
    void *(*mallocx)(size_t, int) = (void *(*)(size_t, int))dlsym(RTLD_DEFAULT, "mallocx");
    if (!mallocx) return puts("no mallocx"), 1;
    /* 4 KiB: one region per slab; MALLOCX_TCACHE_NONE: one at a time. */
    size_t size = small ? 4096 : 64 << 10;
    int flags = small ? (1 << 8) : 0;
    if (strcmp(argv[1], "overflow") == 0) {
        volatile char *p = mallocx(size, flags);
        size_t u = malloc_usable_size((void *)p);
        if (strcmp(argv[3], "right") == 0)
            p[u] = 1;
        else
            p[-1] = 1;
        puts("survived");
        return 0;
    }
    int k = atoi(argv[3]);
    char out[1024];
    for (int i = 0; i < k && i < 1023; i++) {
        char *p = mallocx(size, flags);
        size_t u = malloc_usable_size(p);
        uintptr_t a = (uintptr_t)p;
        out[i] = inaccessible(a - 1) && inaccessible(a + u) ? 'G' : '.';
        out[i + 1] = 0;
    }
    puts(out);
    return 0;
}
