/* sdallocx with a size from another class must be caught, not silently
 * file the block under the wrong class. Expected: abort with a message. */
#include <jemalloc/jemalloc.h>
#include <stdio.h>
int main(void) {
    void *p = mallocx(100, 0);
    sdallocx(p, 1000, 0);
    puts("mismatch not detected");
    return 0;
}
