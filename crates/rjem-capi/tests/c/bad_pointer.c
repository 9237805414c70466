/* A pointer that is not a live allocation, handed to a function other than
 * free: the report must name that function. argv[1] picks the case. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    static char not_ours[64];
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "usable-foreign")) {
        printf("%zu\n", malloc_usable_size(not_ours));
    } else if (!strcmp(c, "usable-freed")) {
        void *p = malloc(1 << 20);
        free(p);
        printf("%zu\n", malloc_usable_size(p));
    } else if (!strcmp(c, "realloc-foreign")) {
        printf("%p\n", realloc(not_ours, 100));
    } else if (!strcmp(c, "realloc-interior")) {
        char *p = malloc(1 << 20);
        printf("%p\n", realloc(p + 8192, 2 << 20));
    } else if (!strcmp(c, "free-inside-large") && argc > 2) {
        /* A pointer 16 bytes into a large block: still in the block's
         * first page, whose entry names the block. */
        char *p = malloc(strtoul(argv[2], 0, 0));
        free(p + 16);
    } else if (!strcmp(c, "free-interior") && argc > 3) {
        /* A pointer aligned as the class's blocks are, inside one: freed,
         * the next malloc of the class must not return it. */
        size_t size = strtoul(argv[2], 0, 0), off = strtoul(argv[3], 0, 0);
        char *p = malloc(size);
        memset(p, 1, size);
        free(p + off);
        char *q = malloc(size);
        printf("%s\n", q == p + off ? "handed out again" : "other block");
    } else {
        return 2;
    }
    puts("not detected");
    return 0;
}
