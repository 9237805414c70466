/* The allocating half of C++ operator new for librjem, in C so that
 * librjem needs no C++ runtime: a C program that preloads it does not load
 * libstdc++ (loading and relocating it cost a process start about 0.8 ms
 * here).
 *
 * The exported operators are defined in Rust (cxx.rs) as bare jumps to
 * these functions, which keep every argument register. A failed
 * allocation is handed to the C++ runtime's own operator new, which the
 * calling program has loaded: it calls the new-handler until allocation
 * succeeds or there is none, then throws std::bad_alloc, or returns
 * nullptr for the nothrow forms (which call the throwing form and catch).
 * Its retries allocate through malloc and aligned_alloc, that is, through
 * rjem. This file is compiled with unwind tables, and the Rust jumps leave
 * no frame, so the exception reaches the C++ caller. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

void *mallocx(size_t size, int flags);
bool rjem_infallible_new(void);

#define HIDDEN __attribute__((visibility("hidden")))

typedef void (*new_handler)(void);

/* A function of the C++ runtime, looked up only once an allocation has
 * failed; null if it is not loaded. */
static void *cxx_runtime(const char *name) {
    void *lib = dlopen("libstdc++.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (!lib) return NULL;
    void *f = dlsym(lib, name);
    dlclose(lib);
    return f;
}

static void die(const char *msg, size_t len) {
    (void)!write(2, msg, len);
    abort();
}

#define DIE(msg) die(msg, sizeof msg - 1)

/* What the C++ runtime's operator new of name `name` returns for these
 * arguments (a throwing form may not return). With
 * experimental_infallible_new and no new-handler, a throwing form aborts
 * instead; so does a nothrow one, whose runtime version calls the
 * throwing form, that is, ours (jemalloc aborts for both too). */
__attribute__((noinline, cold)) static void *runtime_new(const char *name, size_t n, size_t align,
                                                         const void *tag) {
    bool nothrow = tag != NULL;
    if (!nothrow && rjem_infallible_new()) {
        new_handler (*get)(void) = (new_handler(*)(void))cxx_runtime("_ZSt15get_new_handlerv");
        if (!get || !get())
            DIE("<rjem>: operator new: out of memory (experimental_infallible_new:true)\n");
    }
    void *f = cxx_runtime(name);
    if (!f)
        DIE("<rjem>: operator new: out of memory, and no C++ runtime (libstdc++.so.6) is loaded "
            "to report it\n");
    if (align == 0 && !nothrow) return ((void *(*)(size_t))f)(n);
    if (align == 0) return ((void *(*)(size_t, const void *))f)(n, tag);
    if (!nothrow) return ((void *(*)(size_t, size_t))f)(n, align);
    return ((void *(*)(size_t, size_t, const void *))f)(n, align, tag);
}

HIDDEN void *rjem_cxx_new(size_t n) {
    void *p = malloc(n);
    if (__builtin_expect(p != NULL, 1)) return p;
    return runtime_new("_Znwm", n, 0, NULL);
}

HIDDEN void *rjem_cxx_new_nothrow(size_t n, const void *tag) {
    void *p = malloc(n);
    if (__builtin_expect(p != NULL, 1)) return p;
    return runtime_new("_ZnwmRKSt9nothrow_t", n, 0, tag);
}

HIDDEN void *rjem_cxx_new_aligned(size_t n, size_t align) {
    void *p = mallocx(n, __builtin_ctzl(align));
    if (__builtin_expect(p != NULL, 1)) return p;
    return runtime_new("_ZnwmSt11align_val_t", n, align, NULL);
}

HIDDEN void *rjem_cxx_new_aligned_nothrow(size_t n, size_t align, const void *tag) {
    void *p = mallocx(n, __builtin_ctzl(align));
    if (__builtin_expect(p != NULL, 1)) return p;
    return runtime_new("_ZnwmSt11align_val_tRKSt9nothrow_t", n, align, tag);
}
