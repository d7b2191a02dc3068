// SPDX-License-Identifier: Apache-2.0
// The emulated runtime: devices, contexts, memory, streams, events and errors.
//
// Memory. Every cudaMalloc is its own host allocation (so AddressSanitizer sees an overrun);
// builds without ASan put 64 guard bytes behind each one and check them after every kernel,
// GEMM and copy, and when it is freed. The device has a capacity; each allocation takes its
// size rounded up to 2 MiB, the context takes memory when it is made, and each kernel's code a
// share of a 2 MiB chunk at its first launch, so that cudaMemGetInfo and the counted peak see
// what a driver would. Pinned host memory is device-visible at the same address (unified
// addressing). Copies check that their device side lies inside one allocation.
//
// Streams. Each stream has a thread that runs its operations in order, so work queued on two
// streams really overlaps, and only events order them. The legacy stream (0) waits for the
// other blocking streams and they for it. An async copy with a pageable host side runs
// synchronously, as on a GPU, and is counted and reported. Delays before kernels and copies
// (the settings) shift the streams against each other.
//
// Errors. Each host thread has its last error (cudaGetLastError returns and clears it; every
// failing call sets it, cudaErrorNotReady included). A fault in a kernel or a GEMM is sticky:
// every call after it fails with it until cuda_emu::clear_fault().
#include "internal.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "sanitizers.h"

struct CUstream_st {};
struct CUevent_st {};

namespace cuda_emu {

namespace {

constexpr uint64_t k_page = 2ull << 20;        // cudaMalloc's granularity
constexpr size_t k_guard = 64;                 // guard bytes behind an allocation (no ASan)
constexpr unsigned char k_guard_byte = 0xa5;
constexpr uint64_t k_kernel_code = 64ull << 10; // one kernel's code on the device

uint64_t round_page(uint64_t b) { return (b + k_page - 1) / k_page * k_page; }

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

// ---- global state --------------------------------------------------------------------------

struct Alloc {
    MemKind kind;
    int device;
    unsigned flags;
    size_t size;
    uint64_t charged;
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

struct EventState {
    unsigned flags = 0;
    int device = 0;
    std::mutex m;
    std::condition_variable cv;
    uint64_t recorded = 0, completed = 0;
    std::chrono::steady_clock::time_point when{};
};

struct State {
    std::mutex m;
    Settings settings = from_environment();
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

    State() { devices.resize(size_t(settings.devices)); }
};

State& state() {
    static State* s = new State; // never destroyed: stream threads may outlive static destructors
    return *s;
}

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

bool valid_device(int d) { return d >= 0 && d < int(state().devices.size()); }

// Every call begins so: a sticky fault fails it.
#define EMU_STICKY()                                                  \
    do {                                                              \
        const cudaError_t sticky_ = sticky_error();                   \
        if (sticky_ != cudaSuccess) return set_error(sticky_);        \
    } while (0)

cudaError_t need_context() {
    EMU_STICKY();
    if (!ensure_context(t_device)) return set_error(cudaErrorMemoryAllocation);
    return cudaSuccess;
}

bool guarded() {
#ifdef CUDA_EMU_ASAN
    return false;
#else
    return true;
#endif
}

} // namespace

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

// ---- devices and memory ---------------------------------------------------------------------

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

// ---- streams ---------------------------------------------------------------------------------

Stream::Stream(int device, unsigned flags, bool legacy) : device_(device), flags_(flags), legacy_(legacy) {
    thread_ = std::thread([this] {
        t_device = device_;
        worker();
    });
}

Stream::~Stream() {
    {
        std::lock_guard<std::mutex> lock(m_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Stream::enqueue(OpKind kind, std::function<void()> fn) {
    {
        std::lock_guard<std::mutex> lock(m_);
        queue_.emplace_back(kind, std::move(fn));
        ++enqueued_;
    }
    cv_.notify_all();
}

void Stream::worker() {
    for (;;) {
        std::pair<OpKind, std::function<void()>> op;
        {
            std::unique_lock<std::mutex> lock(m_);
            cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;
            op = std::move(queue_.front());
            queue_.pop_front();
        }
        if (sticky_error() == cudaSuccess) {
            const Settings s = current_settings();
            const unsigned delay = op.first == OpKind::kernel ? s.kernel_delay_us : op.first == OpKind::copy ? s.copy_delay_us : 0;
            if (delay) std::this_thread::sleep_for(std::chrono::microseconds(delay));
            op.second();
        }
        op.second = nullptr; // what it holds goes before it counts as done
        {
            std::lock_guard<std::mutex> lock(m_);
            ++done_;
        }
        cv_.notify_all();
    }
}

uint64_t Stream::enqueued() {
    std::lock_guard<std::mutex> lock(m_);
    return enqueued_;
}

void Stream::wait_done(uint64_t count) {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return done_ >= count; });
}

void Stream::wait_idle() { wait_done(enqueued()); }

bool Stream::idle() {
    std::lock_guard<std::mutex> lock(m_);
    return done_ == enqueued_;
}

std::shared_ptr<Stream> stream_of(cudaStream_t s) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    if (!s) {
        Device& d = st.devices[size_t(t_device)];
        if (!d.legacy) {
            d.legacy = std::make_shared<Stream>(t_device, cudaStreamDefault, true);
            st.legacy_streams.push_back(d.legacy);
        }
        return d.legacy;
    }
    const auto it = st.streams.find(s);
    return it == st.streams.end() ? nullptr : it->second;
}

void submit(const std::shared_ptr<Stream>& s, OpKind kind, std::function<void()> fn) {
    // The legacy stream's rule: it waits for the other blocking streams of its device, and they for it.
    std::vector<std::pair<std::shared_ptr<Stream>, uint64_t>> before;
    if (s->blocking()) {
        State& st = state();
        std::vector<std::shared_ptr<Stream>> others;
        {
            std::lock_guard<std::mutex> lock(st.m);
            if (s->legacy()) {
                for (const auto& [h, o] : st.streams)
                    if (o->device() == s->device() && o->blocking()) others.push_back(o);
            } else if (const auto& l = st.devices[size_t(s->device())].legacy) {
                others.push_back(l);
            }
        }
        for (const auto& o : others) before.emplace_back(o, o->enqueued());
    }
    if (before.empty()) return s->enqueue(kind, std::move(fn));
    s->enqueue(kind, [before, f = std::move(fn)] {
        for (const auto& [o, n] : before) o->wait_done(n);
        f();
    });
}

void host_wait(int device, bool blocking_event) {
    State& st = state();
    std::lock_guard<std::mutex> lock(st.m);
    if (!blocking_event && !(st.devices[size_t(device)].flags & cudaDeviceScheduleBlockingSync)) ++st.counters.spinning_waits;
}

} // namespace cuda_emu

using namespace cuda_emu;

// ---- the runtime API -------------------------------------------------------------------------

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

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
    if (!stream || (flags & ~cudaStreamNonBlocking) != 0) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    auto s = std::make_shared<Stream>(t_device, flags, false);
    std::lock_guard<std::mutex> lock(state().m);
    state().streams[s.get()] = s;
    *stream = reinterpret_cast<cudaStream_t>(s.get());
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::shared_ptr<Stream> s;
    {
        std::lock_guard<std::mutex> lock(state().m);
        const auto it = state().streams.find(stream);
        if (!stream || it == state().streams.end()) return set_error(cudaErrorInvalidResourceHandle);
        s = it->second;
        state().streams.erase(it);
    }
    s->wait_idle(); // its work still runs, as on a GPU; then its thread ends
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    EMU_STICKY();
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    if (!s->idle()) host_wait(s->device(), false);
    s->wait_idle();
    EMU_STICKY();
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    EMU_STICKY();
    const auto s = stream_of(stream);
    if (!s) return set_error(cudaErrorInvalidResourceHandle);
    return s->idle() ? cudaSuccess : set_error(cudaErrorNotReady);
}

namespace {

std::shared_ptr<EventState> event_of(cudaEvent_t e) {
    std::lock_guard<std::mutex> lock(state().m);
    const auto it = state().events.find(e);
    return it == state().events.end() ? nullptr : it->second;
}

} // namespace

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
    if (!event || (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming)) != 0) return set_error(cudaErrorInvalidValue);
    if (const cudaError_t e = need_context(); e != cudaSuccess) return e;
    auto ev = std::make_shared<EventState>();
    ev->flags = flags;
    ev->device = t_device;
    std::lock_guard<std::mutex> lock(state().m);
    state().events[ev.get()] = ev;
    *event = reinterpret_cast<cudaEvent_t>(ev.get());
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::mutex> lock(state().m);
    if (!event || state().events.erase(event) == 0) return set_error(cudaErrorInvalidResourceHandle);
    return cudaSuccess; // an operation still waiting for it keeps it alive
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    EMU_STICKY();
    const auto ev = event_of(event);
    const auto s = stream_of(stream);
    if (!ev || !s) return set_error(cudaErrorInvalidResourceHandle);
    uint64_t gen;
    {
        std::lock_guard<std::mutex> lock(ev->m);
        gen = ++ev->recorded;
    }
    submit(s, OpKind::other, [ev, gen] {
        {
            std::lock_guard<std::mutex> lock(ev->m);
            ev->completed = std::max(ev->completed, gen);
            ev->when = std::chrono::steady_clock::now();
        }
        ev->cv.notify_all();
    });
    return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
    EMU_STICKY();
    const auto ev = event_of(event);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    std::lock_guard<std::mutex> lock(ev->m);
    return ev->completed >= ev->recorded ? cudaSuccess : set_error(cudaErrorNotReady);
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    EMU_STICKY();
    const auto ev = event_of(event);
    if (!ev) return set_error(cudaErrorInvalidResourceHandle);
    {
        std::unique_lock<std::mutex> lock(ev->m);
        const uint64_t gen = ev->recorded;
        if (ev->completed < gen) {
            lock.unlock();
            host_wait(ev->device, (ev->flags & cudaEventBlockingSync) != 0);
            lock.lock();
        }
        // A fault leaves the event unrecorded forever: wait for it or for the fault.
        while (ev->completed < gen && sticky_error() == cudaSuccess) ev->cv.wait_for(lock, std::chrono::milliseconds(20));
    }
    EMU_STICKY();
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    EMU_STICKY();
    const auto a = event_of(start), b = event_of(end);
    if (!ms || !a || !b) return set_error(!ms ? cudaErrorInvalidValue : cudaErrorInvalidResourceHandle);
    if ((a->flags | b->flags) & cudaEventDisableTiming) return set_error(cudaErrorInvalidResourceHandle);
    // One event at a time: holding both would order their locks differently from call to call.
    auto read = [](EventState& e, bool* recorded, bool* done) {
        std::lock_guard<std::mutex> lock(e.m);
        *recorded = e.recorded > 0;
        *done = e.completed >= e.recorded;
        return e.when;
    };
    bool ra = false, da = false, rb = false, db = false;
    const auto ta = read(*a, &ra, &da), tb = read(*b, &rb, &db);
    if (!ra || !rb) return set_error(cudaErrorInvalidResourceHandle);
    if (!da || !db) return set_error(cudaErrorNotReady);
    *ms = float(std::chrono::duration<double, std::milli>(tb - ta).count());
    return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
    EMU_STICKY();
    const auto ev = event_of(event);
    const auto s = stream_of(stream);
    if (!ev || !s || flags != 0) return set_error(!ev || !s ? cudaErrorInvalidResourceHandle : cudaErrorInvalidValue);
    uint64_t gen;
    {
        std::lock_guard<std::mutex> lock(ev->m);
        gen = ev->recorded;
    }
    if (gen == 0) return cudaSuccess; // never recorded: nothing to wait for
    submit(s, OpKind::other, [ev, gen] {
        std::unique_lock<std::mutex> lock(ev->m);
        while (ev->completed < gen && sticky_error() == cudaSuccess) ev->cv.wait_for(lock, std::chrono::milliseconds(20));
    });
    return cudaSuccess;
}

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
