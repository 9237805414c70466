/* realloc: buffers grown by realloc, as string builders and dynamic arrays
 * in C programs grow them.
 *
 *   realloc ROUNDS [BUFFERS]
 *
 * Each round grows BUFFERS buffers (default 1000), interleaved at random,
 * to sizes drawn log-uniformly between 16 bytes and 1 MiB. Each step
 * appends 1 + random(len / 8 + 16) bytes (so small buffers grow a few bytes
 * at a time and large ones by up to an eighth) and reallocs to the exact
 * new length. Appended bytes follow a pattern of (buffer, offset); every buffer
 * is checked in full at the end of the round, then freed.
 */
#include "common.h"
#include <math.h>

struct buf {
    unsigned char *p;
    size_t len, target;
};

static inline unsigned char pat(size_t b, size_t off) {
    return (unsigned char)(b * 131 + off);
}

int main(int argc, char **argv) {
    long rounds = arg_long(argc, argv, 1, 4);
    long nbuf = arg_long(argc, argv, 2, 1000);
    uint64_t seed = 77, reallocs = 0, bytes = 0;
    struct buf *b = xmalloc(sizeof *b * nbuf);
    long *open_list = xmalloc(sizeof *open_list * nbuf);
    for (long r = 0; r < rounds; r++) {
        for (long i = 0; i < nbuf; i++) {
            double u = (double)rng_below(&seed, 1 << 20) / (1 << 20);
            b[i] = (struct buf){NULL, 0, (size_t)(16 * pow(65536.0, u))};
            open_list[i] = i;
        }
        long open = nbuf;
        while (open > 0) {
            long j = (long)rng_below(&seed, open);
            struct buf *x = &b[open_list[j]];
            size_t add = 1 + rng_below(&seed, x->len / 8 + 16);
            if (x->len + add > x->target) add = x->target - x->len;
            unsigned char *q = realloc(x->p, x->len + add);
            if (!q) fail("realloc: realloc(%zu) returned NULL", x->len + add);
            x->p = q;
            for (size_t k = x->len; k < x->len + add; k++) q[k] = pat(open_list[j], k);
            x->len += add;
            reallocs++;
            if (x->len == x->target) open_list[j] = open_list[--open];
        }
        for (long i = 0; i < nbuf; i++) {
            unsigned char bad = 0;
            for (size_t k = 0; k < b[i].len; k++) bad |= b[i].p[k] ^ pat(i, k);
            if (bad) fail("realloc: buffer %ld changed", i);
            bytes += b[i].len;
            free(b[i].p);
        }
    }
    free(open_list);
    free(b);
    printf("realloc ok: %ld rounds, %llu reallocs, %llu bytes checked\n", rounds,
           (unsigned long long)reallocs, (unsigned long long)bytes);
    return 0;
}
