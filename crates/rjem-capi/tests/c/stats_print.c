/* malloc_stats_print as a program written for jemalloc uses it: with a
 * callback, and through malloc_message. argv[1] is passed as opts; with
 * argv[2] == "message" the report goes through malloc_message instead. */
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void to_stdout(void *opaque, const char *s) {
    (*(int *)opaque)++;
    fputs(s, stdout);
}

static int message_calls;
static void message(void *opaque, const char *s) {
    (void)opaque;
    message_calls++;
    fputs(s, stdout);
}

static void *worker(void *arg) {
    /* A second thread, so that more than one arena is in use. */
    void *p[64];
    for (int i = 0; i < 64; i++) p[i] = malloc(24 + i * 100);
    for (int i = 0; i < 32; i++) free(p[i]);
    return arg;
}

int main(int argc, char **argv) {
    void *keep[300];
    for (int i = 0; i < 300; i++) keep[i] = malloc(i * 97 + 1);
    for (int i = 0; i < 150; i++) free(keep[i]);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    const char *opts = argc > 1 ? argv[1] : "";
    if (argc > 2 && strcmp(argv[2], "message") == 0) {
        malloc_message = message;
        malloc_stats_print(NULL, NULL, opts);
        return message_calls == 0;
    }
    int calls = 0;
    malloc_stats_print(to_stdout, &calls, opts);
    return calls == 0;
}
