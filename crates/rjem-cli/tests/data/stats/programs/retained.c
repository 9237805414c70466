/* Huge retained address space: 64 blocks of 64 MiB (never written, so
 * never resident) allocated together and freed: the address space stays
 * retained. */
#include <stdlib.h>
int main(void) {
    enum { N = 64 };
    void *p[N];
    for (int i = 0; i < N; i++)
        p[i] = malloc((size_t)64 << 20);
    for (int i = 0; i < N; i++)
        free(p[i]);
    void *small = malloc(100);
    return small == NULL;
}
