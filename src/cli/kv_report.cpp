// SPDX-License-Identifier: Apache-2.0
#include "cli/kv_report.h"

#include "common/units.h"
#include "engine/kv_cache.h"

#include <spdlog/fmt/fmt.h>

namespace rabbit {

KvReport kv_report(const ModelConfig& c, uint64_t ctx, DType cpu_type, DType gpu_type, const MemoryPlanInput* gpu_in,
                   uint64_t ram_budget) {
    KvReport r;
    r.ctx = ctx;
    auto place = [&](const std::string& where, DType t) {
        const uint64_t per = kv_bytes_per_position(c, t);
        r.placements.push_back({where, t, per, per * ctx});
    };
    place("CPU (RAM)", cpu_type);
    place("GPU (VRAM)", gpu_type);
    place("GPU (host)", gpu_type);
    if (gpu_in) {
        // What the VRAM budget holds besides the cache: the plan with the cache elsewhere and
        // the smallest ring, so that every byte past its minimum could be cache.
        MemoryPlanInput in = *gpu_in;
        in.kv = KvPlace::host;
        const MemoryPlan without = plan_memory(in);
        const uint64_t room = in.budget > without.minimum_budget ? in.budget - without.minimum_budget : 0;
        r.tiers.push_back({"VRAM", in.budget, room, kv_positions_in(c, gpu_type, room), gpu_type,
                           "the budget less the fixed buffers, the runtime and the smallest ring, weights streamed"});
    }
    r.tiers.push_back({"RAM", ram_budget, ram_budget, kv_positions_in(c, cpu_type, ram_budget), cpu_type,
                       "the whole --ram-budget given to the CPU engine's cache, weights read from the files"});
    if (gpu_type != cpu_type)
        r.tiers.push_back({"RAM", ram_budget, ram_budget, kv_positions_in(c, gpu_type, ram_budget), gpu_type,
                           "the whole --ram-budget given to a GPU's host cache"});
    return r;
}

std::vector<std::pair<std::string, std::string>> kv_lines(const KvReport& r) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& p : r.placements)
        out.emplace_back("  " + p.where, fmt::format("{}: {} per position, {} at {}", dtype_name(p.type),
                                                     format_bytes(p.per_position), format_bytes(p.at_ctx), r.ctx));
    for (const auto& t : r.tiers)
        out.emplace_back("  most ctx", fmt::format("{} {}: {} positions of {} in {} ({})", t.tier, format_bytes(t.budget),
                                                   t.positions, dtype_name(t.type), format_bytes(t.room), t.note));
    return out;
}

void kv_json(JsonWriter& w, const KvReport& r) {
    w.key("kv_cache").begin_object();
    w.member("ctx", r.ctx);
    w.key("placements").begin_array();
    for (const auto& p : r.placements)
        w.begin_object()
            .member("where", p.where)
            .member("dtype", dtype_name(p.type))
            .member("bytes_per_position", p.per_position)
            .member("bytes_at_ctx", p.at_ctx)
            .end_object();
    w.end_array();
    w.key("tiers").begin_array();
    for (const auto& t : r.tiers)
        w.begin_object()
            .member("tier", t.tier)
            .member("budget", t.budget)
            .member("room", t.room)
            .member("dtype", dtype_name(t.type))
            .member("max_positions", t.positions)
            .end_object();
    w.end_array();
    w.end_object();
}

} // namespace rabbit
