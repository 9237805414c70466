// C++ on rjem: new/delete in all forms (sized delete reaches sdallocx),
// aligned new honours alignment, nothrow new returns nullptr on failure,
// plain new throws std::bad_alloc, and a failed new calls the new-handler
// until it succeeds or there is none (librjem hands failures to the C++
// runtime's operator new; it does not link it).
#include <cstdint>
#include <cstdio>
#include <malloc.h>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <sys/resource.h>
#include <thread>
#include <vector>

static int handler_calls;
static int handler_limit;

// Uninstalls itself after `handler_limit` calls.
static void counting_handler() {
    if (++handler_calls >= handler_limit) std::set_new_handler(nullptr);
}

static void throwing_handler() {
    handler_calls++;
    throw std::bad_alloc();
}

// Lifts the address-space limit that made the allocation fail.
static void lifting_handler() {
    handler_calls++;
    struct rlimit r;
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_AS, &r);
}

// Every form of a failing new with the new-handler: plain and aligned
// throw after the handler gives up, nothrow returns nullptr, and a handler
// that makes memory available makes the allocation succeed.
static int new_handler_checks() {
    int fails = 0;
    auto check = [&](bool c, const char *what) { if (!c) { fails++; std::fprintf(stderr, "FAIL %s\n", what); } };
    volatile size_t huge = (size_t)1 << 62;
    for (int aligned = 0; aligned < 2; aligned++) {
        handler_calls = 0;
        handler_limit = 3;
        std::set_new_handler(counting_handler);
        bool threw = false;
        try {
            void *q = aligned ? ::operator new(huge, std::align_val_t(64)) : ::operator new(huge);
            std::printf("unexpected %p\n", q);
        } catch (const std::bad_alloc &) { threw = true; }
        check(threw && handler_calls == 3, aligned ? "aligned new: handler, then bad_alloc" : "new: handler, then bad_alloc");
        handler_calls = 0;
        std::set_new_handler(counting_handler);
        void *q = aligned ? ::operator new(huge, std::align_val_t(64), std::nothrow)
                          : ::operator new(huge, std::nothrow);
        check(q == nullptr && handler_calls == 3, aligned ? "aligned nothrow: handler, then nullptr" : "nothrow: handler, then nullptr");
        handler_calls = 0;
        std::set_new_handler(throwing_handler);
        q = aligned ? ::operator new(huge, std::align_val_t(64), std::nothrow) : ::operator new(huge, std::nothrow);
        check(q == nullptr && handler_calls == 1, "nothrow: a throwing handler gives nullptr");
        std::set_new_handler(nullptr);
    }
    // 256 MiB under an address-space limit 64 MiB above what is mapped now:
    // fails until the handler lifts the limit.
    struct rlimit old;
    getrlimit(RLIMIT_AS, &old);
    long vm_kib = 0;
    if (FILE *f = std::fopen("/proc/self/status", "r")) {
        char line[256];
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "VmSize: %ld kB", &vm_kib) == 1) break;
        std::fclose(f);
    }
    struct rlimit tight = {(rlim_t)vm_kib * 1024 + (64 << 20), old.rlim_max};
    check(vm_kib > 0 && setrlimit(RLIMIT_AS, &tight) == 0, "setrlimit");
    handler_calls = 0;
    std::set_new_handler(lifting_handler);
    char *big = new char[256 << 20];
    big[0] = 1;
    big[(256 << 20) - 1] = 2;
    check(handler_calls >= 1, "the handler ran before the allocation succeeded");
    delete[] big;
    std::set_new_handler(nullptr);
    setrlimit(RLIMIT_AS, &old);
    return fails;
}

// A thread_local whose destructor allocates: it runs at thread exit, around
// rjem's own thread-exit flush.
struct LateAllocator {
    std::vector<std::string> keep;
    ~LateAllocator() {
        for (int i = 0; i < 1000; i++) keep.push_back(std::string(100 + i % 300, 'z'));
        keep.clear();
        keep.shrink_to_fit();
    }
};
thread_local LateAllocator late;

struct alignas(256) Wide { char b[300]; };
struct Node { Node *next; long v[3]; };

int main() {
    int fails = 0;
    auto check = [&](bool c, const char *what) { if (!c) { fails++; std::fprintf(stderr, "FAIL %s\n", what); } };
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < 100000; i++) m[std::to_string(i % 5000)].push_back(i);
    check(m.size() == 5000 && m["42"].size() == 20, "map");
    Node *head = nullptr;
    for (int i = 0; i < 100000; i++) head = new Node{head, {i, i, i}};
    long sum = 0;
    while (head) { Node *n = head->next; sum += head->v[0]; delete head; head = n; }
    check(sum == 4999950000L, "list");
    for (int i = 0; i < 1000; i++) {
        Wide *w = new Wide;
        check(reinterpret_cast<std::uintptr_t>(w) % 256 == 0, "aligned new");
        delete w;
        Wide *ws = new Wide[3];
        check(reinterpret_cast<std::uintptr_t>(ws) % 256 == 0, "aligned new[]");
        delete[] ws;
    }
    int *p = new int[100];
    check(malloc_usable_size(p) == 448, "new[] served by rjem (glibc: 408)");
    delete[] p;
    check(new (std::nothrow) char[(size_t)1 << 62] == nullptr, "nothrow");
    bool threw = false;
    try {
        volatile size_t huge = (size_t)1 << 62;
        char *q = new char[huge];
        std::printf("unexpected %p\n", static_cast<void *>(q)); // keeps the allocation
        delete[] q;
    } catch (const std::bad_alloc &) { threw = true; }
    check(threw, "bad_alloc");
    auto sp = std::make_shared<std::string>(1000, 'x');
    check(sp->size() == 1000, "shared_ptr");
    for (int round = 0; round < 20; round++) {
        std::vector<std::thread> ts;
        for (int t = 0; t < 4; t++)
            ts.emplace_back([] {
                late.keep.push_back(std::string(5000, 'y'));
                auto v = std::make_unique<std::vector<int>>(10000, 1);
            });
        for (auto &t : ts) t.join();
    }
    fails += new_handler_checks();
    std::printf("cxx %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
