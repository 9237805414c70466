/* Options from every source, and the ones that change what the C API
 * does. argv[1] picks the check; prints "ok" or what went wrong. The
 * program defines malloc_conf, as jemalloc programs may. */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *malloc_conf = "narenas:3,lg_tcache_max:12";

static size_t get_size(const char *name) {
    size_t v = 0, len = sizeof(v);
    if (mallctl(name, &v, &len, NULL, 0) != 0) return (size_t)-1;
    return v;
}

static unsigned get_unsigned(const char *name) {
    unsigned v = 0;
    size_t len = sizeof(v);
    if (mallctl(name, &v, &len, NULL, 0) != 0) return (unsigned)-1;
    return v;
}

static const char *get_str(const char *name) {
    const char *v = NULL;
    size_t len = sizeof(v);
    if (mallctl(name, &v, &len, NULL, 0) != 0) return "(error)";
    return v;
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "sources") == 0) {
        /* argv[2]: the narenas expected (the symbol's 3, or MALLOC_CONF's). */
        unsigned want = (unsigned)atoi(argv[2]);
        unsigned n = get_unsigned("opt.narenas");
        size_t tmax = get_size("opt.tcache_max");
        if (n != want || tmax != 4096 || get_size("arenas.tcache_max") != 4096) {
            printf("narenas %u (want %u), tcache_max %zu\n", n, want, tmax);
            return 1;
        }
    } else if (strcmp(what, "zero_realloc") == 0) {
        /* argv[2]: the mode in force. */
        if (strcmp(get_str("opt.zero_realloc"), argv[2]) != 0) {
            printf("opt.zero_realloc is %s\n", get_str("opt.zero_realloc"));
            return 1;
        }
        void *p = malloc(100);
        void *q = realloc(p, 0);
        if (strcmp(argv[2], "free") == 0 && q != NULL) return puts("not freed"), 1;
        if (strcmp(argv[2], "alloc") == 0) {
            if (q == NULL || malloc_usable_size(q) == 0) return puts("no block"), 1;
            free(q);
        }
        if (get_size("stats.zero_reallocs") != 1) return puts("not counted"), 1;
    } else if (strcmp(what, "xmalloc") == 0) {
        /* Impossible: NULL with ENOMEM, or with xmalloc:true an abort. */
        void *p = malloc(SIZE_MAX - 4096);
        if (p != NULL || errno != ENOMEM) return puts("impossible request served"), 1;
        p = mallocx(SIZE_MAX - 4096, 0);
        if (p != NULL) return puts("impossible mallocx served"), 1;
    } else if (strcmp(what, "thp") == 0) {
        /* argv[2], argv[3]: thp and metadata_thp in force. */
        if (strcmp(get_str("opt.thp"), argv[2]) != 0 ||
            strcmp(get_str("opt.metadata_thp"), argv[3]) != 0) {
            printf("thp %s, metadata_thp %s\n", get_str("opt.thp"), get_str("opt.metadata_thp"));
            return 1;
        }
        /* The heap still works, on huge pages or not. */
        for (int i = 0; i < 1000; i++) {
            char *p = malloc(4000 + i * 64);
            memset(p, i, 4000);
            free(p);
        }
    } else {
        printf("unknown check %s\n", what);
        return 2;
    }
    puts("ok");
    return 0;
}
