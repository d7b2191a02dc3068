// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/link.h"

#include "backend/cuda/check.h"
#include "backend/cuda/events.h"
#include "backend/cuda/memory.h"
#include "common/timing.h"

#include <cuda_runtime.h>

#include <cstring>
#include <memory>
#include <vector>

namespace rabbit {

namespace {

struct Stream {
    cudaStream_t s = nullptr;
    CudaEvent a{cudaEventDefault}, b{cudaEventDefault}; // timed: around each copy
    Stream() { RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)); }
    ~Stream() {
        if (s) cudaStreamDestroy(s);
    }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
};

double copy_rate(void* dst, const void* src, uint64_t bytes, int repeats, Stream& st) {
    std::vector<double> rates;
    for (int r = -1; r < repeats; ++r) { // the first is not timed: it pays for first-touch costs
        RABBIT_CUDA_CHECK(cudaEventRecord(st.a.get(), st.s));
        RABBIT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st.s));
        RABBIT_CUDA_CHECK(cudaEventRecord(st.b.get(), st.s));
        RABBIT_CUDA_CHECK(cudaEventSynchronize(st.b.get()));
        float ms = 0;
        RABBIT_CUDA_CHECK(cudaEventElapsedTime(&ms, st.a.get(), st.b.get()));
        if (r >= 0 && ms > 0) rates.push_back(double(bytes) / (double(ms) / 1e3));
    }
    return median(rates);
}

} // namespace

LinkBandwidth measure_link(int device, uint64_t bytes, int repeats) {
    RABBIT_CUDA_CHECK(cudaSetDevice(device));
    LinkBandwidth l;
    l.bytes = bytes;
    DeviceBuffer dst(bytes);
    Stream st;
    {
        PinnedBuffer pinned(bytes, false);
        std::memset(pinned.get(), 1, bytes);
        l.pinned_bps = copy_rate(dst.get(), pinned.get(), bytes, repeats, st);
    }
    std::unique_ptr<uint8_t[]> pageable(new uint8_t[bytes]);
    std::memset(pageable.get(), 1, bytes);
    l.pageable_bps = copy_rate(dst.get(), pageable.get(), bytes, repeats, st);
    return l;
}

} // namespace rabbit
