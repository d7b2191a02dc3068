// SPDX-License-Identifier: Apache-2.0
// The emulated device's own controls and counters, for tests (never in a GPU build). The
// settings start from the environment:
//   RABBIT_EMU_DEVICES=N        emulated GPUs (default 1)
//   RABBIT_EMU_ARCH=75|80|86|89|90   the architecture they report (default 90): compute
//                               capability, and the shared memory a block may opt in to
//   RABBIT_EMU_SMS=N            multiprocessors per device (default 16)
//   RABBIT_EMU_MEMORY=SIZE      device memory (default 16G; K, M, G suffixes)
//   RABBIT_EMU_ORDER=forward|reverse|random   the order threads and blocks take turns (random)
//   RABBIT_EMU_SEED=N           the seed of the random order (default 1)
//   RABBIT_EMU_KERNEL_DELAY_US=N, RABBIT_EMU_COPY_DELAY_US=N   a delay before every kernel
//                               (and GEMM), or every copy, runs on its stream
//   RABBIT_EMU_QUIET=1          no report on stderr for pageable async copies
#pragma once

#include <cstdint>
#include <string>

namespace cuda_emu {

enum class Order { forward, reverse, random };

struct Settings {
    int devices = 1;
    int arch = 90;
    int sm_count = 16;
    uint64_t memory = 16ull << 30;
    uint64_t context_bytes = 300ull << 20; // taken when a device's context is made, as a driver does
    Order order = Order::random;
    uint64_t seed = 1;
    unsigned kernel_delay_us = 0, copy_delay_us = 0;
    bool quiet = false;
};

Settings settings();
// Takes effect for what comes next: launches, copies, and devices queried afterwards.
void set_settings(const Settings& s);

// Largest opt-in shared memory per block of an architecture (sm_75 64 KiB ... sm_90 227 KiB).
uint64_t optin_shared_bytes(int arch);

struct Counters {
    uint64_t launches = 0;              // kernels run
    uint64_t pageable_async_copies = 0; // cudaMemcpy*Async with a pageable host side (synchronous on a GPU)
    uint64_t spinning_waits = 0;        // host waits that a GPU would spin through (no blocking-sync flag)
    uint64_t device_allocations = 0;    // cudaMalloc calls that allocated
    uint64_t host_allocations = 0;      // cudaHostAlloc calls that allocated
    uint64_t write_combined_allocations = 0; // of them, with cudaHostAllocWriteCombined
    uint64_t function_attribute_sets = 0;    // cudaFuncSetAttribute calls
    uint64_t contexts = 0;              // device contexts made
};
Counters counters();
// Kernels launched whose name contains `part`, on any device.
uint64_t launches_named(const std::string& part);
bool has_context(int device);

// Device memory as the device sees it: every allocation rounded up to 2 MiB, the context, the
// kernels' code as it loads, cuBLAS's handles and workspaces.
uint64_t device_used(int device);
uint64_t device_peak(int device);
// The most the live cudaMalloc allocations (each in whole 2 MiB pages) took at once: the peak
// without the context, the kernels' code and cuBLAS's own memory.
uint64_t allocation_peak(int device);
void reset_device_peak(int device); // both peaks start again from what is used now

// The flags a pinned host allocation was made with, or -1 for memory that is not pinned.
int64_t host_alloc_flags(const void* p);

// The first fault of a kernel or a GEMM (a barrier not reached, an illegal address...), or "".
// A fault is sticky, as on a GPU: every later call fails until clear_fault().
std::string last_fault();
void clear_fault();

} // namespace cuda_emu
