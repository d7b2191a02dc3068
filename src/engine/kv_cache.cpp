// SPDX-License-Identifier: Apache-2.0
#include "engine/kv_cache.h"

#include "common/error.h"

#include <algorithm>

namespace rabbit {

bool is_kv_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16 || t == DType::q8_0; }

DType parse_kv_dtype(std::string_view name) {
    const auto t = dtype_from_name(name);
    if (!t || !is_kv_dtype(*t))
        throw Error(ExitCode::usage, "--kv-dtype " + std::string(name) + ": expected f32, bf16, f16 or q8_0");
    return *t;
}

uint64_t kv_row_bytes(DType t, uint64_t head_dim) {
    RABBIT_CHECK(is_kv_dtype(t), "a KV cache type that is not f32, bf16, f16 or q8_0");
    if (t == DType::q8_0 && head_dim % dtype_block(t) != 0)
        throw Error(ExitCode::unsupported,
                    "--kv-dtype q8_0 needs a head_dim that is a multiple of 32, not " + std::to_string(head_dim));
    return dtype_row_bytes(t, head_dim);
}

uint64_t kv_bytes_per_position(const ModelConfig& c, DType t) {
    return 2ull * c.num_layers * c.num_kv_heads * kv_row_bytes(t, c.head_dim);
}

uint64_t kv_positions_in(const ModelConfig& c, DType t, uint64_t bytes) {
    const uint64_t per = kv_bytes_per_position(c, t);
    return per ? bytes / per : 0;
}

const char* kv_attend_name(KvAttend a) {
    switch (a) {
    case KvAttend::automatic: return "auto";
    case KvAttend::cpu: return "cpu";
    case KvAttend::gpu: return "gpu";
    }
    return "?";
}

KvAttendCost choose_kv_attend(uint64_t kv_bytes, uint64_t streamed_bytes, uint32_t layers, const KvAttendRates& r) {
    KvAttendCost c;
    if (r.link_bps <= 0 || r.cpu_bps <= 0) return c; // unmeasured: the GPU, as before
    const double kv = double(kv_bytes), streamed = double(streamed_bytes);
    c.gpu_s = (streamed + kv) / r.link_bps;
    c.cpu_s = std::max(streamed / r.link_bps, kv / r.cpu_bps + layers * r.round_trip_s);
    c.chosen = c.cpu_s < c.gpu_s ? KvAttend::cpu : KvAttend::gpu;
    return c;
}

} // namespace rabbit
