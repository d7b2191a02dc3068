// SPDX-License-Identifier: Apache-2.0
// inspect's view of the KV cache: its bytes per position and at --ctx in each place it can
// live (the CPU engine's RAM, the GPU's VRAM, pinned host memory beside a GPU), each in the
// type it has there, and the most context each memory tier holds.
#pragma once

#include "common/dtype.h"
#include "common/json_writer.h"
#include "engine/memory_plan.h"
#include "model/config.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rabbit {

struct KvPlacement {
    std::string where; // "CPU (RAM)", "GPU (VRAM)", "GPU (host)": pinned host memory beside a GPU
    DType type;
    uint64_t per_position = 0, at_ctx = 0;
};
struct KvTier {
    std::string tier;       // "VRAM", "RAM" (for the CPU engine's cache type, then a GPU's when it differs)
    uint64_t budget = 0;    // bytes of the tier
    uint64_t room = 0;      // of them, what the cache may take
    uint64_t positions = 0; // the most positions whose cache fits in room
    DType type;
    std::string note;       // how room was found
};
struct KvReport {
    uint64_t ctx = 0;
    std::vector<KvPlacement> placements;
    std::vector<KvTier> tiers;
};

// gpu_in: the VRAM plan's input when there is a budget (its kv_dtype, if set, is --kv-dtype),
// else null; cpu_type and gpu_type the cache's type on each engine.
KvReport kv_report(const ModelConfig& c, uint64_t ctx, DType cpu_type, DType gpu_type, const MemoryPlanInput* gpu_in,
                   uint64_t ram_budget);

std::vector<std::pair<std::string, std::string>> kv_lines(const KvReport& r);
void kv_json(JsonWriter& w, const KvReport& r);

} // namespace rabbit
