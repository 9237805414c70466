/* Fragmentation in a few size classes: two million 64- and 96-byte
 * objects (a cache), then 15 of every 16 evicted: the survivors pin
 * nearly every slab. */
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 1000000 };
    void **a = malloc(N * sizeof *a), **b = malloc(N * sizeof *b);
    for (int i = 0; i < N; i++) {
        a[i] = malloc(64);
        memset(a[i], 1, 64);
        b[i] = malloc(96);
        memset(b[i], 1, 96);
    }
    for (int i = 0; i < N; i++)
        if (i % 16) {
            free(a[i]);
            free(b[i]);
        }
    return 0;
}
