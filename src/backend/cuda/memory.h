// SPDX-License-Identifier: Apache-2.0
// Device and pinned host buffers that free themselves, and the count of device bytes rabbit
// holds (its peak is what the stats compare with the budget).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace rabbit {

// Device bytes held by DeviceBuffers now, and at most so far.
struct DeviceUsage {
    uint64_t now = 0, peak = 0;
};
DeviceUsage device_usage();

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(uint64_t bytes); // throws Error(resources) when the GPU has no room
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& o) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void* get() const { return p_; }
    template <typename T> T* as() const { return static_cast<T*>(p_); }
    uint64_t bytes() const { return bytes_; }

private:
    void* p_ = nullptr;
    uint64_t bytes_ = 0;
};

// Page-locked host memory: the GPU copies from it asynchronously; `mapped` also gives the GPU
// a pointer to read and write it directly over the bus (the KV cache when it lives here);
// `write_combined` memory is written (by the GPU, over the bus) in whole bursts, but is slow
// for the CPU to read.
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    PinnedBuffer(uint64_t bytes, bool mapped, bool write_combined = false); // throws Error(resources) when it cannot be pinned
    ~PinnedBuffer();
    PinnedBuffer(PinnedBuffer&& o) noexcept;
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;

    void* get() const { return p_; }
    template <typename T> T* as() const { return static_cast<T*>(p_); }
    void* device_pointer() const { return dev_; } // mapped buffers only
    uint64_t bytes() const { return bytes_; }

private:
    void* p_ = nullptr;
    void* dev_ = nullptr;
    uint64_t bytes_ = 0;
};

} // namespace rabbit
