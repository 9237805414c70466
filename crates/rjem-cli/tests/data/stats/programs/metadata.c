/* Metadata out of proportion: a peak of 1 TiB of address space (4096
 * blocks of 256 MiB, never written) then freed, as a process with huge
 * transient buffers does; what remains live is small, but the allocator's
 * page map and extent descriptors grew with the address space. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    enum { N = 4096 };
    static void *p[N];
    int got = 0;
    for (int i = 0; i < N; i++) {
        p[i] = malloc((size_t)256 << 20);
        if (!p[i])
            break;
        got++;
    }
    for (int i = 0; i < got; i++)
        free(p[i]);
    void *live = malloc(4 << 20);
    memset(live, 1, 4 << 20);
    fprintf(stdout, "%d blocks\n", got);
    return 0;
}
