// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/cuda_transport.h"

#include "backend/cuda/check.h"

namespace rabbit {

CudaTransport::CudaTransport(int device, size_t slots, uint64_t slot_bytes, cudaStream_t compute)
    : device_(device), slot_bytes_(slot_bytes), compute_(compute) {
    copies_.set_trace(trace::Track::copy_engine);
    try {
        create(slots, slot_bytes);
    } catch (...) {
        destroy(); // a destructor does not run after a constructor throws
        throw;
    }
}

void CudaTransport::create(size_t slots, uint64_t slot_bytes) {
    RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
    slots_.resize(slots);
    for (Slot& s : slots_) {
        s.staging = PinnedBuffer(slot_bytes, false);
        s.device = DeviceBuffer(slot_bytes);
        // The loader waits on `copied` from the host: sleep in the driver rather than spin a
        // core that the fill threads need.
        s.copied = CudaEvent(cudaEventDisableTiming | cudaEventBlockingSync);
        s.freed = CudaEvent(cudaEventDisableTiming);
    }
}

CudaTransport::~CudaTransport() { destroy(); }

void CudaTransport::destroy() {
    // The ring has stopped; let queued copies land before their buffers go.
    if (copy_) cudaStreamSynchronize(copy_);
    slots_.clear(); // their events and buffers
    if (copy_) cudaStreamDestroy(copy_);
    copy_ = nullptr;
}

void CudaTransport::loader_started() { RABBIT_CUDA_CHECK(cudaSetDevice(device_)); }

void CudaTransport::wait_staging_free(size_t s) { RABBIT_CUDA_CHECK(cudaEventSynchronize(slots_[s].copied.get())); }

void CudaTransport::copy(size_t s, const uint8_t* src, uint64_t bytes, const std::string& label) {
    Slot& slot = slots_[s];
    RABBIT_CUDA_CHECK(cudaStreamWaitEvent(copy_, slot.freed.get(), 0));
    copies_.begin(copy_, label); // after the wait for the slot: the span is the copy alone
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(slot.device.get(), src, bytes, cudaMemcpyHostToDevice, copy_));
    copies_.end(copy_);
    RABBIT_CUDA_CHECK(cudaEventRecord(slot.copied.get(), copy_));
}

void CudaTransport::arrival_wanted() { stalls_.begin(compute_); }

void CudaTransport::wait_arrival(size_t s) {
    RABBIT_CUDA_CHECK(cudaStreamWaitEvent(compute_, slots_[s].copied.get(), 0));
    stalls_.end(compute_);
}

void CudaTransport::release(size_t s) { RABBIT_CUDA_CHECK(cudaEventRecord(slots_[s].freed.get(), compute_)); }

} // namespace rabbit
