// The allocating half of C++ operator new for librjem. The exported
// operators are defined in Rust (cxx.rs) as bare jumps to these, so that an
// exception thrown here propagates straight to the C++ caller without
// crossing a Rust frame. Failure follows the standard: call the new-handler
// until allocation succeeds or there is none, then throw std::bad_alloc (or
// return nullptr for the nothrow forms).
#include <cstddef>
#include <cstdlib>
#include <new>

#include <unistd.h>

extern "C" {
void *malloc(std::size_t);
void *mallocx(std::size_t, int);
bool rjem_infallible_new(void);
}

namespace {

void *try_alloc(std::size_t n, std::size_t align) {
    return align ? mallocx(n, __builtin_ctzl(align)) : malloc(n);
}

__attribute__((noinline)) void *retry(std::size_t n, std::size_t align, bool nothrow) {
    for (;;) {
        std::new_handler h = std::get_new_handler();
        if (!h) {
            if (nothrow) return nullptr;
            if (rjem_infallible_new()) {
                static const char msg[] =
                    "<rjem>: operator new: out of memory (experimental_infallible_new:true)\n";
                (void)!write(2, msg, sizeof msg - 1);
                std::abort();
            }
            throw std::bad_alloc();
        }
        if (nothrow) {
            try { h(); } catch (...) { return nullptr; }
        } else {
            h();
        }
        if (void *p = try_alloc(n, align)) return p;
    }
}

inline void *alloc(std::size_t n, std::size_t align, bool nothrow) {
    void *p = try_alloc(n, align);
    if (__builtin_expect(p != nullptr, 1)) return p;
    return retry(n, align, nothrow);
}

}  // namespace

extern "C" {
__attribute__((visibility("hidden"))) void *rjem_cxx_new(std::size_t n) {
    return alloc(n, 0, false);
}
__attribute__((visibility("hidden"))) void *rjem_cxx_new_nothrow(std::size_t n) noexcept {
    return alloc(n, 0, true);
}
__attribute__((visibility("hidden"))) void *rjem_cxx_new_aligned(std::size_t n, std::size_t a) {
    return alloc(n, a, false);
}
__attribute__((visibility("hidden"))) void *rjem_cxx_new_aligned_nothrow(std::size_t n,
                                                                        std::size_t a) noexcept {
    return alloc(n, a, true);
}
}
