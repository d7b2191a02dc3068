// SPDX-License-Identifier: Apache-2.0
// Whether the GPU tests can run here: a binary built with the CUDA backend and a device its
// kernels run on. GPU test cases are tagged [gpu] and begin `if (!gpu_available()) return;`.
// With the CUDA backend, also what the kernel tests share: device buffers, element types,
// checked launches and the timing mode of the op table (tests/test_ops.cpp).
#pragma once

#ifdef RABBIT_HAVE_CUDA
#include "common/dtype.h"
#include "elem.cuh"

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>
#endif

namespace rabbit::test {

// True when the tests can use the first usable CUDA device (made current); otherwise emits a
// visible WARN("SKIPPED: <reason>") in the calling test case and returns false.
bool gpu_available();

#ifdef RABBIT_HAVE_CUDA

// ---- device memory -------------------------------------------------------------------------
class DevBuf {
public:
    explicit DevBuf(size_t bytes);
    DevBuf(const void* host, size_t bytes) : DevBuf(bytes) { upload(host, bytes); }
    DevBuf(DevBuf&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    ~DevBuf();
    void upload(const void* host, size_t bytes);
    void download(void* host, size_t bytes) const;
    void fill(int byte); // every byte; 0xff is NaN in f32, f16 and bf16 alike
    template <typename T = void>
    T* get() const {
        return static_cast<T*>(p_);
    }
    size_t bytes() const { return bytes_; }

private:
    void* p_ = nullptr;
    size_t bytes_ = 0;
};

template <typename T>
DevBuf to_device(const std::vector<T>& v) {
    return DevBuf(v.data(), v.size() * sizeof(T));
}

template <typename T>
std::vector<T> to_host(const DevBuf& b, size_t n) {
    std::vector<T> v(n);
    b.download(v.data(), n * sizeof(T));
    return v;
}

// Pinned host memory mapped into the device's address space (a KV cache in host RAM).
class MappedBuf {
public:
    explicit MappedBuf(size_t bytes);
    MappedBuf(const MappedBuf&) = delete;
    MappedBuf& operator=(const MappedBuf&) = delete;
    ~MappedBuf();
    void* host() const { return host_; }
    void* dev() const { return dev_; }

private:
    void* host_ = nullptr;
    void* dev_ = nullptr;
};

// ---- element types -------------------------------------------------------------------------
DType dtype_of(Elem e);
Elem elem_of(DType t); // f32, f16 or bf16
// v in type e, and back: the values a kernel sees when v is stored in e.
std::vector<uint8_t> encode(const std::vector<float>& v, Elem e);
std::vector<float> decode(const std::vector<uint8_t>& b, Elem e);
std::vector<float> download_as_f32(const DevBuf& b, size_t n, Elem e); // [n] e on the device

// ---- launches ------------------------------------------------------------------------------
void sync(); // the device finished without an error
// Runs `launch` (a kernel launch on the null stream returning its launch error) and requires
// that it launches and the device finishes without an error.
void launch_checked(const std::function<cudaError_t()>& launch);
// In the timing mode, runs `launch` again between CUDA events and adds the median time to the
// current case's; otherwise nothing. Call it once the outputs are read: a kernel that works in
// place has its inputs changed by the reruns, which changes its time no more than its values.
void time_kernel(const std::function<cudaError_t()>& launch);
// The device's opt-in shared memory, once attention_setup has opted the large shapes in to it
// (once per process, as the engine does once per engine).
size_t attention_ready();
int sm_count();

// ---- timing mode ---------------------------------------------------------------------------
// RABBIT_OPS_TIMING=1 on a real GPU (the emulated device's times mean nothing): each op row's
// kernel time per case, from CUDA events, printed as a table. Never asserted.
bool ops_timing();
void timing_start_case(const std::string& label);
void timing_print(const std::string& title); // the cases timed since the last print

#endif // RABBIT_HAVE_CUDA

} // namespace rabbit::test
