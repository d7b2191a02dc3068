// SPDX-License-Identifier: Apache-2.0
#include "cli/plan_report.h"

#include "common/units.h"

#include <algorithm>

namespace rabbit {

std::vector<std::pair<std::string, std::string>> plan_lines(const MemoryPlan& plan, const MemoryPlanInput& in) {
    std::vector<std::pair<std::string, std::string>> out;
    const std::string slots = std::to_string(in.ring_slots);
    std::string always = "activations " + format_bytes(plan.activation_bytes) + ", workspace " +
                         format_bytes(plan.workspace_bytes) + ", norms and biases " + format_bytes(plan.vector_bytes) +
                         ", CUDA runtime and reserve " + format_bytes(plan.overhead_bytes);
    always += plan.kv_on_host ? ", KV cache in pinned host memory (" + format_bytes(plan.kv_cache_bytes) + ")"
                              : ", KV cache " + format_bytes(plan.kv_cache_bytes);
    always += plan.ring_bytes ? ", ring " + slots + " x " + format_bytes(plan.ring_slot_bytes) +
                                    (plan.chunked ? " (larger units in row blocks)" : "")
                              : std::string(", no ring (everything resident)");
    if (plan.draft_bytes)
        out.emplace_back("  draft", "a draft model resident beside it: " + format_bytes(plan.draft_bytes) + " of the " +
                                        format_bytes(in.budget) + " budget; the plan is made in the other " +
                                        format_bytes(in.budget > plan.draft_bytes ? in.budget - plan.draft_bytes : 0));
    out.emplace_back("  always", always);
    if (!plan.fits) {
        out.emplace_back("  verdict", "too small: the minimum is " + format_bytes(plan.minimum_budget) +
                                          " (lower --ctx or --ring-slots, or --kv-cache host, to need less)");
        return out;
    }
    uint32_t layers = 0;
    std::string others;
    for (size_t i = 0; i < in.units.size(); ++i) {
        if (in.units[i].kind == UnitKind::layer) ++layers;
        else if (plan.resident[i]) others += ", " + in.units[i].name;
    }
    out.emplace_back("  resident", std::to_string(plan.resident_layers) + " of " + std::to_string(layers) + " layers" +
                                       others + " (" + format_bytes(plan.resident_bytes) + ")");
    out.emplace_back("  streamed", format_bytes(plan.streamed_per_token) + " per decoded token");
    if (plan.streamed_moe_layers) {
        // A streamed MoE layer needs a slot for its dense piece or one expert, not the layer.
        uint64_t dense = 0, expert = 0;
        for (const PlanUnit& u : in.units) dense = std::max(dense, u.dense), expert = std::max(expert, u.expert);
        out.emplace_back("  experts", std::to_string(plan.streamed_moe_layers) + " MoE layers stream as their dense piece (" +
                                          format_bytes(dense) + ") then the " + std::to_string(in.config.experts_per_tok) +
                                          " routed experts (" + format_bytes(expert) +
                                          " each) through the ring; expert cache " +
                                          (plan.expert_cache_experts ? std::to_string(plan.expert_cache_experts) +
                                                                           " experts (" + format_bytes(plan.expert_cache_bytes) + ")"
                                                                     : std::string("off")));
    }
    out.emplace_back("  device", format_bytes(plan.device_bytes) + " in " + std::to_string(plan.allocations.size()) +
                                     " allocations (each in whole 2 MiB pages) with the runtime and reserve");
    return out;
}

} // namespace rabbit
