// SPDX-License-Identifier: Apache-2.0
// Draft trees (engine/speculative.h, Engine::forward_tree): the tree mask attention gives each
// token what running its root-to-leaf path alone gives, and keep_rows leaves the cache as that
// path's decode would; the budget rule follows the measured costs. Greedy output with tree
// drafts is checked beside chains' in test_speculative.cpp.
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

#include <map>
#include <string>
#include <vector>

using namespace rabbit;

namespace {

// A tree under the current token 0: 0 -> {1, 2}, 1 -> {3, 6}, 2 -> 4, 3 -> 5 (indices; the
// tokens are arbitrary ids). Paths 0-1-3-5, 0-1-6, 0-2-4.
const std::vector<int32_t> k_tree_tokens = {21, 400, 401, 402, 403, 404, 405};
const std::vector<int64_t> k_tree_parent = {-1, 0, 0, 1, 2, 3, 1};

std::vector<size_t> path_to(size_t node) {
    std::vector<size_t> p;
    for (int64_t i = int64_t(node); i >= 0; i = k_tree_parent[size_t(i)]) p.insert(p.begin(), size_t(i));
    return p;
}

// The tree through `target` after the prompt, against each node's path run alone through
// `alone` (the prompt, then the path as one chain); then the path to node 5 kept and one more
// token decoded, against the same on `alone`. Within a tolerance: a product over the tree's
// rows rounds differently from one over the path's (the attention itself is the path's, on
// the CPU bit for bit, but the matrix kernels' blocking depends on the rows).
void require_tree_is_paths(Engine& target, Engine& alone) {
    const size_t vocab = target.config().vocab_size, n = k_tree_tokens.size();
    std::vector<float> logits, tree_logits, want;
    target.reset();
    target.forward(test::k_spec_prompt.data(), test::k_spec_prompt.size() - 1, 1, logits);
    const size_t pos = target.position();
    std::vector<int64_t> rows;
    for (int64_t p : k_tree_parent) rows.push_back(p < 0 ? -1 : int64_t(pos) + p);
    target.forward_tree(k_tree_tokens.data(), rows.data(), n, tree_logits);
    REQUIRE(tree_logits.size() == n * vocab);
    REQUIRE(target.position() == pos + n);
    for (size_t node = 0; node < n; ++node) {
        INFO("node " << node);
        std::vector<int32_t> path;
        for (size_t i : path_to(node)) path.push_back(k_tree_tokens[i]);
        alone.reset();
        alone.forward(test::k_spec_prompt.data(), test::k_spec_prompt.size() - 1, 1, logits);
        alone.forward(path.data(), path.size(), 1, want);
        const std::vector<float> got(tree_logits.begin() + long(node * vocab), tree_logits.begin() + long((node + 1) * vocab));
        REQUIRE(test::worst_error(got, want, 1e-4, 1e-3) <= 1.0);
    }
    // Keep 0-1-3-5: the cache then holds the prompt and that path, in place.
    target.keep_rows(pos, path_to(5));
    REQUIRE(target.position() == pos + 4);
    const int32_t next = 77;
    target.forward(&next, 1, 1, logits);
    std::vector<int32_t> path = {21, 400, 402, 404, next};
    alone.reset();
    alone.forward(test::k_spec_prompt.data(), test::k_spec_prompt.size() - 1, 1, want);
    alone.forward(path.data(), path.size(), 1, want);
    REQUIRE(test::worst_error(logits, want, 1e-4, 1e-3) <= 1.0);
}

} // namespace

TEST_CASE("a draft tree's attention is each root-to-leaf path's, on the CPU", "[speculative][tree][engine]") {
    for (const char* preset : {"tiny-qwen2", "tiny-qwen3"}) {
        INFO(preset);
        test::TempDir dir;
        const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", preset, 3));
        EngineOptions streamed;
        streamed.ram_budget = 0;
        CpuEngine target(model, streamed), alone(model, {});
        require_tree_is_paths(target, alone);
    }
}

TEST_CASE("a draft tree's attention is each root-to-leaf path's, on the CUDA engine", "[gpu][speculative][tree]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", "tiny-qwen3", 3));
    CudaEngineOptions o;
    o.max_resident = 0;
    CudaEngine target(model, o);
    CpuEngine alone(model, {});
    require_tree_is_paths(target, alone);
#endif
}

TEST_CASE("keep_rows and forward_tree refuse what is not a tree's path", "[speculative][tree][engine]") {
    test::TempDir dir;
    const SplitModel model = SplitModel::open(test::tiny_synthetic_model(dir, "t", "tiny-qwen3", 3));
    CpuEngine e(model, {});
    std::vector<float> logits;
    e.forward(test::k_spec_prompt.data(), test::k_spec_prompt.size() - 1, 1, logits);
    const size_t pos = e.position();
    const std::vector<int64_t> bad = {-1, int64_t(pos) + 1};
    REQUIRE_THROWS(e.forward_tree(k_tree_tokens.data(), bad.data(), 2, logits));
    e.truncate(pos);
    std::vector<int64_t> rows;
    for (int64_t p : k_tree_parent) rows.push_back(p < 0 ? -1 : int64_t(pos) + p);
    e.forward_tree(k_tree_tokens.data(), rows.data(), rows.size(), logits);
    REQUIRE_THROWS(e.forward(k_tree_tokens.data(), 1, 1, logits)); // the tree is not put away
    REQUIRE_THROWS(e.keep_rows(pos, {0, 2, 3})); // 3 is 1's child, not 2's
    e.truncate(pos);
    e.forward(k_tree_tokens.data(), 1, 1, logits); // truncated: a plain sequence again
}

TEST_CASE("ngram trees: the continuations of the latest matches, merged", "[speculative][tree]") {
    NgramDrafter d;
    // "5 6" is followed by 9 8 5 6 (latest), 7 1 5 6 9 8 and 9 3 5 6 ..: 9 -> {8, 3}, 7 -> 1.
    const Draft t = d.propose_tree({5, 6, 9, 3, 5, 6, 7, 1, 5, 6, 9, 8, 5, 6}, 14);
    REQUIRE(t.tokens.size() == 14);
    REQUIRE(t.tokens[0] == 9);
    REQUIRE(t.parents[0] == -1);
    REQUIRE(t.tokens[1] == 8);
    REQUIRE(t.parents[1] == 0);
    bool seven = false, three = false;
    for (size_t i = 0; i < t.tokens.size(); ++i) {
        seven = seven || (t.tokens[i] == 7 && t.parents[i] == -1);
        three = three || (t.tokens[i] == 3 && t.parents[i] == 0);
    }
    REQUIRE(seven);
    REQUIRE(three);
    REQUIRE(d.propose_tree({1, 2, 3}, 4).tokens.empty());
}

TEST_CASE("the tree budget follows the measured costs and the acceptance", "[speculative][tree]") {
    // Passes at budgets b whose accepted drafts are c ln(1 + b), pass time t0 + t1 (b + 1),
    // draft time t_d a token.
    auto stats = [](double c, double t0, double t1, double t_d) {
        SpecStats s;
        for (size_t b : {32, 16, 32, 8, 32, 4, 32, 32})
            s.add_pass(b, size_t(c * std::log(1.0 + double(b))), t_d * double(b), t0 + t1 * double(b + 1));
        return s;
    };
    const DraftBudget rule(32, true);
    REQUIRE(rule.next(SpecStats{}) == 32);
    REQUIRE(DraftBudget(32, false).next(stats(0, 1, 0, 1)) == 32);
    // A streamed target (flat pass time), cheap drafts, good acceptance: the biggest tree
    // (half of it every 8th pass, to keep measuring the slope).
    const SpecStats streamed = stats(1.5, 10, 0, 0.01);
    REQUIRE(rule.next(streamed) == (streamed.passes % 8 == 7 ? 16u : 32u));
    // Nothing accepted: no tree (one now and then).
    const SpecStats none = stats(0, 1, 0, 0.01);
    REQUIRE(rule.next(none) == (none.passes % 16 == 0 ? 1u : 0u));
    // The pass grows with its width (a resident target on the CPU): a small tree.
    const size_t b = rule.next(stats(1.5, 0.02, 0.01, 0));
    REQUIRE(b >= 1);
    REQUIRE(b <= 8);
}

TEST_CASE("rabbit run --draft-budget: the same text with trees, on both engines", "[speculative][tree][cli][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::vector<std::string> base = {"run", "-m", split, "-p", "Once upon a time, there was a dog named", "-n", "60",
                                           "--ram-budget", "0"};
    const std::map<std::string, std::string> env = {{"RABBIT_CACHE", dir / "cache"}, {"RABBIT_EMU_QUIET", "1"}};
    const test::RunResult plain = test::run_rabbit(base, env);
    REQUIRE(plain.exit_code == 0);
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--draft", split, "--draft-budget", "8"}, {"--draft", "ngram", "--draft-budget", "4"},
          {"--draft", split, "--device", "cuda"}}) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        const test::RunResult r = test::run_rabbit(args, env);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == plain.out);
        REQUIRE_THAT(r.err, Catch::Contains("trees of up to") && Catch::Contains(" tokens per pass ("));
    }
    const test::RunResult both = test::run_rabbit({"run", "-m", split, "-p", "x", "--draft", "ngram", "--draft-max", "4",
                                                   "--draft-budget", "8"});
    REQUIRE(both.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(both.err, Catch::Contains("--draft-max (chains) and --draft-budget (trees) do not go together"));
}

TEST_CASE("rabbit bench --draft: tokens per pass, draft and verify times per configuration", "[speculative][tree][cli][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const test::RunResult r = test::run_rabbit({"bench", "-m", split, "--backend", "cpu", "--prompt-len", "8", "--gen", "24",
                                                "--repeat", "1", "--warmup", "0", "--read-bytes", "0", "--draft",
                                                "none,self,ngram"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.out, Catch::Contains("| configuration | draft | tokens per pass | draft ms/pass | verify ms/pass |"));
    const size_t self = r.out.find("draft self | self | ");
    REQUIRE(self != std::string::npos);
    // The model as its own draft; the budget adapts to the resident target, whose pass grows with its width.
    REQUIRE(std::stod(r.out.substr(self + 20)) >= 2.0);
    REQUIRE_THAT(r.out, Catch::Contains("draft ngram | ngram | "));
}

TEST_CASE("rabbit chat --draft: the same answers as without", "[speculative][tree][cli][golden]") {
    if (!test::have_shared()) return;
    const std::string ts = test::tinystories_dir();
    const std::vector<std::string> base = {"chat", "-m", ts, "--chat-format", "chatml", "-n", "40"};
    const std::string turns = "Once upon a time\nThe dog\n";
    const test::RunResult plain = test::run_rabbit(base, {}, turns);
    REQUIRE(plain.exit_code == 0);
    for (const std::vector<std::string>& extra : {std::vector<std::string>{"--draft", "ngram"}, {"--draft", ts}}) {
        std::vector<std::string> args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        const test::RunResult r = test::run_rabbit(args, {}, turns);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == plain.out);
    }
    REQUIRE(test::run_rabbit({"chat", "-m", ts, "--chat-format", "chatml", "--draft-budget", "4"}, {}, "").exit_code ==
            int(ExitCode::usage));
}
