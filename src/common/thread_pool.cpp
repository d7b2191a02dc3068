// SPDX-License-Identifier: Apache-2.0
#include "common/thread_pool.h"

#include "common/system.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RABBIT_PAUSE() _mm_pause()
#else
#define RABBIT_PAUSE() std::this_thread::yield()
#endif

namespace rabbit {

namespace {
// How long an idle worker spins before it sleeps: long enough to span the gaps between the
// products of one layer, short enough not to burn a core between tokens for long.
constexpr auto k_spin = std::chrono::microseconds(2000);
// Pauses between yields of a spinning thread: when there are more threads than processors
// (--threads above the cores, a busy machine) the thread waited for may be the one that is
// descheduled, and only giving the processor up lets it run.
constexpr int k_spins_per_yield = 64;

void spin_once(int& spins) {
    if (++spins % k_spins_per_yield == 0)
        std::this_thread::yield();
    else
        RABBIT_PAUSE();
}
} // namespace

ThreadPool::ThreadPool(size_t threads) {
    if (threads == 0) threads = usable_cpus();
    for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { worker(); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker() {
    size_t seen = 0;
    for (;;) {
        // Spin, then sleep, until a new job (or the end) appears.
        const auto spin_until = std::chrono::steady_clock::now() + k_spin;
        size_t gen;
        int spins = 0;
        while ((gen = generation_.load(std::memory_order_acquire)) == seen && !stop_.load(std::memory_order_relaxed)) {
            spin_once(spins);
            if (spins % 256 == 0 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
            }
        }
        if (stop_.load()) return;
        seen = gen;
        run_blocks();
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run_blocks() {
    for (size_t b; (b = next_.fetch_add(1, std::memory_order_relaxed)) < blocks_;)
        (*job_)(b * block_, std::min(job_n_, (b + 1) * block_));
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t grain) {
    if (n == 0) return;
    // Several blocks per thread, taken in turn: items of unequal cost (causal attention) and
    // a thread that runs slow (a shared machine) even out.
    const size_t block = std::max(std::max<size_t>(1, grain), (n + size() * 8 - 1) / (size() * 8));
    const size_t blocks = (n + block - 1) / block;
    if (blocks <= 1 || workers_.empty()) {
        fn(0, n);
        return;
    }
    job_ = &fn;
    job_n_ = n;
    block_ = block;
    blocks_ = blocks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(workers_.size(), std::memory_order_relaxed);
    {
        // Under the mutex, so that a worker about to sleep sees the new generation.
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_blocks(); // the calling thread works too
    int spins = 0;
    while (pending_.load(std::memory_order_acquire) != 0) spin_once(spins);
}

void parallel_blocks(ThreadPool* pool, uint64_t bytes, const std::function<void(uint64_t, uint64_t)>& fn) {
    constexpr uint64_t block = 4ull << 20;
    if (!pool || bytes <= block) return fn(0, bytes);
    pool->parallel_for(size_t((bytes + block - 1) / block), [&](size_t b, size_t e) {
        fn(b * block, std::min<uint64_t>(bytes, e * block));
    });
}

void parallel_memcpy(ThreadPool* pool, void* dst, const void* src, uint64_t bytes) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* s = static_cast<const uint8_t*>(src);
    parallel_blocks(pool, bytes, [&](uint64_t from, uint64_t to) { std::memcpy(d + from, s + from, to - from); });
}

} // namespace rabbit
