/* A shared library loaded with dlopen() that allocates in its constructor,
 * in its functions and frees in its destructor. */
#include <stdlib.h>
#include <string.h>

static char *state;

__attribute__((constructor)) static void plugin_init(void) {
    state = malloc(4096);
    strcpy(state, "plugin");
}

__attribute__((destructor)) static void plugin_fini(void) { free(state); }

char *plugin_work(int n) {
    char **v = malloc(n * sizeof *v);
    for (int i = 0; i < n; i++) { v[i] = malloc(16 + i % 2000); memset(v[i], i, 16 + i % 2000); }
    for (int i = 0; i + 1 < n; i++) free(v[i]);
    char *last = v[n - 1];
    free(v);
    return last; /* freed by the caller: a block crossing the library boundary */
}

const char *plugin_state(void) { return state; }
