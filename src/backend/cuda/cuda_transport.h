// SPDX-License-Identifier: Apache-2.0
// The ring's transport on a GPU: each slot a pinned host buffer and a device buffer, copies
// queued on a copy stream of their own, and events that order them against the compute
// stream without the host waiting: the copy into a slot waits (on the GPU) for the event the
// consumer recorded when it released the slot; the consumer's stream waits for the copy's.
#pragma once

#include "backend/cuda/events.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/spans.h"
#include "stream/ring.h"

#include <cuda_runtime.h>

#include <vector>

namespace rabbit {

class CudaTransport : public RingTransport {
public:
    CudaTransport(int device, size_t slots, uint64_t slot_bytes, cudaStream_t compute);
    ~CudaTransport() override;
    CudaTransport(const CudaTransport&) = delete;
    CudaTransport& operator=(const CudaTransport&) = delete;

    size_t slots() const override { return slots_.size(); }
    uint64_t slot_bytes() const override { return slot_bytes_; }
    uint8_t* staging(size_t s) override { return slots_[s].staging.as<uint8_t>(); }
    uint8_t* device(size_t s) override { return slots_[s].device.as<uint8_t>(); }
    void loader_started() override;
    void wait_staging_free(size_t s) override;
    void copy(size_t s, const uint8_t* src, uint64_t bytes, const std::string& label) override;
    void arrival_wanted() override;
    void wait_arrival(size_t s) override;
    void release(size_t s) override;

    // GPU time so far, in copies that have landed: the copy engine busy with weights, and the
    // compute stream idle from the moment it wanted a piece until the piece was there.
    double copy_seconds() const { return copies_.seconds(); }
    double stall_seconds() const { return stalls_.seconds(); }

private:
    void create(size_t slots, uint64_t slot_bytes);
    void destroy();
    struct Slot {
        PinnedBuffer staging;
        DeviceBuffer device;
        CudaEvent copied; // the last copy into the device buffer (and out of staging) is done
        CudaEvent freed;  // the consumer's work on the device buffer is done
    };
    int device_;
    uint64_t slot_bytes_;
    cudaStream_t compute_, copy_ = nullptr;
    std::vector<Slot> slots_;
    GpuSpans copies_, stalls_;
};

} // namespace rabbit
