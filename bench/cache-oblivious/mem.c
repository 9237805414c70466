// Memory cost of cache_oblivious: RSS growth of n blocks of one size,
// written fully (touch 1) or at their start only (touch 0).
// Usage: mem N SIZE [TOUCH]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static long rss_kb(void) { FILE *f = fopen("/proc/self/status", "r"); char l[256]; long v = -1;
  while (fgets(l, sizeof l, f)) if (!strncmp(l, "VmRSS:", 6)) { v = atol(l + 6); break; } fclose(f); return v; }
int main(int argc, char **argv) {
    size_t n = atol(argv[1]), size = atol(argv[2]); int touch = argc > 3 ? atoi(argv[3]) : 1;
    long before = rss_kb();
    char **b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) { b[i] = malloc(size); if (touch) memset(b[i], 1, size); else b[i][0] = 1; }
    long after = rss_kb();
    printf("n=%zu size=%zu touch=%d rss +%ld KiB (%.3f x the bytes)\n", n, size, touch, after - before, (after - before) * 1024.0 / (n * size));
    return 0;
}
