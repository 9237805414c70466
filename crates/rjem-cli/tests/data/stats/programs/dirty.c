/* Dirty memory not purged: 256 MiB in 1 MiB blocks, written, then freed;
 * the process then exits (idle) with the pages dirty. Run with
 * dirty_decay_ms:-1 (decay off). */
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 256 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(1 << 20);
        memset(p[i], 1, 1 << 20);
    }
    for (int i = 0; i < N; i++)
        free(p[i]);
    return 0;
}
