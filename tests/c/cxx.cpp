/*
 * cxx: a C++ program whose every allocation is libstdc++'s: operator new and delete
 * (plain, array, sized, aligned, nothrow), containers and strings, iostreams, shared
 * pointers, exceptions (allocated by __cxa_allocate_exception with malloc), and
 * std::thread, with objects built in one thread and destroyed in another.
 *
 * stdout is a function of the program alone (sums, counts), so it must be byte
 * identical with and without LD_PRELOAD=liboxmalloc.so. stderr says whether operator
 * new's memory is oxmalloc's: when the library is loaded, every kind of new above
 * hands out pointers that oxmalloc_malloc_usable_size accepts (it ends the process on
 * a pointer oxmalloc did not hand out).
 *
 * usage: cxx [THREADS]
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <queue>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

static int failures = 0;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::cerr << "CHECK failed at line " << __LINE__ << ": " #cond "\n";      \
            failures++;                                                               \
        }                                                                             \
    } while (0)

/* Built before main: allocation by static constructors. */
static std::map<std::string, std::vector<int>> before_main = [] {
    std::map<std::string, std::vector<int>> m;
    for (int i = 0; i < 200; i++) m["key" + std::to_string(i)] = std::vector<int>(i + 1, i);
    return m;
}();

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* A polymorphic object with a payload whose bytes are a function of its seed. */
struct Item {
    explicit Item(uint64_t seed) : seed(seed), name("item-" + std::to_string(seed)), bytes(seed % 3000 + 1) {
        for (size_t i = 0; i < bytes.size(); i++) bytes[i] = (uint8_t)mix(seed + i);
    }
    virtual ~Item() = default;
    virtual uint64_t check() const {
        uint64_t sum = 0;
        for (size_t i = 0; i < bytes.size(); i++) {
            if (bytes[i] != (uint8_t)mix(seed + i)) return UINT64_MAX;
            sum += bytes[i];
        }
        return name == "item-" + std::to_string(seed) ? sum : UINT64_MAX;
    }
    uint64_t seed;
    std::string name;
    std::vector<uint8_t> bytes;
};

struct BigItem : Item {
    explicit BigItem(uint64_t seed) : Item(seed), extra(seed % 50000 + 1, (char)('a' + seed % 26)) {}
    uint64_t check() const override {
        uint64_t base = Item::check();
        if (base == UINT64_MAX) return base;
        for (char c : extra)
            if (c != (char)('a' + seed % 26)) return UINT64_MAX;
        return base + extra.size();
    }
    std::string extra;
};

struct alignas(64) Line {
    uint64_t words[8];
};
struct alignas(4096) Page {
    unsigned char bytes[4096];
};

/* A hand-off queue: producers push, the next thread pops and destroys. */
struct Mailbox {
    std::mutex m;
    std::condition_variable cv;
    std::queue<std::unique_ptr<Item>> q;
    bool closed = false;
    void put(std::unique_ptr<Item> it) {
        std::lock_guard<std::mutex> g(m);
        q.push(std::move(it));
        cv.notify_one();
    }
    std::unique_ptr<Item> take() {
        std::unique_lock<std::mutex> g(m);
        cv.wait(g, [&] { return !q.empty() || closed; });
        if (q.empty()) return nullptr;
        auto it = std::move(q.front());
        q.pop();
        return it;
    }
    void close() {
        std::lock_guard<std::mutex> g(m);
        closed = true;
        cv.notify_all();
    }
};

/* Where results of new go so that the compiler cannot drop the allocation. */
static void *volatile escape;

static std::atomic<uint64_t> checked_sum{0};
static std::atomic<uint64_t> destroyed{0};
static std::atomic<uint64_t> caught{0};

static void producer(int id, int n, Mailbox *out) {
    for (int i = 0; i < n; i++) {
        uint64_t seed = (uint64_t)id * 1000003 + (uint64_t)i;
        std::unique_ptr<Item> it;
        if (i % 16 == 0)
            it.reset(new BigItem(seed));
        else
            it.reset(new Item(seed));
        out->put(std::move(it));
        if (i % 100 == 0) {
            /* exceptions carry heap-allocated messages across a throw */
            try {
                throw std::runtime_error("thrown by " + std::to_string(id) + " at " + std::to_string(i));
            } catch (const std::runtime_error &e) {
                if (std::string(e.what()) == "thrown by " + std::to_string(id) + " at " + std::to_string(i)) caught++;
            }
        }
    }
}

static void consumer(Mailbox *in) {
    while (auto it = in->take()) {
        uint64_t c = it->check();
        CHECK(c != UINT64_MAX);
        checked_sum += c;
        destroyed++;
    }
}

/* Returns how many pointers oxmalloc_malloc_usable_size accepted, or -1 when the
 * library is not loaded. */
static int interposed_checks() {
    auto usable = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "oxmalloc_malloc_usable_size");
    if (usable == nullptr) return -1;
    int ok = 0;
    char *a = new char[100];
    ok += usable(a) >= 100;
    delete[] a;
    auto *s = new std::string(1000, 'x');
    ok += usable(s) >= sizeof(std::string);
    ok += usable((void *)s->data()) >= 1001;
    delete s;
    Line *l = new Line[3];
    ok += usable(l) >= 3 * sizeof(Line);
    delete[] l;
    Page *p = new Page;
    ok += usable(p) >= sizeof(Page);
    delete p;
    char *n = new (std::nothrow) char[5000];
    ok += n != nullptr && usable(n) >= 5000;
    delete[] n;
    return ok;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    if (threads < 2) threads = 2;

    /* static construction */
    uint64_t bm = 0;
    for (auto &kv : before_main) bm += kv.first.size() + kv.second.size() * (uint64_t)kv.second[0];
    std::cout << "before_main " << before_main.size() << " " << bm << "\n";

    /* aligned new, plain and array, and sized delete */
    int misaligned = 0;
    std::vector<Line *> lines;
    std::vector<Page *> pages;
    for (int i = 0; i < 500; i++) {
        Line *l = new Line[i % 7 + 1];
        if ((uintptr_t)l % alignof(Line) != 0) misaligned++;
        l[0].words[0] = (uint64_t)i;
        lines.push_back(l);
        if (i % 10 == 0) {
            Page *p = new Page;
            if ((uintptr_t)p % alignof(Page) != 0) misaligned++;
            memset(p->bytes, i & 0xff, sizeof p->bytes);
            pages.push_back(p);
        }
    }
    uint64_t aligned_sum = 0;
    for (Line *l : lines) {
        aligned_sum += l[0].words[0];
        delete[] l;
    }
    for (Page *p : pages) {
        aligned_sum += p->bytes[4095];
        delete p;
    }
    for (size_t n = 1; n < 70000; n = n * 3 + 1) {
        void *q = ::operator new(n);
        memset(q, 0x5a, n);
        ::operator delete(q, n);
    }
    std::cout << "aligned misaligned=" << misaligned << " sum=" << aligned_sum << "\n";

    /* allocation failure: nothrow gives nullptr, the throwing form bad_alloc */
    volatile size_t huge = (size_t)1 << 62;
    char *none = new (std::nothrow) char[huge];
    escape = none;
    bool bad_alloc = false;
    try {
        char *never = new char[huge];
        escape = never;
        delete[] never;
    } catch (const std::bad_alloc &) {
        bad_alloc = true;
    }
    std::cout << "huge nothrow=" << (none == nullptr ? "null" : "non-null") << " bad_alloc=" << bad_alloc << "\n";

    /* containers, strings, streams */
    std::unordered_map<std::string, std::string> dict;
    for (int i = 0; i < 20000; i++) dict["k" + std::to_string(mix(i) % 5000)] += std::to_string(i % 10);
    std::map<std::string, size_t> lengths;
    for (auto &kv : dict) lengths[kv.first] = kv.second.size();
    std::ostringstream os;
    size_t total_len = 0;
    for (auto &kv : lengths) {
        os << kv.first << '=' << kv.second << ';';
        total_len += kv.second;
    }
    std::cout << "containers keys=" << lengths.size() << " len=" << total_len << " text=" << os.str().size() << "\n";

    /* shared pointers released by whichever thread drops the last reference: each
     * worker gets its own copies of half of them, and main drops its own meanwhile */
    std::vector<std::shared_ptr<Item>> shared;
    for (int i = 0; i < 1000; i++) shared.push_back(std::make_shared<Item>((uint64_t)i));
    std::atomic<uint64_t> shared_sum{0};
    {
        std::vector<std::thread> ts;
        for (size_t t = 0; t < 2; t++) {
            std::vector<std::shared_ptr<Item>> half;
            for (size_t i = t; i < shared.size(); i += 2) half.push_back(shared[i]);
            ts.emplace_back([&shared_sum](std::vector<std::shared_ptr<Item>> mine) {
                for (auto &it : mine) shared_sum += it->check();
            }, std::move(half));
        }
        shared.clear();
        for (auto &t : ts) t.join();
    }
    std::cout << "shared sum=" << shared_sum.load() << "\n";

    /* producers hand objects to consumers in other threads, in several waves */
    const int per_thread = 3000;
    for (int wave = 0; wave < 3; wave++) {
        Mailbox box;
        std::vector<std::thread> ps, cs;
        for (int t = 0; t < threads / 2; t++) cs.emplace_back(consumer, &box);
        for (int t = 0; t < threads - threads / 2; t++) ps.emplace_back(producer, wave * 100 + t, per_thread, &box);
        for (auto &t : ps) t.join();
        box.close();
        for (auto &t : cs) t.join();
    }
    std::cout << "handoff destroyed=" << destroyed.load() << " sum=" << checked_sum.load()
              << " exceptions=" << caught.load() << "\n";

    int inter = interposed_checks();
    if (inter < 0)
        std::cerr << "oxmalloc not loaded\n";
    else
        std::cerr << "oxmalloc loaded: " << inter << " of 6 checks of new gave oxmalloc blocks\n";
    std::cout << "failures " << failures << "\n";
    return failures == 0 ? 0 : 1;
}
