// SPDX-License-Identifier: Apache-2.0
// Many sequences per pass (Engine::forward_slots, generate_batch): every sequence's tokens are
// those it gets alone, on both engines, with prompts of very different lengths, passes that
// cut prompts apart and mix them, and slots reused as sequences end (continuous batching).
#include "backend/cpu/cpu_engine.h"
#include "engine/batch_generate.h"
#include "engine/memory_plan.h"
#include "engine/generate.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "gpu.h"
#include "helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

using namespace rabbit;

namespace {

std::string make_model(const std::string& preset, const test::TempDir& dir) {
    REQUIRE(test::run_program(test::genmodel_bin(), {"-p", preset, "-o", dir / "hf"}).exit_code == 0);
    return test::split_into(dir / "hf", dir / "split");
}

// Prompts of very different lengths (1 to 150 tokens), ids spread over the vocabulary.
std::vector<std::vector<int32_t>> ragged_prompts(uint64_t vocab, int32_t bos) {
    std::vector<std::vector<int32_t>> out;
    uint32_t x = 12345;
    for (size_t len : {size_t(1), size_t(37), size_t(2), size_t(150), size_t(9), size_t(64), size_t(5)}) {
        std::vector<int32_t> p = {bos};
        while (p.size() < len) {
            x = x * 1103515245u + 12345u;
            p.push_back(int32_t((x >> 8) % vocab));
        }
        out.push_back(p);
    }
    return out;
}

// Prompt i grows by new_tokens(i) greedy tokens: the sequences end at different passes.
size_t new_tokens(size_t i) { return 3 + (i * 7) % 12; }

// Every prompt's greedy continuation, `parallel` sequences per pass, each slot taken by the
// next prompt as soon as its sequence ends.
std::vector<std::vector<int32_t>> batched_greedy(Engine& e, const std::vector<std::vector<int32_t>>& prompts,
                                                 size_t parallel) {
    e.set_slots(parallel);
    REQUIRE(e.slots() == parallel);
    std::vector<std::vector<int32_t>> out = prompts;
    std::vector<long> in_slot(parallel, -1);
    std::vector<bool> started(prompts.size(), false);
    size_t next = 0;
    const size_t vocab = e.config().vocab_size;
    std::vector<float> logits;
    for (;;) {
        for (size_t s = 0; s < parallel; ++s)
            if (in_slot[s] < 0 && next < prompts.size()) {
                e.reset_slot(s);
                in_slot[s] = long(next++);
            }
        std::vector<SlotTokens> seqs;
        for (size_t s = 0; s < parallel; ++s) {
            if (in_slot[s] < 0) continue;
            const size_t i = size_t(in_slot[s]);
            if (!started[i]) seqs.push_back({s, out[i].data(), out[i].size(), 1});
            else seqs.push_back({s, &out[i].back(), 1, 1});
            started[i] = true;
        }
        if (seqs.empty()) return out;
        e.forward_slots(seqs, logits);
        REQUIRE(logits.size() == seqs.size() * vocab);
        for (size_t k = 0; k < seqs.size(); ++k) {
            const size_t i = size_t(in_slot[seqs[k].slot]);
            const auto row = logits.begin() + long(k * vocab);
            out[i].push_back(int32_t(std::max_element(row, row + long(vocab)) - row));
            REQUIRE(e.slot_position(seqs[k].slot) == out[i].size() - 1);
            if (out[i].size() == prompts[i].size() + new_tokens(i)) in_slot[seqs[k].slot] = -1;
        }
    }
}

// Each prompt alone, from an empty cache.
std::vector<std::vector<int32_t>> alone_greedy(Engine& e, const std::vector<std::vector<int32_t>>& prompts) {
    std::vector<std::vector<int32_t>> out;
    for (size_t i = 0; i < prompts.size(); ++i) out.push_back(test::greedy(e, prompts[i], prompts[i].size() + new_tokens(i)));
    return out;
}

void require_same_sequences(const std::vector<std::vector<int32_t>>& batched, const std::vector<std::vector<int32_t>>& alone) {
    REQUIRE(batched.size() == alone.size());
    for (size_t i = 0; i < alone.size(); ++i) {
        INFO("prompt " << i << " of " << alone[i].size() - new_tokens(i) << " tokens");
        CHECK(batched[i] == alone[i]);
    }
}

struct Model {
    test::TempDir dir;
    std::unique_ptr<SplitModel> split;
};

// The models of the acceptance: random Qwen2 and Qwen3, and tinystories-656k when present.
std::vector<std::unique_ptr<Model>> models() {
    std::vector<std::unique_ptr<Model>> out;
    for (const char* preset : {"tiny-qwen2", "tiny-qwen3"}) {
        auto m = std::make_unique<Model>();
        m->split = std::make_unique<SplitModel>(SplitModel::open(make_model(preset, m->dir)));
        out.push_back(std::move(m));
    }
    if (test::have_shared()) {
        auto m = std::make_unique<Model>();
        m->split = std::make_unique<SplitModel>(SplitModel::open(test::split_into(test::tinystories_dir(), m->dir / "ts")));
        out.push_back(std::move(m));
    }
    return out;
}

int32_t bos_of(const SplitModel& m) { return int32_t(m.config().bos_token_id.value_or(1)); }

} // namespace

TEST_CASE("CPU: every sequence of a batch is the one it is alone", "[batch][engine]") {
    for (auto& m : models()) {
        INFO(m->split->dir());
        const auto prompts = ragged_prompts(m->split->config().vocab_size, bos_of(*m->split));
        EngineOptions alone_opt;
        CpuEngine alone(*m->split, alone_opt);
        const auto want = alone_greedy(alone, prompts);
        for (size_t batch : {size_t(512), size_t(48)}) { // 48: prompts cut across passes, and mixed in them
            INFO("batch " << batch);
            EngineOptions opt;
            opt.batch = batch;
            CpuEngine e(*m->split, opt);
            require_same_sequences(batched_greedy(e, prompts, 3), want);
            require_same_sequences(batched_greedy(e, prompts, prompts.size()), want);
        }
    }
}

TEST_CASE("CUDA: every sequence of a batch is the one it is alone", "[batch][gpu][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    for (auto& m : models()) {
        INFO(m->split->dir());
        const auto prompts = ragged_prompts(m->split->config().vocab_size, bos_of(*m->split));
        CudaEngineOptions base;
        base.ctx = 512;
        CudaEngine alone(*m->split, base);
        const auto want = alone_greedy(alone, prompts);
        CudaEngineOptions streamed = base; // nothing resident, the caches on the host, prompts cut apart
        streamed.max_resident = 0;
        streamed.kv = KvPlace::host;
        streamed.batch = 48;
        for (CudaEngineOptions o : {base, streamed}) {
            INFO("kv on host " << (o.kv == KvPlace::host) << ", batch " << o.batch);
            o.sequences = 4;
            CudaEngine e(*m->split, o);
            REQUIRE(e.max_slots() == 4);
            REQUIRE(e.plan().kv_gpu_sequences == (o.kv == KvPlace::host ? 0u : 4u));
            require_same_sequences(batched_greedy(e, prompts, 3), want);
            require_same_sequences(batched_greedy(e, prompts, 4), want);
        }
    }
#endif
}

namespace {

// The smallest budget (in MiB steps) at which `in`'s plan fits with its caches split.
uint64_t split_budget(MemoryPlanInput in) {
    for (uint64_t mib = 1; mib <= 4096; ++mib) {
        in.budget = mib << 20;
        const MemoryPlan p = plan_memory(in);
        if (p.fits && p.kv_gpu_sequences > 0 && p.kv_gpu_sequences < in.sequences) return in.budget;
    }
    return 0;
}

} // namespace

TEST_CASE("the planner places N sequences' KV caches on the GPU, on the host, or split", "[batch][plan]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(make_model("tiny-qwen2", dir));
    MemoryPlanInput in;
    in.config = model.config();
    in.units = plan_units(model.manifest().units);
    in.ctx = 4096;
    in.sequences = 4;
    uint32_t last = 0;
    bool split = false;
    for (uint64_t mib = 1; mib <= 256; ++mib) {
        in.budget = mib << 20;
        const MemoryPlan p = plan_memory(in);
        if (!p.fits) continue;
        INFO("budget " << mib << " MiB: " << p.kv_gpu_sequences << " sequences' caches on the GPU");
        REQUIRE(p.kv_sequence_bytes == kv_cache_bytes(in.config, in.ctx, 2));
        REQUIRE(p.kv_cache_bytes == 4 * p.kv_sequence_bytes);
        REQUIRE(p.kv_gpu_sequences >= last); // more budget never moves a cache off the GPU
        REQUIRE(p.kv_on_host == (p.kv_gpu_sequences == 0));
        uint64_t on_device = 0;
        for (const PlannedAllocation& a : p.allocations)
            if (a.kind == AllocationKind::kv_cache) on_device += a.bytes;
        REQUIRE(on_device == p.kv_gpu_sequences * p.kv_sequence_bytes);
        REQUIRE(p.device_bytes <= in.budget);
        split = split || (p.kv_gpu_sequences > 0 && p.kv_gpu_sequences < 4);
        last = p.kv_gpu_sequences;
    }
    REQUIRE(split);
    REQUIRE(last == 4);
    in.kv = KvPlace::host;
    REQUIRE(plan_memory(in).kv_gpu_sequences == 0);
}

TEST_CASE("CUDA: sequences whose caches are split between the GPU and the host", "[batch][gpu][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(make_model("tiny-qwen3", dir));
    const auto prompts = ragged_prompts(model.config().vocab_size, bos_of(model));
    CudaEngineOptions o;
    o.ctx = 4096;
    CudaEngine alone(model, o);
    const auto want = alone_greedy(alone, prompts);
    o.sequences = 4;
    o.vram_budget = split_budget(CudaEngine(model, o).plan_input());
    REQUIRE(o.vram_budget > 0);
    CudaEngine e(model, o);
    INFO(e.plan().kv_gpu_sequences << " of 4 sequences' caches on the GPU");
    REQUIRE(e.plan().kv_gpu_sequences > 0);
    REQUIRE(e.plan().kv_gpu_sequences < 4);
    require_same_sequences(batched_greedy(e, prompts, 4), want);
#endif
}

TEST_CASE("CUDA: more sequences than the memory holds are lowered to what fits", "[batch][gpu][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(make_model("tiny-qwen3", dir));
    CudaEngineOptions o;
    o.ctx = 4096;
    o.kv = KvPlace::gpu; // every cache on the GPU: 64 of them cannot fit in 180 MiB (one needs about 120)
    o.vram_budget = 180ull << 20;
    o.sequences = 64;
    CudaEngine e(model, o);
    INFO(e.max_slots() << " sequences planned");
    REQUIRE(e.max_slots() >= 1);
    REQUIRE(e.max_slots() < 64);
    REQUIRE(e.plan().fits);
    REQUIRE(e.plan().kv_gpu_sequences == e.max_slots());
    REQUIRE(e.plan().device_bytes <= o.vram_budget);
    const auto prompts = ragged_prompts(model.config().vocab_size, bos_of(model));
    CudaEngine alone(model, CudaEngineOptions{});
    require_same_sequences(batched_greedy(e, prompts, std::min<size_t>(e.max_slots(), 3)), alone_greedy(alone, prompts));
#endif
}

TEST_CASE("a slot past those planned is refused, one line", "[batch][gpu][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(make_model("tiny-qwen2", dir));
    CudaEngineOptions o;
    o.ctx = 256;
    o.sequences = 2;
    CudaEngine e(model, o);
    REQUIRE_THROWS_WITH(e.set_slots(3), Catch::Contains("planned KV caches for 2 sequences"));
#endif
}

TEST_CASE("generate_batch: greedy and seeded sampling give each prompt its text alone", "[batch][generate]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::split_into(test::tinystories_dir(), dir / "ts"));
    auto tok = load_tokenizer(dir / "ts");
    const std::vector<std::string> texts = {"Once upon a time", "Lily", "The big dog ran to the park and saw a little "
                                            "bird in a tree. The bird was sad because", "Tom said"};
    for (SamplingParams sp : {SamplingParams{}, SamplingParams{0.9f, 40, 0.95f, 0.0f, 1.1f, 0}}) {
        INFO("temperature " << sp.temperature);
        GenerateOptions g;
        g.sampling = sp;
        g.stop_ids = {2};
        std::vector<BatchPrompt> prompts;
        for (size_t i = 0; i < texts.size(); ++i)
            prompts.push_back({i, tok->encode(texts[i], true), 10 + 9 * i, 100 + i});
        CpuEngine e(model, {});
        e.set_slots(2);
        std::vector<BatchOutcome> got(prompts.size());
        const BatchStats st = generate_batch(e, *tok, prompts, g, [&](BatchOutcome&& o) { got[o.index] = std::move(o); });
        REQUIRE(st.generated > 0);
        for (const BatchPrompt& p : prompts) {
            INFO("prompt " << p.index);
            CpuEngine alone(model, {});
            GenerateOptions a = g;
            a.max_tokens = p.max_tokens;
            a.sampling.seed = p.seed;
            std::string text;
            const GenerateResult r = generate(alone, *tok, p.ids, a, [&](const std::string& t) { text += t; });
            CHECK(got[p.index].tokens == r.tokens);
            CHECK(got[p.index].text == text);
            CHECK(got[p.index].stop_reason == r.stop_reason);
        }
    }
}
