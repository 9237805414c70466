/* The heap profiler from C (tests/prof.rs runs it with MALLOC_CONF
 * prof:true): allocation sites with known sizes and counts, dumps through
 * mallctl, run-time switches, thread names, fork and thread churn while
 * sampling. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <rjem.h>

#define MAX_KEEP 4000000
static void *keep[MAX_KEEP];
static size_t nkeep;

static void touch(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

static void kept(void *p) {
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  touch(p);
  keep[nkeep++] = p;
}

/* Each site allocates `n` blocks of `size` bytes and keeps them. */
__attribute__((noinline)) void site_small(size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) kept(malloc(size));
}
__attribute__((noinline)) void site_medium(size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) kept(calloc(1, size));
}
__attribute__((noinline)) void site_large(size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) kept(malloc(size));
}
/* Allocates and frees at once: counted, never live at a dump. */
__attribute__((noinline)) void site_churn(size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) {
    void *p = malloc(size);
    touch(p);
    free(p);
  }
}
/* Grows blocks with realloc, keeping the last. */
__attribute__((noinline)) void site_realloc(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = NULL;
    for (size_t s = 16; s <= 4096; s *= 2) p = realloc(p, s);
    kept(p);
  }
}
__attribute__((noinline)) void site_leak(size_t n) {
  for (size_t i = 0; i < n; i++) touch(malloc(1000));
}

/* Blocks of small, medium and cached large classes, kept. */
static const size_t sized_sizes[4] = {24, 100, 3000, 20000};
__attribute__((noinline)) void site_sized(size_t n) {
  for (size_t i = 0; i < n; i++) kept(malloc(sized_sizes[i % 4]));
}
void free_sized(void *, size_t);

static void release_all(void) {
  for (size_t i = 0; i < nkeep; i++) free(keep[i]);
  nkeep = 0;
}

static int dump(const char *path) {
  return mallctl("prof.dump", NULL, NULL, &path, sizeof(path));
}

static bool get_bool(const char *name) {
  bool b = false;
  size_t sz = sizeof(b);
  if (mallctl(name, &b, &sz, NULL, 0) != 0) {
    fprintf(stderr, "mallctl %s failed\n", name);
    exit(2);
  }
  return b;
}

static void set_bool(const char *name, bool b) {
  if (mallctl(name, NULL, NULL, &b, sizeof(b)) != 0) {
    fprintf(stderr, "mallctl %s failed\n", name);
    exit(2);
  }
}

int main(int argc, char **argv);

/* The site functions' addresses, for the test to tell frames apart. */
static void print_sites(void) {
  printf("site site_small %p\n", (void *)site_small);
  printf("site site_medium %p\n", (void *)site_medium);
  printf("site site_large %p\n", (void *)site_large);
  printf("site site_churn %p\n", (void *)site_churn);
  printf("site site_realloc %p\n", (void *)site_realloc);
  printf("site site_leak %p\n", (void *)site_leak);
  printf("site site_sized %p\n", (void *)site_sized);
  printf("site main %p\n", (void *)main);
}

static void *churner(void *arg) {
  size_t n = (size_t)(uintptr_t)arg;
  for (size_t i = 0; i < n; i++) {
    void *p = malloc(64 + (i % 8) * 100);
    touch(p);
    if (i % 3 == 0) {
      void *q = realloc(p, 5000);
      if (q) p = q;
    }
    free(p);
  }
  return NULL;
}

/* Names itself (thread.prof.name) and allocates at a site. */
struct named {
  const char *name;
  int site;
};
static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static bool sys_names;
static void *named_thread(void *arg) {
  struct named *n = arg;
  /* Under prof_sys_thread_name the system name is used (and the control
   * refuses writes). */
  pthread_setname_np(pthread_self(), n->name);
  int rc = mallctl("thread.prof.name", NULL, NULL, &n->name, sizeof(n->name));
  if (rc != 0 && !(sys_names && rc == ENOENT)) {
    fprintf(stderr, "thread.prof.name write failed: %d\n", rc);
    exit(2);
  }
  if (!sys_names) {
    const char *got = NULL;
    size_t sz = sizeof(got);
    if (mallctl("thread.prof.name", &got, &sz, NULL, 0) != 0 || strcmp(got, n->name) != 0) {
      fprintf(stderr, "thread.prof.name read back wrong\n");
      exit(2);
    }
  }
  pthread_mutex_lock(&keep_lock);
  if (n->site == 0)
    site_small(200000, 100); /* 22.4 MB */
  else
    site_medium(20000, 1500); /* 30.7 MB */
  pthread_mutex_unlock(&keep_lock);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *mode = argv[1];
  print_sites();
  if (!strcmp(mode, "sites")) {
    /* Known live bytes per site; churn counted but freed. */
    site_small(400000, 100);    /* 400,000 x 112 usable = 44.8 MB */
    site_medium(20000, 1500);   /* 20,000 x 1,536 = 30.7 MB */
    site_large(1000, 40000);    /* 1,000 x 40,960 = 41.0 MB */
    site_churn(2000000, 64);    /* 128 MB allocated, none live */
    site_realloc(5000);         /* 5,000 x 4,096 live = 20.5 MB */
    if (dump(argv[2]) != 0) return 3;
    printf("dumped\n");
    release_all();
    if (dump(argv[3]) != 0) return 3;
    printf("dumped after free\n");
    return 0;
  }
  if (!strcmp(mode, "toggle")) {
    /* Not recorded: profiler inactive, then this thread inactive. */
    set_bool("prof.active", false);
    if (get_bool("prof.active")) return 4;
    site_small(200000, 100);
    set_bool("prof.active", true);
    set_bool("thread.prof.active", false);
    site_medium(20000, 1500);
    set_bool("thread.prof.active", true);
    /* Recorded, then forgotten by prof.reset. */
    site_large(1000, 40000);
    size_t lg = 16;
    if (mallctl("prof.reset", NULL, NULL, &lg, sizeof(lg)) != 0) return 5;
    size_t got = 0, sz = sizeof(got);
    if (mallctl("prof.lg_sample", &got, &sz, NULL, 0) != 0 || got != 16) return 6;
    /* Recorded. */
    site_realloc(5000);
    if (dump(argv[2]) != 0) return 3;
    /* Freeing blocks sampled before the reset changes nothing. */
    release_all();
    if (mallctl("prof.dump", NULL, NULL, NULL, 0) != 0) return 3;
    printf("toggled\n");
    return 0;
  }
  if (!strcmp(mode, "names")) {
    /* Two named threads; the main thread's samples stay unnamed. */
    sys_names = argc > 4 && !strcmp(argv[4], "sys");
    const char *bad = "bad\nname";
    if (mallctl("thread.prof.name", NULL, NULL, &bad, sizeof(bad)) != (sys_names ? ENOENT : EINVAL))
      return 9;
    struct named a = {"worker-a", 0}, b = {"worker-b", 1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, named_thread, &a);
    pthread_create(&tb, NULL, named_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    site_large(1000, 40000);
    if (dump(argv[2]) != 0 || dump(argv[3]) != 0) return 3;
    printf("named\n");
    return 0;
  }
  if (!strcmp(mode, "sized")) {
    /* With lg_prof_sample:0 every block is sampled; they are freed by
     * free, free_sized and sdallocx in turn. The profiler must see every
     * free (none may go into a cache), so nothing stays live. */
    site_sized(4000);
    if (dump(argv[2]) != 0) return 3;
    for (size_t i = 0; i < nkeep; i++) {
      size_t size = sized_sizes[i % 4];
      switch (i % 3) {
      case 0: free(keep[i]); break;
      case 1: free_sized(keep[i], size); break;
      default: sdallocx(keep[i], size, 0); break;
      }
    }
    nkeep = 0;
    if (mallctl("thread.tcache.flush", NULL, NULL, NULL, 0) != 0) return 10;
    if (dump(argv[3]) != 0) return 3;
    printf("sized\n");
    return 0;
  }
  if (!strcmp(mode, "leak")) {
    site_leak(100000); /* 100 MB never freed */
    site_churn(100000, 1000);
    printf("leaking\n");
    return 0;
  }
  if (!strcmp(mode, "churn")) {
    /* Threads come and go and processes fork while every thread samples
     * (the test sets a small lg_prof_sample). */
    for (int round = 0; round < 20; round++) {
      pthread_t t[4];
      for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, churner, (void *)(uintptr_t)20000);
      pid_t pid = fork();
      if (pid == 0) {
        churner((void *)(uintptr_t)20000);
        site_small(1000, 100);
        _exit(dump(argv[2]) == 0 ? 0 : 7);
      }
      int st = 0;
      waitpid(pid, &st, 0);
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 8;
      for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    }
    if (dump(argv[3]) != 0) return 3;
    printf("churned\n");
    return 0;
  }
  return 2;
}
