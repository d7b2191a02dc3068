// SPDX-License-Identifier: Apache-2.0
// A fixed pool of worker threads for the CPU backend's loops: parallel_for splits [0, n) into
// contiguous chunks, one per thread, and returns when all are done. A decode step runs
// about a hundred of them, so handing out work must cost microseconds: workers spin a
// while on the job counter before they sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rabbit {

class ThreadPool {
public:
    explicit ThreadPool(size_t threads); // 0: one per hardware thread
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    size_t size() const { return workers_.size() + 1; } // the caller works too

    // fn(begin, end) over disjoint chunks covering [0, n); chunks hold at least `grain` items.
    void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn, size_t grain = 1);

private:
    void worker(size_t index);

    std::vector<std::thread> workers_;
    // The job: published by bumping generation_ (release), read after seeing it (acquire).
    const std::function<void(size_t, size_t)>* job_ = nullptr;
    size_t job_n_ = 0, chunk_ = 0, chunks_ = 0;
    std::atomic<size_t> generation_{0};
    std::atomic<size_t> pending_{0};
    std::atomic<bool> stop_{false};
    // For workers that waited long enough to sleep.
    std::mutex mutex_;
    std::condition_variable wake_;
};

} // namespace rabbit
