// SPDX-License-Identifier: Apache-2.0
// The KV cache's arithmetic, for both engines, the planner and `inspect`: the types it may be
// kept in (--kv-dtype), its bytes per position, the most context a memory tier holds, and,
// when it lives in host memory beside a GPU, where decode attention runs: on the CPU, on the
// cache (q goes to the host, the output comes back), or on the GPU, reading the cache over the
// link.
#pragma once

#include "common/dtype.h"
#include "model/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rabbit {

// f32, bf16, f16 or q8_0 (each position's head_dim values in blocks of 32, as GGUF's q8_0).
bool is_kv_dtype(DType t);
// --kv-dtype's value, or a usage error naming the option and the choices.
DType parse_kv_dtype(std::string_view name);
// Bytes of one position of one KV head: head_dim elements of type t (whole blocks for q8_0).
uint64_t kv_row_bytes(DType t, uint64_t head_dim);
// Keys and values of every layer and KV head for one position.
uint64_t kv_bytes_per_position(const ModelConfig& c, DType t);
// The most positions whose cache fits in `bytes` (0 when not one does).
uint64_t kv_positions_in(const ModelConfig& c, DType t, uint64_t bytes);

// Where decode attention runs over a cache in host memory.
enum class KvAttend { automatic, cpu, gpu };
const char* kv_attend_name(KvAttend a); // "auto", "cpu", "gpu"

// What the choice is made from, measured by the engine at start.
struct KvAttendRates {
    double link_bps = 0;     // pinned host-to-device copies, bytes per second
    double cpu_bps = 0;      // bytes of cache the CPU attention kernel reads per second (all threads)
    double round_trip_s = 0; // q to the host and the output back, for one layer
};
struct KvAttendCost {
    KvAttend chosen = KvAttend::gpu;
    double cpu_s = 0, gpu_s = 0; // per decoded token, at the planned context
};
// Per decoded token at a full cache of kv_bytes (every layer): the GPU reading the cache over
// the link shares it with the streamed weights, (streamed + kv) / link; the CPU attending it
// runs beside the stream, the longer of streamed / link and kv / cpu + a round trip per layer.
KvAttendCost choose_kv_attend(uint64_t kv_bytes, uint64_t streamed_bytes, uint32_t layers, const KvAttendRates& r);

} // namespace rabbit
