// Zero-byte aligned allocations freed with their (zero) size: valid code
// that every allocator must run. For each alignment A in 16, 64, 4096:
// aligned_alloc(A, 0) + free_aligned_sized(p, A, 0) (C23), posix_memalign
// likewise, mallocx(0, MALLOCX_ALIGN(A)) + sdallocx(p, 0, MALLOCX_ALIGN(A)),
// sized aligned operator new/delete of 0 bytes, and std::allocator of an
// over-aligned type allocating and deallocating 0 elements. The
// non-standard functions are looked up at run time, so the same program
// runs on glibc and jemalloc (which lack some of them).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>

#include <dlfcn.h>

template <std::size_t A>
struct alignas(A) Over {
    char c[A];
};

static int bad;

static void check(const char *what, void *p, std::size_t a) {
    if (!p || (std::uintptr_t)p % a != 0) {
        std::printf("%s A=%zu: %p\n", what, a, p);
        bad++;
    }
}

template <std::size_t A>
static void with_allocator() {
    std::allocator<Over<A>> al;
    Over<A> *p = al.allocate(0);
    check("std::allocator", p, A);
    al.deallocate(p, 0);
    // And one element, for contrast.
    p = al.allocate(1);
    check("std::allocator 1", p, A);
    al.deallocate(p, 1);
}

int main() {
    using sized_t = void (*)(void *, std::size_t, std::size_t);
    using mallocx_t = void *(*)(std::size_t, int);
    using sdallocx_t = void (*)(void *, std::size_t, int);
    auto fas = (sized_t)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    auto mallocx = (mallocx_t)dlsym(RTLD_DEFAULT, "mallocx");
    auto sdallocx = (sdallocx_t)dlsym(RTLD_DEFAULT, "sdallocx");
    for (std::size_t a : {std::size_t(16), std::size_t(64), std::size_t(4096)}) {
        int lg = __builtin_ctzl(a);
        for (int round = 0; round < 3; round++) {
            void *p = aligned_alloc(a, 0);
            check("aligned_alloc", p, a);
            if (fas) fas(p, a, 0); else free(p);
            if (posix_memalign(&p, a, 0) != 0) p = nullptr;
            check("posix_memalign", p, a);
            if (fas) fas(p, a, 0); else free(p);
            if (mallocx && sdallocx) {
                p = mallocx(0, lg);
                if (!p) { std::printf("mallocx A=%zu: null\n", a); bad++; }
                sdallocx(p, 0, lg);
            }
            p = ::operator new(0, std::align_val_t(a));
            check("operator new", p, a);
            ::operator delete(p, std::size_t(0), std::align_val_t(a));
        }
    }
    with_allocator<16>();
    with_allocator<64>();
    with_allocator<4096>();
    if (bad) return 1;
    std::puts("zero_aligned ok");
    return 0;
}
