// Many large blocks, each touched at the same offsets: with page-aligned
// blocks the touched lines share cache sets.
// Usage: alias N SIZE ITERATIONS LINES (docs/hardening.md, cache_oblivious).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
int main(int argc, char **argv) {
    size_t n = argc > 1 ? atol(argv[1]) : 512;
    size_t size = argc > 2 ? atol(argv[2]) : 32768;
    long iters = argc > 3 ? atol(argv[3]) : 20000;
    int lines = argc > 4 ? atoi(argv[4]) : 2;
    char **b = malloc(n * sizeof *b);
    for (size_t i = 0; i < n; i++) { b[i] = malloc(size); memset(b[i], (int)i, size); }
    size_t aligned = 0;
    for (size_t i = 0; i < n; i++) aligned += ((uintptr_t)b[i] & 4095) == 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t sum = 0;
    for (long it = 0; it < iters; it++)
        for (size_t i = 0; i < n; i++)
            for (int l = 0; l < lines; l++) {
                uint64_t *w = (uint64_t *)(b[i] + l * 64);
                sum += *w; *w = sum;
            }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("n=%zu size=%zu lines=%d page-aligned=%zu time=%.3f s (%.2f ns/access) sum=%llu\n", n, size, lines, aligned, s, s * 1e9 / (iters * n * lines), (unsigned long long)(sum & 1));
    return 0;
}
