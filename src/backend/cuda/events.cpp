// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/events.h"

#include "backend/cuda/check.h"

#include <utility>

namespace rabbit {

CudaEvent::CudaEvent(unsigned flags) { RABBIT_CUDA_CHECK(cudaEventCreateWithFlags(&e_, flags)); }

CudaEvent::~CudaEvent() {
    if (e_) cudaEventDestroy(e_);
}

CudaEvent::CudaEvent(CudaEvent&& o) noexcept : e_(std::exchange(o.e_, nullptr)) {}

CudaEvent& CudaEvent::operator=(CudaEvent&& o) noexcept {
    if (this != &o) {
        CudaEvent old(std::move(*this));
        e_ = std::exchange(o.e_, nullptr);
    }
    return *this;
}

} // namespace rabbit
