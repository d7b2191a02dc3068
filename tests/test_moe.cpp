// SPDX-License-Identifier: Apache-2.0
// Mixture-of-experts models: the config, the layout (each expert one byte range of its layer
// unit), routing, and the CPU engine against transformers on tiny random models that
// transformers itself wrote (tests/data/moe, made by scripts/moe_reference.py).
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "engine/expert_cache.h"
#include "engine/moe.h"
#include "engine/weights.h"
#include "engine_helpers.h"
#include "gpu.h"
#include "format/split_model.h"
#include "helpers.h"
#include "model/layout.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

#include <algorithm>
#include <cmath>
#include <set>

using namespace rabbit;
using Catch::Contains;

namespace {

const std::vector<std::string> k_moe_models = {"qwen3-moe-norm", "qwen3-moe-sparse", "qwen2-moe-shared", "mixtral"};

using test::moe_dir;
using test::MoeReference;

MoeReference read_reference(const std::string& name) { return test::read_moe_reference(moe_dir(name) + "/reference.json"); }

ModelConfig moe_config(const std::string& name) {
    return ModelConfig::from_hf(test::read_file(moe_dir(name) + "/config.json"), name + "/config.json");
}

} // namespace

TEST_CASE("MoE configs: experts, routing and which layers are sparse", "[moe][config]") {
    const ModelConfig a = moe_config("qwen3-moe-norm");
    CHECK(a.arch == Arch::qwen3_moe);
    CHECK((a.num_experts == 6 && a.experts_per_tok == 2 && a.moe_intermediate_size == 8 && a.norm_topk_prob));
    CHECK((a.moe_layer(0) && a.moe_layer(1) && a.qk_norm));
    const ModelConfig b = moe_config("qwen3-moe-sparse");
    CHECK_FALSE(b.norm_topk_prob);
    // decoder_sparse_step 2: layers 1 and 3; mlp_only_layers [3] leaves layer 1.
    CHECK((!b.moe_layer(0) && b.moe_layer(1) && !b.moe_layer(2) && !b.moe_layer(3)));
    const ModelConfig q2 = moe_config("qwen2-moe-shared");
    CHECK((q2.arch == Arch::qwen2_moe && q2.qkv_bias && q2.shared_expert_intermediate_size == 12));
    CHECK((q2.moe_layer(0) && !q2.moe_layer(1) && q2.moe_layer(2)));
    const ModelConfig m = moe_config("mixtral");
    CHECK((m.arch == Arch::mixtral && m.num_experts == 4 && m.moe_intermediate_size == 8 && m.norm_topk_prob));
    CHECK(m.sliding_window == 0);
    for (const ModelConfig* c : {&a, &b, &q2, &m}) { // the manifest's copy reads back the same
        JsonWriter w;
        c->to_json(w);
        CHECK(ModelConfig::from_normalized(w.str(), "manifest.json") == *c);
    }
    std::string bad = test::read_file(moe_dir("qwen3-moe-norm") + "/config.json");
    bad.replace(bad.find("\"num_experts_per_tok\": 2"), 24, "\"num_experts_per_tok\": 7");
    REQUIRE_THROWS_WITH(ModelConfig::from_hf(bad, "config.json"),
                        Contains("config.json: num_experts_per_tok is 7, expected 1..6"));
}

TEST_CASE("MoE layout: router before the experts, each expert one byte range", "[moe][layout]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::split_into(moe_dir("qwen2-moe-shared"), dir / "split"));
    const ModelConfig& c = model.config();
    const auto& units = model.manifest().units;
    for (size_t l = 0; l < c.num_layers; ++l) {
        INFO("layer " << l);
        const ManifestUnit& u = units[model.roles().layers[l]];
        const LayerTensors t = layer_tensors(u);
        if (!c.moe_layer(uint32_t(l))) {
            CHECK((t.router == nullptr && t.experts.empty() && t.down != nullptr));
            continue;
        }
        REQUIRE(t.experts.size() == c.num_experts);
        CHECK((t.router && t.shared_gate && t.shared_down));
        // Attention, norms, router and shared expert lie before the first expert; experts
        // follow one another, each its gate_up then its down.
        CHECK(t.router->offset < t.experts[0].offset);
        CHECK(t.shared_down->offset < t.experts[0].offset);
        CHECK(t.dense_bytes == t.experts[0].offset);
        for (size_t e = 0; e < t.experts.size(); ++e) {
            const auto& x = t.experts[e];
            CHECK(x.gate_up.part[0]->offset == x.offset);
            CHECK(x.down->offset + x.down->nbytes == x.offset + x.bytes);
            CHECK(x.bytes < 2 * (x.gate_up.part[0]->nbytes + x.down->nbytes));
            if (e + 1 < t.experts.size()) CHECK(x.offset + x.bytes <= t.experts[e + 1].offset);
        }
    }
}

TEST_CASE("MoE routing: softmax, top k, renormalised or not, grouped by expert", "[moe][route]") {
    // Two tokens over four experts.
    const std::vector<float> logits = {0.0f, 2.0f, 1.0f, -1.0f, 3.0f, 0.5f, 0.5f, 3.5f};
    std::vector<int32_t> chosen(4);
    std::vector<float> w(4);
    route_tokens(logits.data(), 2, 4, 2, false, chosen.data(), w.data());
    CHECK(chosen == std::vector<int32_t>{1, 2, 3, 0});
    const double z0 = 1 + std::exp(2.0) + std::exp(1.0) + std::exp(-1.0);
    CHECK(std::fabs(w[0] - std::exp(2.0) / z0) < 1e-6);
    CHECK(std::fabs(w[1] - std::exp(1.0) / z0) < 1e-6);
    route_tokens(logits.data(), 2, 4, 2, true, chosen.data(), w.data());
    CHECK(std::fabs(w[0] + w[1] - 1.0) < 1e-6);
    CHECK(std::fabs(w[0] - std::exp(2.0) / (std::exp(2.0) + std::exp(1.0))) < 1e-6);
    const ExpertBatches b = group_by_expert(chosen.data(), w.data(), 2, 2, 4);
    CHECK(b.experts == std::vector<uint32_t>{0, 1, 2, 3});
    CHECK(b.begin == std::vector<size_t>{0, 1, 2, 3, 4});
    CHECK(b.token == std::vector<uint32_t>{1, 0, 0, 1});
}

TEST_CASE("MoE logits and greedy tokens match transformers on its own checkpoints", "[moe][engine][hf]") {
    // transformers in float32 on the CPU; f32 sums in another order: the tolerance of the
    // dense goldens (test_engine.cpp), atol 1e-4 and rtol 1e-4.
    const double atol = 1e-4, rtol = 1e-4;
    for (const std::string& name : k_moe_models) {
        INFO(name);
        const MoeReference ref = read_reference(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::split_into(moe_dir(name), dir / "split", DTypeChoice::f32));
        test::check_moe_reference(model, ref, name, atol, rtol);
    }
}

TEST_CASE("a MoE token reads its attention and its routed experts, nothing more", "[moe][engine][bytes]") {
    for (const std::string& name : k_moe_models) {
        INFO(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::split_into(moe_dir(name), dir / "split", DTypeChoice::bf16));
        const ModelConfig& c = model.config();
        const TokenBytes tb = token_bytes(model.manifest());
        uint32_t moe_layers = 0;
        for (uint32_t l = 0; l < c.num_layers; ++l) moe_layers += c.moe_layer(l);
        uint32_t sparse = 0;
        while (!c.moe_layer(sparse)) ++sparse;
        const LayerTensors first = layer_tensors(model.manifest().units[model.roles().layers[sparse]]);
        REQUIRE(!first.experts.empty());
        const uint64_t expert = first.experts[0].bytes; // every expert of these models has one size
        CHECK(tb.routed_experts == uint64_t(moe_layers) * c.experts_per_tok * expert);
        CHECK(tb.all_experts == uint64_t(moe_layers) * c.num_experts * expert);

        CpuEngine engine(model, {}); // no RAM budget: every unit streams
        const std::vector<int32_t> prompt = {1, 9, 30, 4, 17, 22, 5, 40};
        std::vector<float> logits;
        const StreamStats s0 = engine.stream_stats();
        engine.forward(prompt.data(), prompt.size(), 1, logits);
        StreamStats s1 = engine.stream_stats();
        // The prefill reads each expert of the union once.
        const StreamStats p = s1 - s0;
        CHECK(p.experts_run >= uint64_t(moe_layers) * c.experts_per_tok);
        CHECK(p.experts_run <= uint64_t(moe_layers) * c.num_experts);
        CHECK(p.file_bytes == tb.dense + p.experts_run * expert);
        for (int32_t t : {3, 50, 11}) { // decode steps: exactly k experts per MoE layer
            engine.forward(&t, 1, 1, logits);
            const StreamStats d = engine.stream_stats() - s1;
            CHECK(d.experts_run == uint64_t(moe_layers) * c.experts_per_tok);
            CHECK(d.file_bytes == tb.active());
            CHECK(d.file_bytes < tb.whole());
            s1 = engine.stream_stats();
        }
    }
}

namespace {

// Weight bytes a pass of `engine` streams besides the experts: the matrices of the units
// that are not resident, every expert left out.
uint64_t streamed_dense_bytes(const SplitModel& model, const CpuEngine& engine) {
    TokenBytes b;
    const auto& units = model.manifest().units;
    for (size_t i = 0; i < units.size(); ++i)
        if (!engine.units().resident(i)) add_token_bytes(b, model.config(), units[i].kind, units[i].layout);
    return b.dense;
}

} // namespace

TEST_CASE("the expert cache keeps used experts in the RAM budget, same logits on and off", "[moe][engine][cache]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::split_into(moe_dir("qwen3-moe-sparse"), dir / "split", DTypeChoice::bf16));
    const ModelConfig& c = model.config();
    const TokenBytes tb = token_bytes(model.manifest());
    const uint64_t expert = tb.all_experts / c.num_experts; // one MoE layer
    const std::vector<int32_t> prompt = {1, 9, 30, 4, 17, 22, 5, 40, 12, 3};
    std::vector<float> off, on;
    CpuEngine plain(model, {});
    CHECK(plain.expert_cache().capacity() == 0);
    plain.forward(prompt.data(), prompt.size(), prompt.size(), off);
    CHECK(plain.stream_stats().expert_hits == 0);

    for (uint64_t budget : {uint64_t(1) << 30, 2 * expert + expert / 2}) { // every expert; two of them
        INFO("RAM budget " << budget);
        EngineOptions opt;
        opt.ram_budget = budget;
        CpuEngine engine(model, opt);
        REQUIRE(engine.expert_cache().capacity() > 0);
        const uint64_t dense = streamed_dense_bytes(model, engine);
        for (int pass = 0; pass < 3; ++pass) {
            INFO("pass " << pass);
            engine.reset();
            const StreamStats s0 = engine.stream_stats();
            engine.forward(prompt.data(), prompt.size(), prompt.size(), on);
            const StreamStats d = engine.stream_stats() - s0;
            CHECK(on == off); // the same kernels on the same bytes
            CHECK(d.file_bytes == dense + (d.experts_run - d.expert_hits) * expert);
            CHECK(engine.expert_cache().held_bytes() <= engine.expert_cache().capacity());
            if (budget > tb.all_experts) CHECK(d.expert_hits == (pass == 0 ? 0 : d.experts_run));
            else CHECK(engine.expert_cache().held() == 2);
        }
    }
}

TEST_CASE("expert cache: least recently used out, within its capacity", "[moe][cache]") {
    ExpertCache cache(300);
    std::vector<ExpertCache::Key> out;
    CHECK_FALSE(cache.use({0, 1}, 100, out));
    CHECK_FALSE(cache.use({0, 2}, 100, out));
    CHECK_FALSE(cache.use({1, 1}, 100, out));
    CHECK(cache.use({0, 1}, 100, out)); // now the most recent
    CHECK(out.empty());
    CHECK_FALSE(cache.use({1, 2}, 100, out)); // evicts {0, 2}, the least recent
    REQUIRE(out.size() == 1);
    CHECK((out[0] == ExpertCache::Key{0, 2}));
    CHECK((cache.holds({0, 1}) && cache.holds({1, 1}) && cache.holds({1, 2}) && !cache.holds({0, 2})));
    CHECK_FALSE(cache.use({2, 0}, 400, out)); // larger than the cache: never held
    CHECK_FALSE(cache.holds({2, 0}));
    CHECK(cache.held_bytes() == 300);
}

#ifdef RABBIT_HAVE_CUDA
TEST_CASE("the CUDA engine takes a MoE model (it refused them once) and routes on the device", "[moe][cuda][gpu]") {
    if (!test::gpu_available()) return;
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::split_into(moe_dir("mixtral"), dir / "split"));
    CudaEngine e(model, CudaEngineOptions{});
    std::vector<float> logits;
    const std::vector<int32_t> prompt = {1, 9, 30};
    e.forward(prompt.data(), prompt.size(), 1, logits);
    CHECK(logits.size() == model.config().vocab_size);
    CHECK(e.stream_stats().experts_run > 0);
}
#endif

TEST_CASE("inspect shows a MoE model's experts and its routed bytes per token", "[moe][cli]") {
    const test::RunResult r = test::run_rabbit({"inspect", moe_dir("qwen2-moe-shared")});
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("experts       4 per MoE layer (2 of 3 layers), 2 routed per token, expert ffn 8, shared expert ffn 12"));
    CHECK_THAT(r.out, Contains("per decoded token"));
    const test::RunResult j = test::run_rabbit({"inspect", moe_dir("mixtral"), "--json"});
    REQUIRE(j.exit_code == 0);
    CHECK_THAT(j.out, Contains("\"routed_bytes_per_token\""));
    CHECK_THAT(j.out, Contains("\"experts_per_token\": 2"));
}
