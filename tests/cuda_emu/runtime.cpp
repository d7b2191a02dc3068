// SPDX-License-Identifier: Apache-2.0
// The emulated runtime: devices, contexts, memory, streams, events and errors. This file holds
// the settings, the shared state and the errors; device.cpp the devices, their memory accounting
// and kernel launches; memory.cpp allocations and copies; streams.cpp streams and events.
//
// Errors. Each host thread has its last error (cudaGetLastError returns and clears it; every
// failing call sets it, cudaErrorNotReady included). A fault in a kernel or a GEMM is sticky:
// every call after it fails with it until cuda_emu::clear_fault().
#include "runtime_state.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace cuda_emu {

namespace {

// ---- settings ------------------------------------------------------------------------------

uint64_t parse_size(const char* s, uint64_t fallback) {
    if (!s || !*s) return fallback;
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    uint64_t mult = 1;
    if (end && (*end == 'k' || *end == 'K')) mult = 1ull << 10;
    if (end && (*end == 'm' || *end == 'M')) mult = 1ull << 20;
    if (end && (*end == 'g' || *end == 'G')) mult = 1ull << 30;
    return v > 0 ? uint64_t(v * double(mult)) : fallback;
}

long env_int(const char* name, long fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

Settings from_environment() {
    Settings s;
    s.devices = int(std::max(1l, env_int("RABBIT_EMU_DEVICES", s.devices)));
    s.arch = int(env_int("RABBIT_EMU_ARCH", s.arch));
    if (optin_shared_bytes(s.arch) == 0) {
        std::fprintf(stderr, "cuda-emu: RABBIT_EMU_ARCH=%d: expected 75, 80, 86, 89 or 90\n", s.arch);
        std::abort();
    }
    s.sm_count = int(std::max(1l, env_int("RABBIT_EMU_SMS", s.sm_count)));
    s.memory = parse_size(std::getenv("RABBIT_EMU_MEMORY"), s.memory);
    if (const char* o = std::getenv("RABBIT_EMU_ORDER")) {
        const std::string v = o;
        s.order = v == "forward" ? Order::forward : v == "reverse" ? Order::reverse : Order::random;
    }
    s.seed = uint64_t(env_int("RABBIT_EMU_SEED", long(s.seed)));
    s.kernel_delay_us = unsigned(std::max(0l, env_int("RABBIT_EMU_KERNEL_DELAY_US", 0)));
    s.copy_delay_us = unsigned(std::max(0l, env_int("RABBIT_EMU_COPY_DELAY_US", 0)));
    s.quiet = env_int("RABBIT_EMU_QUIET", 0) != 0;
    return s;
}

} // namespace

// ---- global state --------------------------------------------------------------------------

State::State() : settings(from_environment()) { devices.resize(size_t(settings.devices)); }

State& state() {
    static State* s = new State; // never destroyed: stream threads may outlive static destructors
    return *s;
}

namespace {
thread_local cudaError_t t_last_error = cudaSuccess;
} // namespace
thread_local int t_device = 0;

bool valid_device(int d) { return d >= 0 && d < int(state().devices.size()); }

cudaError_t need_context() {
    EMU_STICKY();
    if (!ensure_context(t_device)) return set_error(cudaErrorMemoryAllocation);
    return cudaSuccess;
}

// ---- settings, errors, faults ---------------------------------------------------------------

uint64_t optin_shared_bytes(int arch) {
    switch (arch) {
    case 75: return 65536;
    case 80: return 166912;
    case 86: return 101376;
    case 89: return 101376;
    case 90: return 232448;
    default: return 0;
    }
}

Settings settings() {
    std::lock_guard<std::mutex> lock(state().m);
    return state().settings;
}
Settings current_settings() { return settings(); }

void set_settings(const Settings& s) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    if (optin_shared_bytes(s.arch) == 0) {
        std::fprintf(stderr, "cuda-emu: no architecture sm_%d\n", s.arch);
        std::abort();
    }
    st.settings = s;
    if (size_t(s.devices) > st.devices.size()) st.devices.resize(size_t(s.devices));
}

cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) t_last_error = e;
    return e;
}

cudaError_t sticky_error() { return cudaError_t(state().sticky.load()); }

void raise_fault(cudaError_t e, const std::string& message) {
    State& st = state();
    {
        std::lock_guard<std::mutex> lock(st.m);
        if (st.fault.empty()) st.fault = message;
    }
    int expected = cudaSuccess;
    st.sticky.compare_exchange_strong(expected, int(e));
    std::fprintf(stderr, "cuda-emu: FAULT: %s\n", message.c_str());
}

std::string last_fault() {
    std::lock_guard<std::mutex> lock(state().m);
    return state().fault;
}

void clear_fault() {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    st.fault.clear();
    st.sticky = cudaSuccess;
    t_last_error = cudaSuccess;
}

Counters counters() {
    std::lock_guard<std::mutex> lock(state().m);
    return state().counters;
}

uint64_t launches_named(const std::string& part) {
    std::lock_guard<std::mutex> lock(state().m);
    uint64_t n = 0;
    for (const auto& [name, count] : state().launches_by_name)
        if (name.find(part) != std::string::npos) n += count;
    return n;
}

} // namespace cuda_emu

using namespace cuda_emu;

// ---- the runtime API: versions and errors ---------------------------------------------------

cudaError_t cudaDriverGetVersion(int* version) {
    if (!version) return set_error(cudaErrorInvalidValue);
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) { return cudaDriverGetVersion(version); }

cudaError_t cudaGetLastError() {
    const cudaError_t sticky = sticky_error();
    if (sticky != cudaSuccess) return sticky;
    const cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError() {
    const cudaError_t sticky = sticky_error();
    return sticky != cudaSuccess ? sticky : t_last_error;
}

const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidSymbol: return "cudaErrorInvalidSymbol";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorSetOnActiveProcess: return "cudaErrorSetOnActiveProcess";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorUnknown: return "cudaErrorUnknown";
    }
    return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated device: see the FAULT line)";
    case cudaErrorSetOnActiveProcess: return "cannot set while device is active in this process";
    default: return "an emulated CUDA error";
    }
}
