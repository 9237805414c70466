// C++ on rjem: new/delete in all forms (sized delete reaches sdallocx),
// aligned new honours alignment, nothrow new returns nullptr on failure,
// plain new throws std::bad_alloc.
#include <cstdint>
#include <cstdio>
#include <malloc.h>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

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
    std::printf("cxx %s\n", fails ? "FAILED" : "ok");
    return fails != 0;
}
