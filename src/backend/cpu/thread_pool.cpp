// SPDX-License-Identifier: Apache-2.0
#include "backend/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>

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
} // namespace

ThreadPool::ThreadPool(size_t threads) {
    if (threads == 0) threads = std::max<size_t>(1, std::thread::hardware_concurrency());
    for (size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_.store(true);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::worker(size_t index) {
    size_t seen = 0;
    for (;;) {
        // Spin, then sleep, until a new job (or the end) appears.
        const auto spin_until = std::chrono::steady_clock::now() + k_spin;
        size_t gen;
        int spins = 0;
        while ((gen = generation_.load(std::memory_order_acquire)) == seen && !stop_.load(std::memory_order_relaxed)) {
            RABBIT_PAUSE();
            if (++spins % 256 == 0 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load() != seen || stop_.load(); });
            }
        }
        if (stop_.load()) return;
        seen = gen;
        if (index < chunks_) {
            const size_t b = index * chunk_, e = std::min(job_n_, b + chunk_);
            if (b < e) (*job_)(b, e);
        }
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t grain) {
    if (n == 0) return;
    const size_t chunks = std::min(size(), std::max<size_t>(1, n / std::max<size_t>(1, grain)));
    if (chunks <= 1 || workers_.empty()) {
        fn(0, n);
        return;
    }
    job_ = &fn;
    job_n_ = n;
    chunk_ = (n + chunks - 1) / chunks;
    chunks_ = chunks;
    pending_.store(workers_.size(), std::memory_order_relaxed);
    {
        // Under the mutex, so that a worker about to sleep sees the new generation.
        std::lock_guard<std::mutex> lock(mutex_);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    fn(0, std::min(n, chunk_)); // chunk 0 on the calling thread
    while (pending_.load(std::memory_order_acquire) != 0) RABBIT_PAUSE();
}

} // namespace rabbit
