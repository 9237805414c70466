// C++ new of an impossible size: std::bad_alloc, or with
// experimental_infallible_new:true an abort with a message.
#include <cstdint>
#include <cstdio>
#include <new>

int main() {
    try {
        volatile std::size_t n = SIZE_MAX / 2;
        char *p = new char[n];
        std::printf("served %p\n", static_cast<void *>(p));
        return 1;
    } catch (const std::bad_alloc &) {
        std::puts("bad_alloc");
    }
    return 0;
}
