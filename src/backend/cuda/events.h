// SPDX-License-Identifier: Apache-2.0
// A CUDA event that destroys itself: made with its flags, moved (never copied) to where it is
// kept, destroyed with its owner. Empty when default-constructed or moved from.
#pragma once

#include <cuda_runtime.h>

namespace rabbit {

class CudaEvent {
public:
    CudaEvent() = default;
    // flags: cudaEventDefault (timed), or cudaEventDisableTiming and/or cudaEventBlockingSync
    // (the host sleeps in the driver while it waits). Throws through RABBIT_CUDA_CHECK.
    explicit CudaEvent(unsigned flags);
    ~CudaEvent();
    CudaEvent(CudaEvent&& o) noexcept;
    CudaEvent& operator=(CudaEvent&& o) noexcept;
    CudaEvent(const CudaEvent&) = delete;
    CudaEvent& operator=(const CudaEvent&) = delete;

    cudaEvent_t get() const { return e_; }
    explicit operator bool() const { return e_ != nullptr; }

private:
    cudaEvent_t e_ = nullptr;
};

} // namespace rabbit
