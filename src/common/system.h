// SPDX-License-Identifier: Apache-2.0
// What the machine offers this process: memory it can take without pushing others out.
#pragma once

#include <cstdint>

namespace rabbit {

// Bytes of memory this process could still use: /proc/meminfo's MemAvailable (free memory
// plus the page cache and other memory the kernel can reclaim), lowered to what the cgroup's
// memory.max leaves when the process runs in a limited container. 0 when unknown.
uint64_t available_memory();

// The default RAM budget, and the most pinned memory the CUDA engine takes: 3/4 of the memory
// available now (the rest is left to the page cache and everything else running).
inline uint64_t default_ram_budget() { return available_memory() / 4 * 3; }
// What the CPU engine's KV caches may take (run --prompts, bench --fill-ctx): half the memory
// available, the rest for the weights' pages and everything else.
inline uint64_t kv_cache_room() { return available_memory() / 2; }

// Processors this process may run on: its CPU affinity (taskset), lowered to the cgroup's
// cpu.max quota (a container's --cpus), rounded up. At least 1.
unsigned usable_cpus();

} // namespace rabbit
