// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/spans.h"

#include "backend/cuda/check.h"

namespace rabbit {

namespace {
// Spans not yet read beyond this make the host wait for the oldest half to end: a bound on
// events. The host is then still 128 pieces ahead of the GPU, more than the ring ever needs.
constexpr size_t k_most_pending = 256;
} // namespace

GpuSpans::~GpuSpans() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [a, b] : pending_) {
        cudaEventDestroy(a);
        cudaEventDestroy(b);
    }
    for (cudaEvent_t e : spare_) cudaEventDestroy(e);
    if (open_) cudaEventDestroy(open_);
}

cudaEvent_t GpuSpans::take() {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    if (!spare_.empty()) {
        cudaEvent_t e = spare_.back();
        spare_.pop_back();
        return e;
    }
    cudaEvent_t e = nullptr;
    RABBIT_CUDA_CHECK(cudaEventCreate(&e)); // timed
    return e;
}

void GpuSpans::begin(cudaStream_t stream) {
    if (open_) { // a span begun and never ended (an error came between): not counted
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(open_);
        open_ = nullptr;
    }
    cudaEvent_t e = take();
    if (const cudaError_t err = cudaEventRecord(e, stream); err != cudaSuccess) {
        std::lock_guard<std::mutex> lock(mutex_);
        spare_.push_back(e);
        RABBIT_CUDA_CHECK(err);
    }
    open_ = e;
}

void GpuSpans::end(cudaStream_t stream) {
    if (!open_) return;
    cudaEvent_t e = take();
    const cudaError_t err = cudaEventRecord(e, stream);
    std::lock_guard<std::mutex> lock(mutex_);
    if (err != cudaSuccess) {
        spare_.push_back(e);
        spare_.push_back(open_);
        open_ = nullptr;
        RABBIT_CUDA_CHECK(err);
    }
    pending_.emplace_back(open_, e);
    open_ = nullptr;
    if (pending_.size() > k_most_pending) collect(true);
}

void GpuSpans::collect(bool all) const {
    while (!pending_.empty()) {
        auto [a, b] = pending_.front();
        if (all && pending_.size() > k_most_pending / 2) {
            RABBIT_CUDA_CHECK(cudaEventSynchronize(b));
        } else {
            const cudaError_t e = cudaEventQuery(b);
            if (e == cudaErrorNotReady) {
                cudaGetLastError(); // the runtime records it as this thread's last error: clear it, or the
                return;             // next launcher's cudaGetLastError() would report it
            }
            RABBIT_CUDA_CHECK(e);
        }
        float ms = 0;
        RABBIT_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
        total_ += double(ms) / 1e3;
        pending_.pop_front();
        spare_.push_back(a);
        spare_.push_back(b);
    }
}

double GpuSpans::seconds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    collect(false);
    return total_;
}

} // namespace rabbit
