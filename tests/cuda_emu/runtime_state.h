// SPDX-License-Identifier: Apache-2.0
// The emulated runtime's own state, shared by its files (runtime.cpp: settings and errors;
// device.cpp: devices, contexts and launches; memory.cpp: allocations and copies; streams.cpp:
// streams and events). The kernel and cuBLAS parts see only internal.h.
#pragma once

#include "internal.h"
#include "sanitizers.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace cuda_emu {

constexpr uint64_t k_page = 2ull << 20;        // cudaMalloc's granularity
constexpr size_t k_guard = 64;                 // guard bytes behind an allocation (no ASan)
constexpr unsigned char k_guard_byte = 0xa5;
constexpr uint64_t k_kernel_code = 64ull << 10; // one kernel's code on the device

inline uint64_t round_page(uint64_t b) { return (b + k_page - 1) / k_page * k_page; }

// A device or pinned allocation (pageable memory has none).
struct Alloc {
    MemKind kind;
    int device;
    unsigned flags;
    size_t size;
    uint64_t charged; // of the device's memory: the size rounded up to a page (pinned: 0)
};

struct Device {
    bool context = false;
    unsigned flags = 0;
    uint64_t used = 0, peak = 0;
    uint64_t allocated = 0, allocated_peak = 0; // of `used`, the cudaMalloc allocations
    std::set<const void*> kernels; // whose code is loaded
    uint64_t code_charged = 0;
    std::unordered_map<const void*, int> max_dynamic; // cudaFuncAttributeMaxDynamicSharedMemorySize
    std::shared_ptr<Stream> legacy;
};

// An event: recorded counts cudaEventRecord calls, completed the last one its stream reached.
struct EventState {
    unsigned flags = 0;
    int device = 0;
    std::mutex m;
    std::condition_variable cv;
    uint64_t recorded = 0, completed = 0;
    std::chrono::steady_clock::time_point when{};
};

// Everything the runtime knows, behind one mutex (m); the settings from the environment until
// set_settings.
struct State {
    std::mutex m;
    Settings settings;
    std::vector<Device> devices;
    std::map<uintptr_t, Alloc> allocs; // by start address
    std::unordered_map<const void*, std::shared_ptr<Stream>> streams;
    std::unordered_map<const void*, std::shared_ptr<EventState>> events;
    std::atomic<uint64_t> launch_id{0};
    Counters counters;
    std::map<std::string, uint64_t> launches_by_name;
    std::string fault;
    std::atomic<int> sticky{cudaSuccess};
    std::vector<std::shared_ptr<Stream>> legacy_streams; // kept until exit

    State();
};

State& state();

// The current device of this host thread (a stream's worker thread: the stream's device).
extern thread_local int t_device;

bool valid_device(int d);

// Every call begins so: a sticky fault fails it.
#define EMU_STICKY()                                                  \
    do {                                                              \
        const cudaError_t sticky_ = sticky_error();                   \
        if (sticky_ != cudaSuccess) return set_error(sticky_);        \
    } while (0)

// The sticky fault, else makes the current device's context; the error, recorded, or cudaSuccess.
cudaError_t need_context();

// Whether device allocations carry guard bytes: not under ASan, which sees overruns itself.
inline bool guarded() {
#ifdef CUDA_EMU_ASAN
    return false;
#else
    return true;
#endif
}

} // namespace cuda_emu
