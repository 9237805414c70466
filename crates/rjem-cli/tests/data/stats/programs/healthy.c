/* Healthy: about 40 MiB of live objects of mixed sizes, kept to the end;
 * nothing large freed, one thread. No diagnosis should fire. */
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 400000 };
    void **p = malloc(N * sizeof *p);
    unsigned x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        size_t sz = 16 + (x >> 8) % 180;
        p[i] = malloc(sz);
        memset(p[i], 1, sz);
    }
    /* Churn that reuses what it frees. */
    for (int r = 0; r < 4; r++)
        for (int i = r; i < N; i += 64) {
            size_t sz = 16 + (i * 7) % 180;
            free(p[i]);
            p[i] = malloc(sz);
            memset(p[i], 2, sz);
        }
    return p[N / 2] == NULL;
}
