// SPDX-License-Identifier: Apache-2.0
// The emulated device memory, pinned and mapped host memory, copies and memsets.
//
// Memory. Every cudaMalloc is its own host allocation (so AddressSanitizer sees an overrun);
// builds without ASan put 64 guard bytes behind each one and check them after every kernel,
// GEMM and copy, and when it is freed. The device has a capacity; each allocation takes its
// size rounded up to 2 MiB, the context takes memory when it is made, and each kernel's code a
// share of a 2 MiB chunk at its first launch, so that cudaMemGetInfo and the counted peak see
// what a driver would. Pinned host memory is device-visible at the same address (unified
// addressing). Copies check that their device side lies inside one allocation.
#include "runtime_state.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace cuda_emu {

// ---- regions and guards -----------------------------------------------------------------------

Region find_region(const void* p) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    const uintptr_t a = uintptr_t(p);
    auto it = st.allocs.upper_bound(a);
    if (it != st.allocs.begin()) {
        --it;
        if (a >= it->first && a < it->first + std::max<size_t>(it->second.size, 1))
            return Region{it->second.kind, it->second.device, it->second.flags, it->first, it->second.size};
    }
    return Region{MemKind::pageable, -1, 0, a, 0};
}

bool device_visible(const void* p, size_t bytes) {
    const Region r = find_region(p);
    if (r.kind == MemKind::pageable) return false;
    return uintptr_t(p) + bytes <= r.begin + r.size;
}

int64_t host_alloc_flags(const void* p) {
    const Region r = find_region(p);
    return r.kind == MemKind::pinned ? int64_t(r.flags) : -1;
}

void check_guards(const char* after) {
    if (!guarded()) return;
    State& st = state();
    std::string bad;
    {
        std::lock_guard<std::mutex> lock(st.m);
        for (const auto& [begin, a] : st.allocs) {
            if (a.kind != MemKind::device) continue;
            const auto* g = reinterpret_cast<const unsigned char*>(begin + a.size);
            for (size_t i = 0; i < k_guard; ++i)
                if (g[i] != k_guard_byte) {
                    char text[200];
                    std::snprintf(text, sizeof text, "device buffer overrun: the %zu-byte allocation at %p was written "
                                  "past its end (its guard byte at end + %zu changed; seen after %s)", a.size,
                                  reinterpret_cast<void*>(begin), i, after);
                    bad = text;
                    std::memset(const_cast<unsigned char*>(g), k_guard_byte, k_guard); // report it once
                    break;
                }
            if (!bad.empty()) break;
        }
    }
    if (!bad.empty()) raise_fault(cudaErrorIllegalAddress, bad);
}

} // namespace cuda_emu

using namespace cuda_emu;

// ---- the runtime API: memory -----------------------------------------------------------------

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
    if (!ptr) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    *ptr = nullptr;
    if (bytes == 0) return cudaSuccess;
    const uint64_t charged = round_page(bytes);
    if (!charge_device(t_device, charged)) return set_error(cudaErrorMemoryAllocation);
    void* p = nullptr;
    if (posix_memalign(&p, 256, bytes + (guarded() ? k_guard : 0)) != 0) {
        uncharge_device(t_device, charged);
        return set_error(cudaErrorMemoryAllocation);
    }
    if (guarded()) std::memset(static_cast<unsigned char*>(p) + bytes, k_guard_byte, k_guard);
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    st.allocs[uintptr_t(p)] = Alloc{MemKind::device, t_device, 0, bytes, charged};
    ++st.counters.device_allocations;
    Device& d = st.devices[size_t(t_device)];
    d.allocated += charged;
    d.allocated_peak = std::max(d.allocated_peak, d.allocated);
    *ptr = p;
    return cudaSuccess;
}

namespace {

// Frees a device or pinned allocation that starts at p.
cudaError_t free_alloc(void* p, MemKind kind) {
    if (!p) return cudaSuccess;
    Alloc a{};
    {
        State& st = state();
        std::lock_guard<std::mutex> lock(st.m);
        const auto it = st.allocs.find(uintptr_t(p));
        if (it == st.allocs.end() || it->second.kind != kind) return set_error(cudaErrorInvalidValue);
        a = it->second;
        st.allocs.erase(it);
    }
    if (kind == MemKind::device) {
        // Freeing waits for the device to finish with it, as cudaFree does.
        std::vector<std::shared_ptr<Stream>> all;
        {
            std::lock_guard<std::mutex> lock(state().m);
            for (const auto& [h, s] : state().streams) all.push_back(s);
            for (const auto& d : state().devices)
                if (d.legacy) all.push_back(d.legacy);
        }
        for (const auto& s : all) s->wait_idle();
        if (guarded()) {
            const auto* g = static_cast<const unsigned char*>(p) + a.size;
            for (size_t i = 0; i < k_guard; ++i)
                if (g[i] != k_guard_byte) {
                    char text[160];
                    std::snprintf(text, sizeof text, "device buffer overrun: the %zu-byte allocation at %p was written past "
                                  "its end (seen when it was freed)", a.size, p);
                    raise_fault(cudaErrorIllegalAddress, text);
                    break;
                }
        }
        uncharge_device(a.device, a.charged);
        std::lock_guard<std::mutex> lock(state().m);
        state().devices[size_t(a.device)].allocated -= a.charged;
    }
    std::free(p);
    return cudaSuccess;
}

} // namespace

cudaError_t cudaFree(void* ptr) {
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    return free_alloc(ptr, MemKind::device);
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    if (!free_bytes || !total_bytes) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    std::lock_guard<std::mutex> lock(state().m);
    const uint64_t used = state().devices[size_t(t_device)].used, total = state().settings.memory;
    *free_bytes = used < total ? size_t(total - used) : 0;
    *total_bytes = size_t(total);
    return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned flags) {
    if (!ptr || (flags & ~(cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined)) != 0)
        return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    *ptr = nullptr;
    void* p = nullptr;
    if (posix_memalign(&p, 4096, bytes ? bytes : 1) != 0) return set_error(cudaErrorMemoryAllocation);
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    st.allocs[uintptr_t(p)] = Alloc{MemKind::pinned, t_device, flags, bytes, 0};
    ++st.counters.host_allocations;
    if (flags & cudaHostAllocWriteCombined) ++st.counters.write_combined_allocations;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) { return cudaHostAlloc(ptr, bytes, cudaHostAllocDefault); }

cudaError_t cudaFreeHost(void* ptr) {
    EMU_STICKY();
    return free_alloc(ptr, MemKind::pinned);
}

cudaError_t cudaHostGetDevicePointer(void** device_ptr, void* host_ptr, unsigned flags) {
    if (!device_ptr || flags != 0) return set_error(cudaErrorInvalidValue);
    EMU_STICKY();
    const Region r = find_region(host_ptr);
    if (r.kind != MemKind::pinned || !(r.flags & cudaHostAllocMapped)) return set_error(cudaErrorInvalidValue);
    *device_ptr = host_ptr; // unified addressing: the same address on both sides
    return cudaSuccess;
}

namespace {

const char* kind_name(MemKind k) { return k == MemKind::device ? "device" : k == MemKind::pinned ? "pinned host" : "pageable host"; }

// Checks one side of a copy: a device side must lie inside one device-visible allocation.
cudaError_t check_side(const void* p, size_t span, bool device_side, const char* which, cudaMemcpyKind kind) {
    if (span == 0) return cudaSuccess;
    if (!p) return cudaErrorInvalidValue;
    const Region r = find_region(p);
    if (device_side) {
        if (r.kind == MemKind::pageable) {
            std::fprintf(stderr, "cuda-emu: copy (kind %d): its %s %p is not device memory\n", int(kind), which, p);
            return cudaErrorInvalidValue;
        }
        if (uintptr_t(p) + span > r.begin + r.size) {
            std::fprintf(stderr, "cuda-emu: copy (kind %d): its %s [%p, +%zu) runs %zu bytes past the end of its %s "
                         "allocation of %zu bytes\n", int(kind), which, p, span, size_t(uintptr_t(p) + span - r.begin - r.size),
                         kind_name(r.kind), r.size);
            return cudaErrorInvalidValue;
        }
    } else if (r.kind == MemKind::device) {
        std::fprintf(stderr, "cuda-emu: copy (kind %d): its %s %p is device memory, not host memory\n", int(kind), which, p);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}

struct Copy2D {
    void* dst;
    size_t dpitch;
    const void* src;
    size_t spitch, width, height;
};

void do_copy(const Copy2D& c) {
    for (size_t r = 0; r < c.height; ++r)
        std::memmove(static_cast<unsigned char*>(c.dst) + r * c.dpitch, static_cast<const unsigned char*>(c.src) + r * c.spitch,
                     c.width);
}

// Every copy: checked, then queued (pinned or device host side), or done at once after the
// stream's earlier work (a pageable host side, as the driver does).
cudaError_t copy(const Copy2D& c, cudaMemcpyKind kind, cudaStream_t stream, bool async) {
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    if (c.width > c.dpitch && c.height > 1) return set_error(cudaErrorInvalidValue);
    if (c.width > c.spitch && c.height > 1) return set_error(cudaErrorInvalidValue);
    if (c.width == 0 || c.height == 0) return cudaSuccess;
    const size_t dspan = c.dpitch * (c.height - 1) + c.width, sspan = c.spitch * (c.height - 1) + c.width;
    if (kind == cudaMemcpyDefault) {
        const bool dd = find_region(c.dst).kind != MemKind::pageable, sd = find_region(c.src).kind == MemKind::device;
        kind = sd ? (find_region(c.dst).kind == MemKind::device ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                  : (dd && find_region(c.dst).kind == MemKind::device ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    }
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDeviceToDevice) return set_error(cudaErrorInvalidMemcpyDirection);
    if (const cudaError_t e = check_side(c.dst, dspan, dst_dev, "destination", kind); e != cudaSuccess) return set_error(e);
    if (const cudaError_t e = check_side(c.src, sspan, src_dev, "source", kind); e != cudaSuccess) return set_error(e);
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    const void* host_side = kind == cudaMemcpyHostToDevice ? c.src : kind == cudaMemcpyDeviceToHost ? c.dst : nullptr;
    const bool pageable = host_side && find_region(host_side).kind == MemKind::pageable;
    auto op = [c] {
        do_copy(c);
        check_guards("a copy");
    };
    if (async && pageable) {
        {
            std::lock_guard<std::mutex> lock(state().m);
            ++state().counters.pageable_async_copies;
        }
        if (!current_settings().quiet)
            std::fprintf(stderr, "cuda-emu: an async copy of %zu bytes %s pageable host memory %p: synchronous on a GPU\n",
                         c.width * c.height, kind == cudaMemcpyHostToDevice ? "from" : "to", host_side);
    }
    if (!async || pageable) {
        // Synchronous: after the stream's earlier work, before the call returns.
        const bool busy = !s->idle();
        submit(s, OpKind::copy, op);
        if (busy || kind == cudaMemcpyDeviceToHost) host_wait(s->device(), false);
        s->wait_idle();
        EMU_STICKY();
        return cudaSuccess;
    }
    submit(s, OpKind::copy, op);
    return cudaSuccess;
}

} // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    return copy({dst, bytes, src, bytes, bytes, 1}, kind, nullptr, false);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    return copy({dst, bytes, src, bytes, bytes, 1}, kind, stream, true);
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
    return copy({dst, dpitch, src, spitch, width, height}, kind, stream, true);
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    if (bytes == 0) return cudaSuccess;
    if (!device_visible(ptr, bytes)) {
        std::fprintf(stderr, "cuda-emu: cudaMemset of [%p, +%zu) outside a device allocation\n", ptr, bytes);
        return set_error(cudaErrorInvalidValue);
    }
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    submit(s, OpKind::copy, [ptr, value, bytes] { std::memset(ptr, value, bytes); });
    return cudaSuccess;
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) { return cudaMemsetAsync(ptr, value, bytes, nullptr); }
