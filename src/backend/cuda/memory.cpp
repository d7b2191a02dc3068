// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/memory.h"

#include "backend/cuda/check.h"
#include "common/error.h"
#include "common/units.h"

#include <mutex>
#include <utility>

namespace rabbit {

namespace {

std::mutex g_usage_mutex;
DeviceUsage g_usage;

} // namespace

DeviceUsage device_usage() {
    std::lock_guard<std::mutex> lock(g_usage_mutex);
    return g_usage;
}

DeviceBuffer::DeviceBuffer(uint64_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    const cudaError_t e = cudaMalloc(&p_, bytes);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw Error(ExitCode::resources, "the GPU has no room for " + format_bytes(bytes) + " more (" +
                                             format_bytes(device_usage().now) +
                                             " held by rabbit); lower --vram-budget or --ctx");
    }
    RABBIT_CUDA_CHECK(e);
    std::lock_guard<std::mutex> lock(g_usage_mutex);
    g_usage.now += bytes;
    g_usage.peak = std::max(g_usage.peak, g_usage.now);
}

DeviceBuffer::~DeviceBuffer() {
    if (!p_) return;
    cudaFree(p_);
    std::lock_guard<std::mutex> lock(g_usage_mutex);
    g_usage.now -= bytes_;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
        DeviceBuffer old(std::move(*this));
        p_ = std::exchange(o.p_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
}

PinnedBuffer::PinnedBuffer(uint64_t bytes, bool mapped, bool write_combined) : bytes_(bytes) {
    if (bytes == 0) return;
    const unsigned flags =
        cudaHostAllocPortable | (mapped ? cudaHostAllocMapped : 0) | (write_combined ? cudaHostAllocWriteCombined : 0);
    const cudaError_t e = cudaHostAlloc(&p_, bytes, flags);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        p_ = nullptr;
        throw Error(ExitCode::resources, "cannot pin " + format_bytes(bytes) + " of host memory; lower --ram-budget or --ctx");
    }
    RABBIT_CUDA_CHECK(e);
    if (mapped) RABBIT_CUDA_CHECK(cudaHostGetDevicePointer(&dev_, p_, 0));
}

PinnedBuffer::~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
}

PinnedBuffer::PinnedBuffer(PinnedBuffer&& o) noexcept
    : p_(std::exchange(o.p_, nullptr)), dev_(std::exchange(o.dev_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
        PinnedBuffer old(std::move(*this));
        p_ = std::exchange(o.p_, nullptr);
        dev_ = std::exchange(o.dev_, nullptr);
        bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
}

} // namespace rabbit
