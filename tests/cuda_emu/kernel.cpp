// SPDX-License-Identifier: Apache-2.0
// Kernels on the emulated device: the blocks of a launch run one after another on the thread
// of its stream; in a block, every CUDA thread is a fiber that runs until it reaches a barrier,
// a warp rendezvous or its end. When no fiber can run, the waiting groups are released: a warp
// rendezvous once every lane of its mask waits at one with that mask, __syncthreads once every
// thread of the block waits at the same one. Anything else is a fault that fails the launch: a
// barrier some thread never reaches, lanes of a mask at different rendezvous, a lane that
// exited, a shuffle from a lane outside the mask, shared memory beyond the limit. Threads take
// their turns in forward, reverse or random order (the settings); shared memory starts as NaN
// (every byte 0xff) in every block.
#include "fiber.h"
#include "internal.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <vector>

#include "sanitizers.h"
#ifdef CUDA_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace cuda_emu {

namespace {

constexpr size_t k_static_shared_max = 48u << 10; // static __shared__ per block, on every architecture
constexpr size_t k_gap = 64;                       // poisoned bytes between shared arrays (ASan)
constexpr size_t k_arena_bytes = (232448u + k_static_shared_max + 64 * k_gap + 4095) / 4096 * 4096;

enum class RunState { ready, at_barrier, at_warp, done, faulted };
enum class WarpOp { sync, shuffle, vote };

struct Thread {
    Fiber fiber;
    ThreadPlace place;
    int linear = 0;
    RunState state = RunState::ready;
    // What it waits at.
    const char* file = nullptr;
    int line = 0;
    WarpOp op = WarpOp::sync;
    unsigned mask = 0;
    ShuffleOp shuffle_op = ShuffleOp::idx;
    int operand = 0, width = 32;
    size_t bytes = 0;
    bool pred = false;
    alignas(16) unsigned char value[16];
    alignas(16) unsigned char result[16];
    unsigned ballot = 0;
};

struct StaticArray {
    const void* key;
    size_t offset, bytes;
    const char* name;
};

struct Block {
    KernelLaunch* k = nullptr;
    uint3 idx{};
    unsigned threads = 0;
    std::string fault;
    std::vector<StaticArray> statics;
    size_t static_bytes = 0; // declared so far, as a GPU counts them
    size_t static_top = 0;   // arena offset past the last static array
};

// Per OS thread (a stream's worker): the fibers and the shared memory arena, kept for reuse.
struct Worker {
    std::vector<std::unique_ptr<Thread>> threads;
    unsigned char* arena = nullptr;
    size_t dirty = 0; // arena bytes a block may have touched
    Block* block = nullptr;
    Thread* current = nullptr;
    Worker() {
        if (posix_memalign(reinterpret_cast<void**>(&arena), 4096, k_arena_bytes) != 0) std::abort();
        dirty = k_arena_bytes;
    }
    ~Worker() { std::free(arena); }
};
thread_local Worker t_worker;

std::string dim_text(uint3 d) {
    return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

std::string where(const char* file, int line) {
    std::string f = file ? file : "?";
    for (const char* root : {"/kernels/", "/src/", "/tests/"}) {
        const size_t p = f.rfind(root);
        if (p != std::string::npos) {
            f = f.substr(p + 1);
            break;
        }
    }
    return f + ":" + std::to_string(line);
}

std::string thread_text(const Thread& t) { return "thread " + dim_text(t.place.thread_idx); }

// From inside a fiber: this thread breaks a rule. record_fault keeps the message, then
// abandon() leaves the fiber for good; its block stops. Two steps, so that the message's
// temporaries are gone before the fiber is (an abandoned frame's objects are never destroyed).
void record_fault(const std::string& what) {
    Worker& w = t_worker;
    if (w.block->fault.empty()) w.block->fault = thread_text(*w.current) + ": " + what;
}

[[noreturn]] void abandon() {
    t_worker.current->state = RunState::faulted;
    Fiber::yield();
    std::abort(); // a faulted fiber is never resumed
}

Thread& self(const char* what) {
    Worker& w = t_worker;
    if (!w.current) {
        std::fprintf(stderr, "cuda-emu: %s called outside a kernel\n", what);
        std::abort();
    }
    return *w.current;
}

void thread_main(void* p) {
    Thread* t = static_cast<Thread*>(p);
    t_worker.block->k->body->run();
    t->state = RunState::done;
}

// A warp's lanes as a bit set, and lane numbers within it.
int lane_of(const Thread& t) { return t.linear & 31; }

std::vector<int> schedule(size_t n, Order order, std::mt19937_64& rng) {
    std::vector<int> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = int(i);
    if (order == Order::reverse) std::reverse(v.begin(), v.end());
    if (order == Order::random) std::shuffle(v.begin(), v.end(), rng);
    return v;
}

int shuffle_source(ShuffleOp op, int lane, int operand, int width) {
    const int base = lane / width * width;
    switch (op) {
    case ShuffleOp::idx: return base + ((operand % width) + width) % width;
    case ShuffleOp::up: return lane - operand >= base ? lane - operand : lane;
    case ShuffleOp::down: return lane + operand < base + width ? lane + operand : lane;
    case ShuffleOp::bfly: {
        const int s = lane ^ operand;
        return s < base + width ? s : lane; // a later group's lane: its own value, as the hardware does
    }
    }
    return lane;
}

const char* op_name(WarpOp op) {
    switch (op) {
    case WarpOp::sync: return "__syncwarp";
    case WarpOp::shuffle: return "a shuffle";
    case WarpOp::vote: return "a vote";
    }
    return "?";
}

std::string waits_text(const Thread& t) {
    std::ostringstream s;
    if (t.state == RunState::done) return "has exited";
    if (t.state == RunState::at_barrier) return "waits at __syncthreads (" + where(t.file, t.line) + ")";
    s << "waits at " << op_name(t.op) << " with mask 0x" << std::hex << t.mask << std::dec << " ("
      << where(t.file, t.line) << ")";
    return s.str();
}

// Releases every warp group whose lanes all wait at a matching rendezvous. Returns how many
// threads it released; sets the block's fault on a mismatch.
size_t release_warps(std::vector<std::unique_ptr<Thread>>& ts, unsigned count, Block& b) {
    size_t released = 0;
    for (unsigned w0 = 0; w0 < count; w0 += 32) {
        const unsigned lanes = std::min(32u, count - w0);
        for (unsigned l = 0; l < lanes; ++l) {
            Thread& t = *ts[w0 + l];
            if (t.state != RunState::at_warp) continue;
            const unsigned mask = t.mask;
            bool ready = true;
            for (unsigned m = 0; m < 32 && ready; ++m) {
                if (!((mask >> m) & 1)) continue;
                if (m >= lanes) {
                    b.fault = thread_text(t) + ": " + op_name(t.op) + " at " + where(t.file, t.line) + " names lane " +
                              std::to_string(m) + ", which this block does not have";
                    return released;
                }
                const Thread& o = *ts[w0 + m];
                if (o.state == RunState::at_warp && o.mask == mask && o.op == t.op &&
                    (t.op != WarpOp::shuffle || (o.bytes == t.bytes && o.width == t.width)))
                    continue;
                std::ostringstream s;
                s << thread_text(t) << " waits at " << op_name(t.op) << " with mask 0x" << std::hex << mask << std::dec
                  << " (" << where(t.file, t.line) << ") but lane " << m << " (" << thread_text(o) << ") "
                  << waits_text(o);
                b.fault = s.str();
                return released;
            }
            if (!ready) continue;
            // Every lane of the mask is here: compute each one's result, then let them go.
            unsigned ballot = 0;
            for (unsigned m = 0; m < 32; ++m)
                if (((mask >> m) & 1) && ts[w0 + m]->pred) ballot |= 1u << m;
            for (unsigned m = 0; m < 32; ++m) {
                if (!((mask >> m) & 1)) continue;
                Thread& o = *ts[w0 + m];
                if (o.op == WarpOp::shuffle) {
                    const int src = shuffle_source(o.shuffle_op, int(m), o.operand, o.width);
                    if (!((mask >> src) & 1)) {
                        std::ostringstream s;
                        s << thread_text(o) << ": the shuffle at " << where(o.file, o.line) << " reads lane " << src
                          << ", which is not in its mask 0x" << std::hex << mask;
                        b.fault = s.str();
                        return released;
                    }
                    std::memcpy(o.result, ts[w0 + unsigned(src)]->value, o.bytes);
                } else if (o.op == WarpOp::vote) {
                    o.ballot = ballot;
                }
            }
            for (unsigned m = 0; m < 32; ++m)
                if ((mask >> m) & 1) {
                    ts[w0 + m]->state = RunState::ready;
                    ++released;
                }
        }
    }
    return released;
}

// Releases __syncthreads when every thread of the block waits at the same one.
size_t release_barrier(std::vector<std::unique_ptr<Thread>>& ts, unsigned count, Block& b) {
    const Thread* first = nullptr;
    size_t waiting = 0;
    for (unsigned i = 0; i < count; ++i) {
        const Thread& t = *ts[i];
        if (t.state != RunState::at_barrier) continue;
        ++waiting;
        if (!first) first = &t;
    }
    if (!first) return 0;
    for (unsigned i = 0; i < count; ++i) {
        const Thread& t = *ts[i];
        if (t.state == RunState::at_barrier && (t.line == first->line && std::strcmp(t.file, first->file) == 0)) continue;
        if (t.state == RunState::done) {
            // Name the range of threads that left.
            unsigned j = i;
            while (j + 1 < count && ts[j + 1]->state == RunState::done) ++j;
            b.fault = "__syncthreads at " + where(first->file, first->line) + " is not reached by every thread of the block: " +
                      thread_text(t) + (j > i ? " to " + thread_text(*ts[j]) : std::string()) + " exited before it";
        } else {
            b.fault = thread_text(*first) + " waits at __syncthreads (" + where(first->file, first->line) + ") but " +
                      thread_text(t) + " " + waits_text(t);
        }
        return 0;
    }
    for (unsigned i = 0; i < count; ++i) ts[i]->state = RunState::ready;
    return waiting;
}

void prepare_shared(Worker& w, size_t dynamic_bytes) {
#ifdef CUDA_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(w.arena, k_arena_bytes);
#endif
    std::memset(w.arena, 0xff, std::min(k_arena_bytes, std::max(w.dirty, dynamic_bytes)));
#ifdef CUDA_EMU_ASAN
    ASAN_POISON_MEMORY_REGION(w.arena, k_arena_bytes);
    ASAN_UNPOISON_MEMORY_REGION(w.arena, dynamic_bytes);
#endif
    w.dirty = dynamic_bytes;
}

bool run_block(KernelLaunch& k, uint3 idx, std::mt19937_64& rng) {
    Worker& w = t_worker;
    Block b;
    b.k = &k;
    b.idx = idx;
    b.threads = k.block.x * k.block.y * k.block.z;
    b.static_top = (k.dynamic_shared + k_gap + 255) / 256 * 256;
    prepare_shared(w, k.dynamic_shared);
    while (w.threads.size() < b.threads) w.threads.push_back(std::make_unique<Thread>());
    for (unsigned i = 0; i < b.threads; ++i) {
        Thread& t = *w.threads[i];
        t.linear = int(i);
        t.state = RunState::ready;
        t.place.thread_idx = uint3{i % k.block.x, i / k.block.x % k.block.y, i / (k.block.x * k.block.y)};
        t.place.block_idx = idx;
        t.place.block_dim = k.block;
        t.place.grid_dim = k.grid;
        t.fiber.prepare(&thread_main, &t);
    }
    w.block = &b;
    unsigned finished = 0;
    for (;;) {
        for (int i : schedule(b.threads, k.order, rng)) {
            Thread& t = *w.threads[size_t(i)];
            if (t.state != RunState::ready) continue;
            w.current = &t;
            t_place = &t.place;
            t.fiber.resume();
            w.current = nullptr;
            t_place = nullptr;
            if (t.state == RunState::done) ++finished;
            if (!b.fault.empty()) break;
        }
        if (!b.fault.empty() || finished == b.threads) break;
        size_t released = release_warps(w.threads, b.threads, b);
        if (!b.fault.empty()) break;
        if (released == 0) released = release_barrier(w.threads, b.threads, b);
        if (!b.fault.empty()) break;
        if (released == 0) {
            // Nothing can move: every thread waits at a rendezvous some lane will never reach.
            for (unsigned i = 0; i < b.threads && b.fault.empty(); ++i)
                if (w.threads[i]->state != RunState::done)
                    b.fault = "deadlock: " + thread_text(*w.threads[i]) + " " + waits_text(*w.threads[i]) +
                              " and nothing else can run";
            break;
        }
    }
    w.block = nullptr;
    w.dirty = std::max(w.dirty, b.static_top);
    if (b.fault.empty()) return true;
    raise_fault(cudaErrorLaunchFailure, "kernel " + k.name + " block " + dim_text(idx) + ": " + b.fault);
    return false;
}

} // namespace

bool run_kernel(KernelLaunch& k) {
    std::mt19937_64 rng(current_settings().seed * 0x9e3779b97f4a7c15ull + k.id);
    const uint64_t blocks = uint64_t(k.grid.x) * k.grid.y * k.grid.z;
    std::vector<int> order;
    if (k.order != Order::forward && blocks <= (1u << 24)) order = schedule(size_t(blocks), k.order, rng);
    for (uint64_t n = 0; n < blocks; ++n) {
        const uint64_t b = order.empty() ? n : uint64_t(order[size_t(n)]);
        const uint3 idx{unsigned(b % k.grid.x), unsigned(b / k.grid.x % k.grid.y), unsigned(b / (uint64_t(k.grid.x) * k.grid.y))};
        if (!run_block(k, idx, rng)) return false;
    }
    return true;
}

// ---- what the kernels call -----------------------------------------------------------------

void sync_block(const char* file, int line) {
    Thread& t = self("__syncthreads");
    t.state = RunState::at_barrier;
    t.file = file;
    t.line = line;
    Fiber::yield();
}

namespace {

void warp_wait(Thread& t, WarpOp op, unsigned mask, const char* file, int line) {
    const int lane = lane_of(t);
    if (!((mask >> lane) & 1)) {
        {
            std::ostringstream s;
            s << op_name(op) << " at " << where(file, line) << " with mask 0x" << std::hex << mask << std::dec
              << " does not include the calling lane " << lane;
            record_fault(s.str());
        }
        abandon();
    }
    t.state = RunState::at_warp;
    t.op = op;
    t.mask = mask;
    t.file = file;
    t.line = line;
    Fiber::yield();
}

} // namespace

void sync_warp(unsigned mask, const char* file, int line) {
    Thread& t = self("__syncwarp");
    warp_wait(t, WarpOp::sync, mask, file, line);
}

void shuffle(unsigned mask, const void* value, void* out, size_t bytes, ShuffleOp op, int operand, int width,
             const char* file, int line) {
    Thread& t = self("__shfl_*_sync");
    if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        record_fault("a shuffle at " + where(file, line) + " with width " + std::to_string(width) +
                     " (a power of 2 up to 32)");
        abandon();
    }
    std::memcpy(t.value, value, bytes);
    t.bytes = bytes;
    t.shuffle_op = op;
    t.operand = operand;
    t.width = width;
    warp_wait(t, WarpOp::shuffle, mask, file, line);
    std::memcpy(out, t.result, bytes);
}

unsigned vote(unsigned mask, bool pred, const char* file, int line) {
    Thread& t = self("__ballot_sync");
    t.pred = pred;
    warp_wait(t, WarpOp::vote, mask, file, line);
    return t.ballot;
}

void* shared_dynamic() {
    self("dynamic shared memory");
    return t_worker.arena;
}

void* shared_static(const void* key, size_t bytes, size_t align, const char* name) {
    Worker& w = t_worker;
    self("shared memory");
    Block& b = *w.block;
    for (const StaticArray& a : b.statics)
        if (a.key == key) return w.arena + a.offset;
    const size_t offset = (b.static_top + std::max<size_t>(align, 16) - 1) / std::max<size_t>(align, 16) * std::max<size_t>(align, 16);
    b.static_bytes += bytes;
    if (b.static_bytes > k_static_shared_max) {
        record_fault("static shared memory beyond 48 KiB: " + std::to_string(b.static_bytes) + " bytes with " + name);
        abandon();
    }
    if (b.static_bytes + b.k->dynamic_shared > b.k->shared_limit) {
        record_fault("shared memory beyond the limit: " + std::to_string(b.static_bytes) + " static (with " + name +
                     ") + " + std::to_string(b.k->dynamic_shared) + " dynamic > " + std::to_string(b.k->shared_limit) +
                     " bytes");
        abandon();
    }
    if (offset + bytes > k_arena_bytes) {
        record_fault("the emulator's shared memory arena is full");
        abandon();
    }
    b.statics.push_back({key, offset, bytes, name});
    b.static_top = offset + bytes + k_gap;
#ifdef CUDA_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(w.arena + offset, bytes);
#endif
    return w.arena + offset;
}

void device_fault(const char* what, const char* file, int line) {
    record_fault(std::string(what) + " at " + where(file, line));
    abandon();
}

} // namespace cuda_emu
