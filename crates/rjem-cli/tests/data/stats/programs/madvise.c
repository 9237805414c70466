/* madvise storm: with a decay time of a few milliseconds each free of a
 * large block is purged soon after, and the next malloc faults it back
 * in. */
#include <stdlib.h>
#include <string.h>
int main(void) {
    size_t sum = 0;
    for (int i = 0; i < 200000; i++) {
        /* Volatile: the compiler may not elide the malloc/free pair. */
        char *volatile p = malloc((64 + i % 4 * 16) << 10);
        memset(p, 1, 4096);
        sum += p[100];
        free(p);
    }
    return sum == 0;
}
