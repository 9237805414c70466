#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    void *warm = malloc(32); free(warm);
    for (long i = 0; i < n; i++) {
        void *p = malloc(32);
        *(volatile char *)p = 1;
        free(p);
    }
    return 0;
}
