/* fragment: fragmentation under a changing size mix.
 *
 *   fragment MIB
 *
 * Three phases, each of which allocates blocks until MIB MiB are live and
 * then frees a random half of everything live: phase 1 allocates 16..128
 * bytes, phase 2 256..1024 bytes, phase 3 1..8 KiB. Memory freed in one
 * phase can only serve the next one if the allocator can reuse it for other
 * sizes. At the end it reports resident memory against live bytes (the
 * program's own bookkeeping, which lives outside malloc in mmap'ed arrays,
 * counts as live). The runner reports the peak. Surviving blocks are
 * checked after every phase.
 */
#include "common.h"
#include <sys/mman.h>

struct blk {
    void *p;
    uint32_t size;
};

static struct blk *live;
static long n_live, cap;
static size_t live_bytes;

static uint64_t tag_of(const struct blk *b) {
    return (uint64_t)(uintptr_t)b->p * 0x9e3779b97f4a7c15ull ^ b->size;
}

int main(int argc, char **argv) {
    long mib = arg_long(argc, argv, 1, 256);
    size_t target = (size_t)mib << 20;
    cap = (long)(target / 16) * 2 + 1024;
    live = mmap(NULL, sizeof *live * cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (live == MAP_FAILED) fail("fragment: mmap");
    static const uint32_t lo[3] = {16, 256, 1024}, hi[3] = {128, 1024, 8192};
    uint64_t seed = 3;
    long rss_full = 0;
    size_t book_full = 0;
    for (int phase = 0; phase < 3; phase++) {
        while (live_bytes < target) {
            if (n_live == cap) fail("fragment: bookkeeping full");
            struct blk *b = &live[n_live++];
            b->size = lo[phase] + (uint32_t)rng_below(&seed, hi[phase] - lo[phase] + 1);
            b->p = xmalloc(b->size);
            stamp(b->p, b->size, tag_of(b));
            live_bytes += b->size;
        }
        rss_full = rss_kib();
        book_full = sizeof *live * (size_t)n_live;
        /* Free a random half (each block with probability 1/2), compacting. */
        long kept = 0;
        for (long i = 0; i < n_live; i++) {
            struct blk *b = &live[i];
            if (!stamp_ok(b->p, b->size, tag_of(b))) fail("fragment: block corrupted");
            if (rng_below(&seed, 2)) {
                live[kept++] = *b;
            } else {
                live_bytes -= b->size;
                free(b->p);
            }
        }
        n_live = kept;
    }
    long rss_half = rss_kib();
    size_t book = sizeof *live * (size_t)n_live;
    for (long i = 0; i < n_live; i++) free(live[i].p);
    munmap(live, sizeof *live * cap);
    printf("fragment ok: %ld MiB target; after the last fill RSS %ld KiB for %zu KiB live "
           "(%.2fx); after its free RSS %ld KiB for %zu KiB live (%.2fx)\n",
           mib, rss_full, (target + book_full) >> 10,
           rss_full / (double)((target + book_full) >> 10),
           rss_half, (live_bytes + book) >> 10, rss_half / (double)((live_bytes + book) >> 10));
    return 0;
}
