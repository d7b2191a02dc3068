// SPDX-License-Identifier: Apache-2.0
// Speculative decoding (engine/speculative.h): greedy output identical with and without
// drafts (ngram, the model as its own draft, another model with the same tokenizer) on both
// engines, the target streamed; the sampling rule's output distributed as the target's
// (chi-square, with a check that the same test rejects a wrong rule); the command line.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "engine/generate.h"
#include "engine/speculative.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "gpu.h"
#include "helpers.h"
#include "speculative_helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace rabbit;
using Catch::Contains;


TEST_CASE("ngram drafts: the longest recent match, n from 3 down to 1", "[speculative]") {
    NgramDrafter d;
    // "5 6" ends the context; its latest earlier occurrence is followed by 9 8.
    REQUIRE(d.propose({5, 6, 7, 1, 5, 6, 9, 8, 5, 6}, 4).tokens == std::vector<int32_t>{9, 8, 5, 6});
    REQUIRE(d.propose({5, 6, 7, 1, 5, 6, 9, 8, 5, 6}, 1).tokens == std::vector<int32_t>{9});
    // A 3-gram match wins over a later 1-gram one.
    REQUIRE(d.propose({1, 2, 3, 4, 9, 3, 7, 1, 2, 3}, 2).tokens == std::vector<int32_t>{4, 9});
    REQUIRE(d.propose({1, 2, 3}, 4).tokens.empty());
    REQUIRE(d.propose({4}, 4).tokens.empty());
    REQUIRE(d.propose({4, 4}, 4).tokens == std::vector<int32_t>{4});
}

TEST_CASE("the draft length follows the measured costs and the acceptance", "[speculative]") {
    // passes of the given widths (drafts) with pass time t0 + t1 (drafts + 1), draft time t_d a
    // token, and the given share of drafts accepted.
    auto stats = [](std::vector<size_t> drafts, double t0, double t1, double t_d, double accept) {
        SpecStats s;
        for (size_t d : drafts) s.add_pass(d, size_t(accept * double(d)), t_d * double(d), t0 + t1 * double(d + 1));
        return s;
    };
    const std::vector<size_t> widths = {6, 6, 2, 6, 0, 4, 6, 6, 1, 6};
    const DraftLength rule(6, true);
    REQUIRE(rule.next(SpecStats{}) == 6); // nothing measured yet
    REQUIRE(DraftLength(6, false).next(stats(widths, 0.1, 0, 0.1, 0)) == 6);
    // A streamed target (the pass costs the same for any width), free drafts: the most.
    REQUIRE(rule.next(stats(widths, 0.1, 0, 0, 0.5)) == 6);
    // Drafts as slow as the target, half accepted: none (one now and then, to keep measuring).
    const SpecStats slow = stats(widths, 0.1, 0, 0.1, 0.5);
    REQUIRE(rule.next(slow) == (slow.passes % 16 == 0 ? 1u : 0u));
    // A pass that grows with its width (a resident target on the CPU), half accepted: few.
    const size_t k = rule.next(stats(widths, 0.02, 0.01, 0, 0.5));
    REQUIRE(k >= 1);
    REQUIRE(k <= 2);
}

TEST_CASE("greedy output is the same with and without drafts, chains and trees, on the CPU, the target streamed",
          "[speculative][tree][engine]") {
    for (const char* preset : {"tiny-qwen2", "tiny-qwen3"}) {
        INFO(preset);
        test::TempDir dir;
        const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", preset, 1));
        const SplitModel other = SplitModel::open(test::tiny_synthetic_model(dir, "o", preset, 2));
        const auto tok = load_tokenizer(model.dir());
        EngineOptions streamed;
        streamed.ram_budget = 0; // every unit read from its file for every pass
        CpuEngine target(model, streamed), self(model, {}), draft(other, {});
        for (test::DraftShape shape : {test::DraftShape::chain, test::DraftShape::tree}) {
            INFO((shape == test::DraftShape::chain ? "chains" : "trees"));
            const double per_pass = require_same_greedy(shape, target, *tok, test::k_spec_prompt, self, &draft, 40);
            CHECK(per_pass >= 3.0);
        }
    }
}

TEST_CASE("greedy output is the same with and without drafts, chains and trees, for tinystories-656k",
          "[speculative][tree][engine][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const SplitModel model = SplitModel::open(test::split_into(test::tinystories_dir(), dir / "ts"));
    const auto tok = load_tokenizer(model.dir());
    EngineOptions streamed;
    streamed.ram_budget = 0;
    CpuEngine target(model, streamed), self(model, {});
    for (test::DraftShape shape : {test::DraftShape::chain, test::DraftShape::tree}) {
        const double per_pass = require_same_greedy(shape, target, *tok,
                                                    tok->encode("Once upon a time, there was a dog named", true), self, nullptr, 80);
        WARN("tinystories-656k as its own draft, " << (shape == test::DraftShape::chain ? "a chain of 4: " : "a tree of 16: ")
                                                   << per_pass << " tokens per pass");
        REQUIRE(per_pass >= 3.0);
    }
}

TEST_CASE("greedy output is the same with and without drafts on the CUDA engine, streamed", "[gpu][speculative][tree]") {
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
        CudaEngineOptions o;
        o.max_resident = 0; // every unit through the ring
        CudaEngineOptions plan_only = o;
        plan_only.vram_budget = 1ull << 40;
        o.vram_budget = CudaEngine(model, plan_only).plan().minimum_budget;
        CudaEngine target(model, o);
        CpuEngine self(model, {}), draft(other, {}); // the draft on the CPU engine, as --draft runs it
        const double per_pass = require_same_greedy(shape, target, *tok, test::k_spec_prompt, self, &draft, 32);
        CHECK(per_pass >= 3.0);
    }
#endif
}

TEST_CASE("rabbit run --draft: the same text, and the tokens per pass on the stats line", "[speculative][cli][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::vector<std::string> base = {"run", "-m", split, "-p", "Once upon a time, there was a dog named", "-n", "60",
                                           "--ram-budget", "0"};
    const test::RunResult plain = test::run_rabbit(base);
    REQUIRE(plain.exit_code == 0);
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--draft", "ngram"}, {"--draft", split, "--draft-max", "4", "--draft-fixed"},
          {"--draft", test::tinystories_dir()}, {"--draft", "ngram", "--device", "cuda"}}) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        const test::RunResult r = test::run_rabbit(args, {{"RABBIT_CACHE", dir / "cache"}, {"RABBIT_EMU_QUIET", "1"}});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == plain.out);
        REQUIRE_THAT(r.err, Contains(" tokens per pass (") && Contains("ms per pass"));
    }
}

TEST_CASE("rabbit run --draft on the CUDA engine at its smallest budget: the same text", "[gpu][speculative][cli][golden]") {
    if (!test::have_shared()) return;
    if (!test::gpu_available()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::vector<std::string> base = {"run", "-m", split, "-p", "Once upon a time, there was a dog named", "-n", "40"};
    const test::RunResult plain = test::run_rabbit(base);
    REQUIRE(plain.exit_code == 0);
    // A budget too small says the minimum; at the minimum (rounded up) the weights stream.
    std::vector<std::string> gpu = base;
    gpu.insert(gpu.end(), {"--device", "cuda", "--vram-budget", "1M"});
    const std::map<std::string, std::string> env = {{"RABBIT_EMU_QUIET", "1"}};
    const test::RunResult small = test::run_rabbit(gpu, env);
    REQUIRE(small.exit_code == int(ExitCode::resources));
    const size_t at = small.err.find("the minimum is ");
    REQUIRE(at != std::string::npos);
    const double mib = std::stod(small.err.substr(at + 15));
    REQUIRE_THAT(small.err.substr(at + 15), Contains(" MiB"));
    gpu.back() = std::to_string(int(mib) + 1) + "M";
    // The draft model on the CPU: at the target's minimum there is no room for it in VRAM, and
    // trying (--draft-device auto) loads cuBLAS's kernels first, which the target then does not
    // count, and would find room for every unit.
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--draft", "ngram"}, {"--draft", split, "--draft-device", "cpu"}}) {
        std::vector<std::string> args = gpu;
        args.insert(args.end(), extra.begin(), extra.end());
        const test::RunResult r = test::run_rabbit(args, env);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == plain.out);
        REQUIRE_THAT(r.err, Contains(" tokens per pass (") && Contains("; ring: "));
        REQUIRE_THAT(r.err, !Contains("ring: 0 pieces")); // streamed
    }
}

TEST_CASE("rabbit run --draft refuses a missing draft and one with another vocabulary", "[speculative][cli][bad-input]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const test::RunResult missing = test::run_rabbit({"run", "-m", split, "-p", "x", "--draft", dir / "nothing"});
    REQUIRE(missing.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(missing.err, Contains("--draft: " + dir / "nothing" + ": no such directory"));
    REQUIRE(missing.out.empty());
    const std::string other = test::tiny_synthetic_model(dir, "o", "tiny-qwen2", 1);
    const test::RunResult mismatch = test::run_rabbit({"-q", "run", "-m", split, "-p", "x", "--draft", other});
    REQUIRE(mismatch.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(mismatch.err, Contains("--draft " + other + ": its vocabulary differs from the model's (" + split + ")"));
    REQUIRE(std::count(mismatch.err.begin(), mismatch.err.end(), '\n') == 1); // one line
    REQUIRE(test::run_rabbit({"run", "-m", split, "-p", "x", "--draft", "ngram", "--draft-max", "0"}).exit_code ==
            int(ExitCode::usage));
    const test::RunResult alone = test::run_rabbit({"run", "-m", split, "-p", "x", "--draft-max", "4"});
    REQUIRE(alone.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(alone.err, Contains("--draft-max, --draft-budget and --draft-fixed go with --draft"));
}

TEST_CASE("SmolLM2 says the same with ngram drafts and as its own draft", "[speculative][cli][smollm]") {
    if (!test::have_smollm2()) return;
    test::TempDir dir;
    const std::map<std::string, std::string> env = {{"RABBIT_CACHE", dir / "cache"}};
    const std::vector<std::string> base = {
        "run", "-m", test::smollm2_gguf(), "-n", "40", "-p",
        "Repeat this sentence exactly: The quick brown fox jumps over the lazy dog near the river bank."};
    const test::RunResult plain = test::run_rabbit(base, env);
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--draft", "ngram"}, {"--draft", test::smollm2_gguf(), "--draft-max", "4", "--draft-fixed"},
          {"--draft", test::smollm2_gguf(), "--draft-budget", "12"}}) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        const test::RunResult r = test::run_rabbit(args, env);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == plain.out);
        const size_t at = r.err.find(" tokens per pass");
        REQUIRE(at != std::string::npos);
        WARN("SmolLM2 " << extra[1] << " " << (extra.size() > 2 ? extra[2] : "") << ": " << r.err.substr(r.err.rfind(": ", at) + 2, at - r.err.rfind(": ", at) - 2)
                        << " tokens per pass");
    }
}
