// SPDX-License-Identifier: Apache-2.0
// What the parts of the emulator share: settings, faults and errors, device memory, streams.
#pragma once

#include "include/cuda_emu.h"
#include "include/cuda_runtime.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace cuda_emu {

Settings current_settings();

// ---- errors ------------------------------------------------------------------------------
// Records e as this thread's last error (when it is one) and returns it.
cudaError_t set_error(cudaError_t e);
// The sticky error of a fault, or cudaSuccess.
cudaError_t sticky_error();
// A fault: sticky from now on; the message goes to stderr and to last_fault().
void raise_fault(cudaError_t e, const std::string& message);

// ---- devices and memory ------------------------------------------------------------------
int current_device();
// Makes the device's context when it has none (taking its memory); false when out of memory.
bool ensure_context(int device);
// Takes `bytes` of the device's memory (already rounded); false when it has no room.
bool charge_device(int device, uint64_t bytes);
void uncharge_device(int device, uint64_t bytes);
// The first launch of a kernel on a device loads its code (a share of a 2 MiB chunk).
void load_kernel_code(int device, const void* func, const char* name);
// The largest dynamic shared memory a launch of func may ask for (its attribute, else 48 KiB).
size_t max_dynamic_shared(int device, const void* func);

enum class MemKind { pageable, device, pinned };
struct Region {
    MemKind kind = MemKind::pageable;
    int device = -1;
    unsigned flags = 0;
    uintptr_t begin = 0;
    size_t size = 0;
};
// The allocation holding p (device or pinned), or a pageable region of exactly p.
Region find_region(const void* p);
// Whether [p, p + bytes) lies inside one device or pinned (device-visible) allocation.
bool device_visible(const void* p, size_t bytes);
// Checks the guard bytes behind every device allocation (builds without ASan); a fault names
// the buffer overrun and what ran last.
void check_guards(const char* after);

// ---- streams -----------------------------------------------------------------------------
enum class OpKind { kernel, copy, other };

class Stream : public std::enable_shared_from_this<Stream> {
public:
    Stream(int device, unsigned flags, bool legacy);
    ~Stream();
    void enqueue(OpKind kind, std::function<void()> fn);
    void wait_idle(); // blocks until every op queued so far has run
    bool idle();
    int device() const { return device_; }
    bool legacy() const { return legacy_; }
    bool blocking() const { return legacy_ || (flags_ & cudaStreamNonBlocking) == 0; }
    uint64_t enqueued();                // ops queued so far
    void wait_done(uint64_t count);     // until that many have run

private:
    void worker();
    int device_;
    unsigned flags_;
    bool legacy_;
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::pair<OpKind, std::function<void()>>> queue_;
    uint64_t enqueued_ = 0, done_ = 0;
    bool stop_ = false;
    std::thread thread_;
};

// The stream a handle names (null: the device's legacy stream); null for an unknown handle.
std::shared_ptr<Stream> stream_of(cudaStream_t s);
// Queues fn on the stream with the legacy stream's ordering against the other blocking streams.
void submit(const std::shared_ptr<Stream>& s, OpKind kind, std::function<void()> fn);
// Counts a host wait that a GPU would spin through, unless blocking sync was asked for.
void host_wait(int device, bool blocking_event);

// ---- kernels -----------------------------------------------------------------------------
struct KernelLaunch {
    const void* func;
    std::string name;
    dim3 grid, block;
    size_t dynamic_shared;
    size_t shared_limit; // static + dynamic, by the arch and the opt-in
    uint64_t id;         // seeds the random order
    Order order;
    std::unique_ptr<KernelBody> body;
};
// Runs every block; false after a fault (already raised).
bool run_kernel(KernelLaunch& k);

} // namespace cuda_emu
