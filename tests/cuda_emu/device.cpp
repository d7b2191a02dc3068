// SPDX-License-Identifier: Apache-2.0
// The emulated devices: contexts, the memory they account (the context's, allocations', each
// kernel's code), properties and attributes, and kernel launches.
#include "runtime_state.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace cuda_emu {

// ---- contexts and the device memory they account ------------------------------------------

int current_device() { return t_device; }

bool ensure_context(int device) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    Device& d = st.devices[size_t(device)];
    if (d.context) return true;
    if (d.used + st.settings.context_bytes > st.settings.memory) return false;
    d.context = true;
    d.used += st.settings.context_bytes;
    d.peak = std::max(d.peak, d.used);
    ++st.counters.contexts;
    return true;
}

bool has_context(int device) {
    std::lock_guard<std::mutex> lock(state().m);
    return valid_device(device) && state().devices[size_t(device)].context;
}

bool charge_device(int device, uint64_t bytes) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    Device& d = st.devices[size_t(device)];
    if (d.used + bytes > st.settings.memory) return false;
    d.used += bytes;
    d.peak = std::max(d.peak, d.used);
    return true;
}

void uncharge_device(int device, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(state().m);
    state().devices[size_t(device)].used -= bytes;
}

uint64_t device_used(int device) {
    std::lock_guard<std::mutex> lock(state().m);
    return valid_device(device) ? state().devices[size_t(device)].used : 0;
}

uint64_t device_peak(int device) {
    std::lock_guard<std::mutex> lock(state().m);
    return valid_device(device) ? state().devices[size_t(device)].peak : 0;
}

uint64_t allocation_peak(int device) {
    std::lock_guard<std::mutex> lock(state().m);
    return valid_device(device) ? state().devices[size_t(device)].allocated_peak : 0;
}

void reset_device_peak(int device) {
    std::lock_guard<std::mutex> lock(state().m);
    if (!valid_device(device)) return;
    Device& d = state().devices[size_t(device)];
    d.peak = d.used;
    d.allocated_peak = d.allocated;
}

void load_kernel_code(int device, const void* func, const char* name) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    Device& d = st.devices[size_t(device)];
    ++st.counters.launches;
    ++st.launches_by_name[name];
    if (!d.kernels.insert(func).second) return;
    const uint64_t need = round_page(uint64_t(d.kernels.size()) * k_kernel_code);
    if (need > d.code_charged) {
        d.used += need - d.code_charged; // code loads even past the capacity: a driver would fail the launch
        d.peak = std::max(d.peak, d.used);
        d.code_charged = need;
    }
}

size_t max_dynamic_shared(int device, const void* func) {
    std::lock_guard<std::mutex> lock(state().m);
    const auto& m = state().devices[size_t(device)].max_dynamic;
    const auto it = m.find(func);
    return it == m.end() ? (48u << 10) : size_t(it->second);
}

} // namespace cuda_emu

using namespace cuda_emu;

// ---- the runtime API: devices ----------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return set_error(cudaErrorInvalidValue);
    *count = int(state().devices.size());
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (!device) return set_error(cudaErrorInvalidValue);
    *device = t_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (!valid_device(device)) return set_error(cudaErrorInvalidDevice);
    t_device = device;
    return cudaSuccess;
}

cudaError_t cudaSetDeviceFlags(unsigned flags) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    Device& d = st.devices[size_t(t_device)];
    if (d.context && d.flags != flags) return set_error(cudaErrorSetOnActiveProcess);
    d.flags = flags;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceFlags(unsigned* flags) {
    if (!flags) return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(state().m);
    *flags = state().devices[size_t(t_device)].flags;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (!p) return set_error(cudaErrorInvalidValue);
    if (!valid_device(device)) return set_error(cudaErrorInvalidDevice);
    const Settings s = settings();
    std::memset(p, 0, sizeof *p);
    std::snprintf(p->name, sizeof p->name, "rabbit emulated CUDA device %d", device);
    p->totalGlobalMem = s.memory;
    p->sharedMemPerBlock = 48u << 10;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = s.arch / 10;
    p->minor = s.arch % 10;
    p->multiProcessorCount = s.sm_count;
    p->canMapHostMemory = 1;
    p->unifiedAddressing = 1;
    p->asyncEngineCount = 2;
    p->sharedMemPerBlockOptin = optin_shared_bytes(s.arch);
    p->sharedMemPerMultiprocessor = optin_shared_bytes(s.arch) + 1024;
    p->maxThreadsPerMultiProcessor = s.arch == 75 ? 1024 : s.arch == 86 || s.arch == 89 ? 1536 : 2048;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
    if (!value) return set_error(cudaErrorInvalidValue);
    cudaDeviceProp p;
    if (const cudaError_t e = cudaGetDeviceProperties(&p, device); e != cudaSuccess) return e;
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = int(p.sharedMemPerBlock); break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(p.sharedMemPerBlockOptin); break;
    default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    std::vector<std::shared_ptr<Stream>> all;
    {
        std::lock_guard<std::mutex> lock(state().m);
        for (const auto& [h, s] : state().streams)
            if (s->device() == t_device) all.push_back(s);
        if (const auto& l = state().devices[size_t(t_device)].legacy) all.push_back(l);
    }
    bool waited = false;
    for (const auto& s : all) {
        waited = waited || !s->idle();
        s->wait_idle();
    }
    if (waited) host_wait(t_device, false);
    EMU_STICKY();
    return cudaSuccess;
}

cudaError_t cudaDeviceReset() { return cudaDeviceSynchronize(); }

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
    if (!func) return set_error(cudaErrorInvalidDeviceFunction);
    EMU_STICKY();
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return set_error(cudaErrorInvalidValue);
    if (value < 0 || uint64_t(value) > optin_shared_bytes(settings().arch)) return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(state().m);
    state().devices[size_t(t_device)].max_dynamic[func] = value;
    ++state().counters.function_attribute_sets;
    return cudaSuccess;
}

namespace cuda_emu {

void launch(const void* func, const char* name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            KernelBody* body) {
    std::unique_ptr<KernelBody> owned(body);
    if (need_context() != cudaSuccess) return;
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        std::fprintf(stderr, "cuda-emu: launch of %s with grid (%u,%u,%u) and block (%u,%u,%u): outside the limits "
                     "(1024 threads a block, block z <= 64, grid y and z <= 65535)\n", name, grid.x, grid.y, grid.z,
                     block.x, block.y, block.z);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    const size_t max_dynamic = max_dynamic_shared(t_device, func);
    if (shared_bytes > max_dynamic) {
        std::fprintf(stderr, "cuda-emu: launch of %s with %zu bytes of dynamic shared memory, more than its %zu "
                     "(cudaFuncAttributeMaxDynamicSharedMemorySize)\n", name, shared_bytes, max_dynamic);
        set_error(cudaErrorInvalidValue);
        return;
    }
    const auto s = stream_of(stream);
    if (!s) {
        set_error(cudaErrorInvalidResourceHandle);
        return;
    }
    const Settings st = current_settings();
    auto k = std::make_shared<KernelLaunch>();
    k->func = func;
    k->name = name;
    k->grid = grid;
    k->block = block;
    k->dynamic_shared = shared_bytes;
    k->shared_limit = max_dynamic > (48u << 10) ? optin_shared_bytes(st.arch) : (48u << 10);
    k->id = state().launch_id.fetch_add(1);
    k->order = st.order;
    k->body = std::move(owned);
    const int device = t_device;
    submit(s, OpKind::kernel, [k, device] {
        load_kernel_code(device, k->func, k->name.c_str());
        if (run_kernel(*k)) check_guards(("kernel " + k->name).c_str());
    });
}

} // namespace cuda_emu
