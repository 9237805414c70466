/* malloc-large: large blocks of several MiB, in the style of malloc-large
 * (as run in mimalloc-bench).
 *
 *   malloc-large ITERATIONS [SLOTS] [MIN_MIB] [MAX_MIB]
 *
 * Keeps SLOTS (default 20) blocks live; each iteration replaces a random
 * one with a block of a random size between MIN_MIB and MAX_MIB (default
 * 5..25 MiB) and writes one byte per 4 KiB page, as a program filling a
 * buffer would. An allocator that unmaps on free pays page faults again
 * for every block; one that keeps everything pays in resident memory.
 * The written bytes are checked before each free.
 */
#include "common.h"

#define MIB (1024 * 1024)
#define PAGE 4096

struct slot {
    unsigned char *p;
    size_t size;
    uint8_t tag;
};

static void fill(struct slot *s) {
    for (size_t o = 0; o < s->size; o += PAGE) s->p[o] = (uint8_t)(s->tag + o / PAGE);
}

static void check(const struct slot *s) {
    for (size_t o = 0; o < s->size; o += PAGE)
        if (s->p[o] != (uint8_t)(s->tag + o / PAGE)) fail("malloc-large: page at %zu changed", o);
}

int main(int argc, char **argv) {
    long iterations = arg_long(argc, argv, 1, 200);
    long slots = arg_long(argc, argv, 2, 20);
    long lo = arg_long(argc, argv, 3, 5), hi = arg_long(argc, argv, 4, 25);
    if (hi < lo) fail("malloc-large: MAX < MIN");
    uint64_t seed = 5;
    struct slot *s = calloc(slots, sizeof *s);
    if (!s) fail("malloc-large: calloc");
    size_t total = 0;
    for (long i = 0; i < iterations; i++) {
        struct slot *x = &s[rng_below(&seed, slots)];
        if (x->p) {
            check(x);
            free(x->p);
        }
        x->size = (size_t)lo * MIB + rng_below(&seed, (uint64_t)(hi - lo) * MIB + 1);
        x->p = xmalloc(x->size);
        x->tag = (uint8_t)i;
        fill(x);
        total += x->size;
    }
    for (long k = 0; k < slots; k++) {
        if (!s[k].p) continue;
        check(&s[k]);
        free(s[k].p);
    }
    free(s);
    printf("malloc-large ok: %ld blocks, %.1f MiB allocated\n", iterations, (double)total / MIB);
    return 0;
}
