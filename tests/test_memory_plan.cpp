// SPDX-License-Identifier: Apache-2.0
#include "engine/memory_plan.h"
#include "genmodel.h"

#include <catch2/catch.hpp>

using namespace rabbit;

namespace {

MemoryPlanInput input(uint32_t layers, uint64_t layer_bytes, uint64_t lm_head_bytes, uint64_t budget, bool tied = false) {
    MemoryPlanInput in;
    in.config = preset_spec("tiny-qwen3").config;
    in.config.num_layers = layers;
    in.config.tie_word_embeddings = tied;
    in.units.push_back({"embed", UnitKind::embed, lm_head_bytes});
    for (uint32_t i = 0; i < layers; ++i) in.units.push_back({"layer." + std::to_string(i), UnitKind::layer, layer_bytes});
    in.units.push_back({"norm", UnitKind::final_norm, 4096});
    if (!tied) in.units.push_back({"lm_head", UnitKind::lm_head, lm_head_bytes});
    in.budget = budget;
    in.ctx = 256;
    in.ring_slots = 2;
    return in;
}

// Device memory the plan takes: every allocation in whole 2 MiB pages, and the runtime's overhead.
uint64_t used(const MemoryPlan& p) { return p.device_bytes; }

} // namespace

TEST_CASE("everything resident when it fits, and then no ring", "[plan]") {
    MemoryPlan p = plan_memory(input(4, 1 << 20, 2 << 20, 1ull << 30));
    REQUIRE(p.fits);
    REQUIRE(p.resident_layers == 4);
    REQUIRE(p.ring_bytes == 0);
    REQUIRE(p.streamed_per_token == 0);
    REQUIRE(!p.resident[0]); // the untied embedding is gathered on the host, never needed whole
}

TEST_CASE("a budget below the minimum is refused with the minimum", "[plan]") {
    MemoryPlanInput in = input(4, 100 << 20, 300 << 20, 64 << 20);
    MemoryPlan p = plan_memory(in);
    REQUIRE(!p.fits);
    REQUIRE(p.minimum_budget > in.budget);
    // The minimum itself is enough.
    in.budget = p.minimum_budget;
    REQUIRE(plan_memory(in).fits);
    in.budget = p.minimum_budget - 1;
    REQUIRE(!plan_memory(in).fits);
}

TEST_CASE("the plan keeps the most bytes resident within the budget", "[plan]") {
    // Layers of 100 MiB, an lm_head of 300 MiB: streaming the lm_head costs a 300 MiB ring
    // slot, so keeping it resident can leave room for more layers than streaming it does.
    for (uint64_t budget_mib : {900, 1000, 1100, 1300, 1700, 2500}) {
        INFO("budget " << budget_mib << " MiB");
        MemoryPlanInput in = input(16, 100 << 20, 300 << 20, budget_mib << 20);
        MemoryPlan p = plan_memory(in);
        REQUIRE(p.fits);
        REQUIRE(used(p) <= in.budget);
        REQUIRE(p.resident_bytes + p.streamed_per_token == weight_bytes_per_token(in.units, false));
        // No single streamed unit could have been made resident on top.
        for (size_t i = 0; i < in.units.size(); ++i) {
            if (p.resident[i] || in.units[i].kind == UnitKind::embed) continue;
            REQUIRE(used(p) + device_pages(in.units[i].bytes) > in.budget);
        }
    }
}

TEST_CASE("a cap on resident bytes holds whatever the budget (bench's none and half)", "[plan]") {
    for (uint64_t budget_mib : {1300, 2500, 100000}) {
        MemoryPlanInput in = input(16, 100 << 20, 300 << 20, budget_mib << 20);
        const uint64_t all = weight_bytes_per_token(in.units, false);
        for (uint64_t cap : {uint64_t(0), uint64_t(250) << 20, all / 2, all}) {
            INFO("budget " << budget_mib << " MiB, cap " << cap);
            in.max_resident = cap;
            MemoryPlan p = plan_memory(in);
            REQUIRE(p.fits);
            REQUIRE(used(p) <= in.budget);
            REQUIRE(p.resident_bytes <= cap);
            REQUIRE(p.resident_bytes + p.streamed_per_token == all);
            if (cap == 0) {
                REQUIRE(p.resident_layers == 0);
                REQUIRE(p.ring_bytes > 0);
            }
            // Under the cap the budget still decides: a budget that holds it all keeps the cap's worth
            // (within one unit).
            if (budget_mib == 100000) REQUIRE(p.resident_bytes + (300u << 20) > cap);
        }
    }
}

TEST_CASE("the plan counts whole pages for every allocation, the runtime's overhead and the reserve", "[plan]") {
    // Units of 1 MiB + 1 byte take two pages each; the budget of the old count (bytes asked
    // for) would overrun on a device.
    MemoryPlanInput in = input(6, (1 << 20) + 1, (3 << 20) + 1, 1ull << 30);
    in.overhead = 10 << 20;
    MemoryPlan p = plan_memory(in);
    REQUIRE(p.streamed_per_token == 0);
    REQUIRE(p.overhead_bytes == in.overhead + k_device_reserve);
    uint64_t pages = p.overhead_bytes;
    bool fixed_listed = false;
    for (const PlannedAllocation& a : p.allocations) {
        pages += device_pages(a.bytes);
        fixed_listed = fixed_listed || (a.kind == AllocationKind::fixed && a.bytes == p.fixed.total);
    }
    REQUIRE(fixed_listed);
    REQUIRE(pages == p.device_bytes);
    REQUIRE(p.device_bytes == device_pages(p.fixed.total) + device_pages(p.kv_cache_bytes) + p.overhead_bytes +
                                  6 * (2u << 20) + (4u << 20)); // six layers and lm_head; the norm is in `vectors`
    // The fixed buffers do not overlap and keep 256-byte alignment.
    for (int i = 0; i + 1 < int(Fixed::count); ++i) {
        REQUIRE(p.fixed.offset[i] % 256 == 0);
        REQUIRE(p.fixed.offset[i] + p.fixed.bytes[i] <= p.fixed.offset[i + 1]);
    }
    // Exactly the budget the pages need fits; a byte less does not keep everything resident.
    in.budget = p.device_bytes;
    REQUIRE(plan_memory(in).streamed_per_token == 0);
    in.budget = p.device_bytes - 1;
    REQUIRE(plan_memory(in).streamed_per_token > 0);
}

TEST_CASE("a tied embedding streams as the lm_head", "[plan]") {
    MemoryPlanInput in = input(2, 10 << 20, 50 << 20, 4ull << 30, true);
    REQUIRE(weight_bytes_per_token(in.units, true) == 2 * (10 << 20) + 4096 + (50 << 20));
    MemoryPlan p = plan_memory(in);
    REQUIRE(p.resident[0]);
}

TEST_CASE("the KV cache grows with the context and the kv heads", "[plan]") {
    MemoryPlanInput in = input(4, 1 << 20, 2 << 20, 1ull << 30);
    const ModelConfig& c = in.config;
    REQUIRE(plan_memory(in).kv_cache_bytes == 2ull * 4 * 256 * c.kv_dim() * 2);
    in.ctx = 1024;
    in.weight_dtype = DType::f32;
    REQUIRE(plan_memory(in).kv_cache_bytes == 2ull * 4 * 1024 * c.kv_dim() * 4);
}

TEST_CASE("the KV cache moves to the host only when it does not fit beside the smallest ring", "[plan]") {
    MemoryPlanInput in = input(8, 100 << 20, 300 << 20, 0);
    in.budget = 2ull << 30;
    // A context whose KV cache alone is twice the budget.
    in.ctx = 2 * in.budget / kv_cache_bytes(in.config, 1, 2);
    MemoryPlan p = plan_memory(in);
    REQUIRE(p.fits);
    REQUIRE(p.kv_on_host);
    REQUIRE(used(p) <= in.budget);
    in.ctx = 256;
    p = plan_memory(in);
    REQUIRE(!p.kv_on_host);
    in.kv = KvPlace::host;
    REQUIRE(plan_memory(in).kv_on_host);
    in.kv = KvPlace::gpu;
    in.ctx = 2 * in.budget / kv_cache_bytes(in.config, 1, 2);
    REQUIRE(!plan_memory(in).fits); // forced onto the GPU, it cannot fit
}

TEST_CASE("any budget: within it, every per-token byte resident or streamed, slots hold the pieces", "[plan]") {
    // Budgets from the minimum up, with and without a slot cap: the plan never uses more than
    // the budget, and a slot smaller than a streamed unit means that unit goes in row blocks.
    for (uint64_t cap : {uint64_t(0), uint64_t(40) << 20}) {
        MemoryPlanInput in = input(12, 90 << 20, 400 << 20, 0);
        in.max_slot = cap;
        in.budget = 1ull << 40;
        const uint64_t total = weight_bytes_per_token(in.units, false);
        in.budget = 0;
        const uint64_t minimum = plan_memory(in).minimum_budget;
        for (uint64_t budget = minimum; budget < minimum + total + (200 << 20); budget += 37ull << 20) {
            INFO("cap " << cap << ", budget " << budget);
            in.budget = budget;
            const MemoryPlan p = plan_memory(in);
            REQUIRE(p.fits);
            REQUIRE(used(p) <= budget);
            REQUIRE(p.resident_bytes + p.streamed_per_token == total);
            if (cap) REQUIRE(p.ring_slot_bytes <= cap);
            bool larger = false;
            for (size_t i = 0; i < in.units.size(); ++i)
                if (!p.resident[i] && in.units[i].kind != UnitKind::embed && in.units[i].bytes > p.ring_slot_bytes) larger = true;
            REQUIRE(p.chunked == larger);
        }
        in.budget = minimum - 1;
        REQUIRE(!plan_memory(in).fits);
    }
}

TEST_CASE("a 14B shape at 4 GiB: the runtime's overhead decides between lm_head and two more layers", "[plan]") {
    // Qwen2.5-14B's shapes, bf16, context 4096 (a 768 MiB KV cache on the GPU). Streaming the
    // 1.45 GiB lm_head whole would need two ring slots of its size and leave no room for any
    // layer, so everything streams in 16 MiB row blocks. Then the lm_head and three layers
    // (2.99 GiB) just fit beside a measured overhead of some tens of MiB; beside the
    // estimate inspect uses without a GPU (112 MiB with the reserve) they do not, and five
    // layers (2.56 GiB) are the most.
    MemoryPlanInput in;
    in.config = preset_spec("qwen2.5-14b").config;
    const uint64_t layer = 5120ull * (5120 + 2 * 1024) * 2 + 5120ull * 5120 * 2 + 3ull * 5120 * 13824 * 2 +
                           (5120 + (5120 + 2 * 1024) + 5120) * 4;
    const uint64_t vocab_matrix = 152064ull * 5120 * 2;
    in.units.push_back({"embed", UnitKind::embed, vocab_matrix});
    for (int i = 0; i < 48; ++i) in.units.push_back({"layer." + std::to_string(i), UnitKind::layer, layer});
    in.units.push_back({"norm", UnitKind::final_norm, 5120 * 4});
    in.units.push_back({"lm_head", UnitKind::lm_head, vocab_matrix});
    in.budget = 4ull << 30;
    in.ctx = 4096;
    in.overhead = (10ull << 20) + k_kernel_code_reserve; // the emulated device's cuBLAS
    MemoryPlan p = plan_memory(in);
    REQUIRE(p.fits);
    REQUIRE(!p.kv_on_host);
    REQUIRE(p.chunked);
    REQUIRE(p.ring_slot_bytes == 16ull << 20);
    REQUIRE(p.resident_layers == 3);
    REQUIRE(p.resident.back()); // lm_head
    REQUIRE(p.device_bytes <= in.budget);
    in.overhead = k_estimated_cublas_bytes + k_kernel_code_reserve;
    p = plan_memory(in);
    REQUIRE(p.resident_layers == 5);
    REQUIRE(!p.resident.back());
    REQUIRE(p.device_bytes <= in.budget);
}
