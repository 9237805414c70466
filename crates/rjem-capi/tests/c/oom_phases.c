/* Running out of address space, then reusing what was freed. Run under a
 * small RLIMIT_AS (`ulimit -v`). Phases, each filling memory until malloc
 * returns NULL and then freeing everything:
 *   1. blocks of 1-4 MiB;  2. blocks of 16-512 B;
 *   3. blocks of 1-4 MiB;  4. blocks of 16-512 B;
 *   5. blocks of 8-16 B (five times as many slabs as phase 4: their
 *      metadata needs more memory than the earlier phases left);
 * and, last, one block of each of 8, 16 and 32 MiB (which must all be
 * served: phase 5 freed far more). Prints each phase's count and bytes.
 * Blocks are chained through their first word, so the program needs no
 * memory of its own. argv[1] "big-first" starts with an 8 MiB-block phase
 * instead (blocks at the huge-arena threshold). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static size_t next_rand(size_t lo, size_t hi) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (size_t)(rng % (hi - lo + 1));
}

static void phase(const char *name, size_t lo, size_t hi) {
    void *head = NULL;
    size_t n = 0, bytes = 0;
    for (;;) {
        size_t sz = next_rand(lo, hi);
        void **p = malloc(sz);
        if (!p) break;
        /* Touch every page, as a program would (and check it is ours). */
        for (size_t i = 0; i < sz; i += 4096) ((char *)p)[i] = 1;
        *p = head;
        head = p;
        n++;
        bytes += sz;
    }
    while (head) {
        void *next = *(void **)head;
        free(head);
        head = next;
    }
    printf("%s %zu blocks %zu MB\n", name, n, bytes >> 20);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "big-first") == 0) {
        phase("huge", 8 << 20, 8 << 20);
    }
    phase("large", 1 << 20, 4 << 20);
    phase("small", 16, 512);
    phase("large", 1 << 20, 4 << 20);
    phase("small", 16, 512);
    phase("tiny", 8, 16);
    for (size_t mb = 8; mb <= 32; mb *= 2) {
        void *p = malloc(mb << 20);
        printf("after: %zu MiB %s\n", mb, p ? "ok" : "NULL");
        if (p) memset(p, 1, mb << 20);
        free(p);
    }
    return 0;
}
