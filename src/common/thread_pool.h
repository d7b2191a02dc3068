// SPDX-License-Identifier: Apache-2.0
// A fixed pool of worker threads for the CPU backend's loops: parallel_for splits [0, n) into
// contiguous blocks, a few per thread, that the threads take in turn, and returns when all
// are done. A decode step runs
// about a hundred of them, so handing out work must cost microseconds: workers spin a
// while on the job counter before they sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rabbit {

class ThreadPool {
public:
    explicit ThreadPool(size_t threads); // 0: one per usable processor (usable_cpus)
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    size_t size() const { return workers_.size() + 1; } // the caller works too

    // fn(begin, end) over disjoint blocks covering [0, n); blocks hold at least `grain` items.
    void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t grain = 1);

private:
    void worker();
    void run_blocks();

    std::vector<std::thread> workers_;
    // The job: published by bumping generation_ (release), read after seeing it (acquire).
    const std::function<void(size_t, size_t)>* job_ = nullptr;
    size_t job_n_ = 0, block_ = 0, blocks_ = 0;
    std::atomic<size_t> next_{0}; // the next block to take
    std::atomic<size_t> generation_{0};
    std::atomic<size_t> pending_{0};
    std::atomic<bool> stop_{false};
    // For workers that waited long enough to sleep.
    std::mutex mutex_;
    std::condition_variable wake_;
};

// fn(from, to) over [0, bytes) in 4 MiB blocks that the pool's threads take in turn (all on
// the caller when pool is null or bytes is one block).
void parallel_blocks(ThreadPool* pool, uint64_t bytes, const std::function<void(uint64_t, uint64_t)>& fn);

// memcpy of a large buffer in 4 MiB blocks that the pool's threads take in turn, so that page
// faults on a mapped file (reads from the disk) run side by side. pool may be null.
void parallel_memcpy(ThreadPool* pool, void* dst, const void* src, uint64_t bytes);

} // namespace rabbit
