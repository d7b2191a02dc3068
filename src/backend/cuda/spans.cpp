// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/spans.h"

#include "backend/cuda/check.h"

#include <utility>

namespace rabbit {

namespace {
// Spans not yet read beyond this make the host wait for the oldest half to end: a bound on
// events. The host is then still 128 pieces ahead of the GPU, more than the ring ever needs.
constexpr size_t k_most_pending = 256;
} // namespace

CudaEvent GpuSpans::take() {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    if (!spare_.empty()) {
        CudaEvent e = std::move(spare_.back());
        spare_.pop_back();
        return e;
    }
    return CudaEvent(cudaEventDefault); // timed
}

void GpuSpans::begin(cudaStream_t stream) {
    if (open_) { // a span begun and never ended (an error came between): not counted
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(std::move(open_));
    }
    CudaEvent e = take();
    if (const cudaError_t err = cudaEventRecord(e.get(), stream); err != cudaSuccess) {
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(std::move(e));
        RABBIT_CUDA_CHECK(err);
    }
    open_ = std::move(e);
}

void GpuSpans::end(cudaStream_t stream) {
    if (!open_) return;
    CudaEvent e = take();
    const cudaError_t err = cudaEventRecord(e.get(), stream);
    std::lock_guard<std::mutex> lock(mutex_);
    if (err != cudaSuccess) {
        spare_.push_back(std::move(e));
        spare_.push_back(std::move(open_));
        RABBIT_CUDA_CHECK(err);
    }
    pending_.emplace_back(std::move(open_), std::move(e));
    if (pending_.size() > k_most_pending) collect(true);
}

void GpuSpans::collect(bool all) const {
    while (!pending_.empty()) {
        auto& [a, b] = pending_.front();
        if (all && pending_.size() > k_most_pending / 2) {
            RABBIT_CUDA_CHECK(cudaEventSynchronize(b.get()));
        } else {
            const cudaError_t e = cudaEventQuery(b.get());
            if (e == cudaErrorNotReady) {
                cudaGetLastError(); // the runtime records it as this thread's last error: clear it, or the
                return;             // next launcher's cudaGetLastError() would report it
            }
            RABBIT_CUDA_CHECK(e);
        }
        float ms = 0;
        RABBIT_CUDA_CHECK(cudaEventElapsedTime(&ms, a.get(), b.get()));
        total_ += double(ms) / 1e3;
        spare_.push_back(std::move(a));
        spare_.push_back(std::move(b));
        pending_.pop_front();
    }
}

double GpuSpans::seconds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    return total_;
}

} // namespace rabbit
