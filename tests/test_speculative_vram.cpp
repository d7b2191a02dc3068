// SPDX-License-Identifier: Apache-2.0
// A draft model resident in VRAM beside a target on the same GPU (CudaEngineOptions::
// all_resident, draft_bytes; cli/draft_engine.h): greedy text as without a draft while the
// target streams, the draft's weights never read from its files or copied during decode, the
// target's plan made in the budget less the draft's share, and the command line's placement
// (the fallback to the CPU, the refusal when forced, the error when even the target alone does
// not fit).
#include "common/error.h"
#include "engine/memory_plan.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "gpu.h"
#include "helpers.h"
#include "speculative_helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

#include <algorithm>
#include <map>
#include <string>
#include <vector>

using namespace rabbit;
using Catch::Contains;

namespace {

#ifdef RABBIT_HAVE_CUDA
uint64_t weight_bytes(const SplitModel& m) {
    uint64_t n = 0;
    for (const auto& u : m.manifest().units) n += u.layout.data_size;
    return n;
}

// A draft on the GPU as `rabbit run --draft` makes it: every unit resident, ctx positions.
CudaEngineOptions resident_draft(uint64_t ctx) {
    CudaEngineOptions o;
    o.all_resident = true;
    o.ctx = ctx;
    return o;
}

// The draft's weights stayed where they were loaded: nothing read from its files or copied
// to the device since, no ring.
void require_no_weight_traffic(const CudaEngine& draft, const SplitModel& model) {
    const StreamStats st = draft.stream_stats();
    REQUIRE(st.file_bytes == 0);
    REQUIRE(st.link_bytes == 0);
    REQUIRE(draft.stats().ring.pieces == 0);
    REQUIRE(draft.plan().ring_bytes == 0);
    // Every unit a pass reads (an untied embedding is not one: its rows are gathered on the host).
    REQUIRE(draft.plan().resident_bytes == weight_bytes_per_token(plan_units(model.manifest().units), model.roles().tied));
    REQUIRE(draft.plan().streamed_per_token == 0);
    REQUIRE(!draft.plan().kv_on_host);
}
#endif

// "the minimum is 106 MiB" in an error: the size in whole MiB, rounded up.
uint64_t minimum_mib(const std::string& err) {
    const size_t at = err.find("the minimum is ");
    REQUIRE(at != std::string::npos);
    REQUIRE_THAT(err.substr(at + 15, 12), Contains(" MiB"));
    return uint64_t(std::stod(err.substr(at + 15))) + 1;
}

} // namespace

TEST_CASE("a draft model resident in VRAM beside a streamed target: the same greedy text", "[gpu][speculative][tree]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    // Chains on a Qwen3, trees on a Qwen2 (its qkv bias).
    for (test::DraftShape shape : {test::DraftShape::chain, test::DraftShape::tree}) {
        const char* preset = shape == test::DraftShape::chain ? "tiny-qwen3" : "tiny-qwen2";
        INFO(preset);
        test::TempDir dir;
        const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", preset, 1));
        const SplitModel other = SplitModel::open(test::tiny_synthetic_model(dir, "o", preset, 2));
        const auto tok = load_tokenizer(model.dir());
        CudaEngine self(model, resident_draft(512)), draft(other, resident_draft(512));
        CudaEngineOptions o;
        o.max_resident = 0; // every unit through the ring
        o.draft_bytes = self.resident_share() + draft.resident_share();
        CudaEngine target(model, o);
        REQUIRE(target.plan().draft_bytes == o.draft_bytes);
        const StreamStats before = target.stream_stats();
        const double per_pass = require_same_greedy(shape, target, *tok, test::k_spec_prompt, self, &draft, 32);
        CHECK(per_pass >= 3.0);
        REQUIRE(target.stream_stats().link_bytes > before.link_bytes); // the target streamed
        require_no_weight_traffic(self, model);
        require_no_weight_traffic(draft, other);
        // What the check sees of a draft that streams: its units read and copied for a pass.
        CudaEngineOptions streamed;
        streamed.max_resident = 0;
        streamed.ctx = 512;
        CudaEngine streaming(other, streamed);
        std::vector<float> logits;
        streaming.forward(test::k_spec_prompt.data(), 4, 1, logits);
        REQUIRE(streaming.stream_stats().link_bytes > 0);
        REQUIRE(streaming.stats().ring.pieces > 0);
    }
#endif
}

TEST_CASE("tinystories-656k as its own draft, resident in VRAM, the target streamed: the same greedy text",
          "[gpu][speculative][tree][golden]") {
    if (!test::have_shared()) return;
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    const SplitModel model = SplitModel::open(test::split_into(test::tinystories_dir(), dir / "ts"));
    const auto tok = load_tokenizer(model.dir());
    CudaEngine self(model, resident_draft(512));
    CudaEngineOptions o;
    o.max_resident = 0;
    o.draft_bytes = self.resident_share();
    CudaEngine target(model, o);
    const double per_pass = require_same_greedy(test::DraftShape::tree, target, *tok,
                                                tok->encode("Once upon a time, there was a dog named", true), self, nullptr, 48);
    CHECK(per_pass >= 3.0);
    REQUIRE(target.stream_stats().link_bytes > 0);
    require_no_weight_traffic(self, model);
#endif
}

TEST_CASE("the target's plan is made in the VRAM budget less the resident draft's share", "[gpu][speculative]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", "tiny-qwen2", 1));
    const SplitModel other = SplitModel::open(test::tiny_synthetic_model(dir, "o", "tiny-qwen2", 2));
    const CudaEngine draft(other, resident_draft(256));
    // Its share: its allocations in whole pages and its own cuBLAS memory; not the kernels'
    // code or the driver's reserve, which the target counts once.
    const MemoryPlan& dp = draft.plan();
    uint64_t pages = 0;
    for (const PlannedAllocation& a : dp.allocations) pages += device_pages(a.bytes);
    const uint64_t cublas = draft.plan_input().overhead - k_kernel_code_reserve;
    REQUIRE(draft.resident_share() == pages + cublas);
    REQUIRE(draft.resident_share() >= weight_bytes(other) + dp.kv_cache_bytes);

    // The target everything resident needs `all`; a budget of all + share less a page holds
    // the target whole without the draft, but not beside it.
    CudaEngineOptions big;
    big.vram_budget = 1ull << 36;
    big.ctx = 256;
    const uint64_t all = CudaEngine(model, big).plan().device_bytes;
    CudaEngineOptions o;
    o.ctx = 256;
    o.draft_bytes = draft.resident_share();
    o.vram_budget = all + o.draft_bytes - k_device_page;
    const CudaEngine target(model, o);
    const MemoryPlanInput& in = target.plan_input();
    REQUIRE(in.budget == o.vram_budget);
    REQUIRE(in.draft_bytes == o.draft_bytes);
    REQUIRE(target.stats().budget == o.vram_budget);
    const MemoryPlan& p = target.plan();
    REQUIRE(p.draft_bytes == o.draft_bytes);
    REQUIRE(p.fits);
    REQUIRE(p.ring_bytes > 0); // not everything resident beside the draft
    REQUIRE(p.device_bytes <= in.budget - in.draft_bytes);

    // Exactly the plan of the budget less the share, and not the whole budget's.
    MemoryPlanInput rest = in;
    rest.draft_bytes = 0;
    rest.budget = in.budget - in.draft_bytes;
    const MemoryPlan q = plan_memory(rest);
    REQUIRE(q.device_bytes == p.device_bytes);
    REQUIRE(q.resident == p.resident);
    REQUIRE(q.ring_slot_bytes == p.ring_slot_bytes);
    REQUIRE(q.minimum_budget + in.draft_bytes == p.minimum_budget);
    rest.budget = in.budget;
    REQUIRE(plan_memory(rest).ring_bytes == 0); // the whole budget would hold every unit

    // A budget below the draft's own need: exit 6, naming what it needs.
    CudaEngineOptions tiny = resident_draft(256);
    tiny.vram_budget = 8ull << 20;
    try {
        CudaEngine(other, tiny);
        FAIL("a draft larger than its budget was made");
    } catch (const Error& e) {
        REQUIRE(e.code() == ExitCode::resources);
        REQUIRE_THAT(e.what(), Contains(other.dir() + " resident in VRAM needs "));
    }
#endif
}

TEST_CASE("rabbit run and bench --draft on the GPU: resident in VRAM when it fits, else on the CPU or refused",
          "[gpu][speculative][cli]") {
    if (!test::gpu_available()) return;
    test::TempDir dir;
    const std::string target = test::tiny_synthetic_model(dir, "t", "tiny-qwen2", 1);
    const std::string draft = test::tiny_synthetic_model(dir, "o", "tiny-qwen2", 2);
    const std::map<std::string, std::string> env = {{"RABBIT_EMU_QUIET", "1"}};
    const std::vector<std::string> base = {"-v", "run", "-m", target, "-p", "hello hello hello", "-n", "24",
                                           "--device", "cuda", "--ctx", "256"};
    const test::RunResult plain = test::run_rabbit(base, env);
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_rabbit(args, env);
    };

    // Room for both: the draft on the GPU, its share a line of the target's plan.
    const test::RunResult both = with({"--vram-budget", "4G", "--draft", draft});
    INFO(both.err);
    REQUIRE(both.exit_code == 0);
    REQUIRE(both.out == plain.out);
    REQUIRE_THAT(both.err, Contains("draft model " + draft + ": on the GPU, "));
    REQUIRE_THAT(both.err, Contains("draft:a draft model resident beside it: ") && Contains(" of the 4.00 GiB budget"));
    REQUIRE_THAT(both.err, Contains("draft's resident:"));
    // inspect --draft plans the same share.
    auto share = [](const std::string& text) {
        const std::string key = "a draft model resident beside it: ";
        const size_t at = text.find(key);
        REQUIRE(at != std::string::npos);
        return text.substr(at + key.size(), text.find(" of the ", at) - at - key.size());
    };
    const test::RunResult inspect =
        test::run_rabbit({"inspect", target, "--vram-budget", "4G", "--ctx", "256", "--draft", draft}, env);
    REQUIRE(inspect.exit_code == 0);
    REQUIRE(share(inspect.out) == share(both.err));

    // At 1M: what the draft needs alone, and the target's minimum.
    const test::RunResult tiny = with({"--vram-budget", "1M", "--draft", draft});
    REQUIRE(tiny.exit_code == int(ExitCode::resources));
    const uint64_t mib = minimum_mib(tiny.err);
    const size_t needs = tiny.err.find(" resident in VRAM needs ");
    REQUIRE(needs != std::string::npos);
    const uint64_t draft_mib = uint64_t(std::stod(tiny.err.substr(needs + 24))) + 1;
    // Room for either alone, not for both: the draft on the CPU (one notice), or, forced onto
    // the GPU, exit 6 naming the draft's share.
    const std::string either = std::to_string(std::max(mib, draft_mib)) + "M";
    const test::RunResult fallback = with({"--vram-budget", either, "--draft", draft});
    INFO(fallback.err);
    REQUIRE(fallback.exit_code == 0);
    REQUIRE(fallback.out == plain.out);
    REQUIRE_THAT(fallback.err, Contains("not on the GPU (--vram-budget ") && Contains("beside a resident draft model's ") &&
                                   Contains("running it on the CPU, resident in RAM"));
    REQUIRE_THAT(fallback.err, Contains("draft model " + draft + ": on the CPU, "));
    const test::RunResult forced = with({"--vram-budget", either, "--draft", draft, "--draft-device", "cuda"});
    REQUIRE(forced.exit_code == int(ExitCode::resources));
    REQUIRE_THAT(forced.err, Contains("--draft-device cuda: --vram-budget ") && Contains("beside a resident draft model's "));
    REQUIRE(forced.out.empty());
    // Room for the target, not for the draft even alone: the same fallback, or refusal.
    if (draft_mib > mib + 1) {
        const std::string target_only = std::to_string(mib) + "M";
        const test::RunResult alone = with({"--vram-budget", target_only, "--draft", draft});
        REQUIRE(alone.exit_code == 0);
        REQUIRE(alone.out == plain.out);
        REQUIRE_THAT(alone.err, Contains(" resident in VRAM needs ") && Contains("running it on the CPU"));
        const test::RunResult refused = with({"--vram-budget", target_only, "--draft", draft, "--draft-device", "cuda"});
        REQUIRE(refused.exit_code == int(ExitCode::resources));
        REQUIRE_THAT(refused.err, Contains("--draft-device cuda: ") && Contains(" resident in VRAM needs "));
    }

    // Too small for the target alone as well: the fallback does not save it.
    const test::RunResult small = with({"--vram-budget", std::to_string(mib - 2) + "M", "--draft", draft});
    REQUIRE(small.exit_code == int(ExitCode::resources));
    REQUIRE_THAT(small.err, Contains("the minimum is "));
    REQUIRE(small.out.empty());

    // --draft-device cpu keeps it in RAM whatever the budget; it goes with a draft model only.
    const test::RunResult cpu = with({"--vram-budget", "4G", "--draft", draft, "--draft-device", "cpu"});
    REQUIRE(cpu.exit_code == 0);
    REQUIRE(cpu.out == plain.out);
    REQUIRE_THAT(cpu.err, Contains(": on the CPU, ") && !Contains("a draft model resident beside it"));
    REQUIRE(with({"--draft", "ngram", "--draft-device", "cuda"}).exit_code == int(ExitCode::usage));

    // bench places it the same way, and says where.
    const test::RunResult bench = test::run_rabbit({"bench", "-m", target, "--backend", "cuda", "--vram", "4G", "--draft",
                                                    draft, "--prompt-len", "8", "--gen", "8", "--repeat", "1",
                                                    "--warmup", "0", "--read-bytes", "0"},
                                                   env);
    INFO(bench.err);
    REQUIRE(bench.exit_code == 0);
    REQUIRE_THAT(bench.out, Contains(" | draft on |") && Contains(" | GPU, ") && Contains(" of 4.00 GiB |\n"));
}
