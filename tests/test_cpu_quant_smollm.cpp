// SPDX-License-Identifier: Apache-2.0
// The README's main job end to end: SmolLM2-135M-Instruct as a Q4_1 GGUF, greedy, on the
// chat prompt, gives transformers' text (f32 activations, the dequantized weights: ids
// [504, 3575, 282, 4649, 314, 7042, 30, 2], EOS ending it). 8-bit activations change the first
// token of this prompt, which is why the exact mode is the default. Skipped (visibly) where
// the model is absent.
#include "helpers.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <string>

using namespace rabbit;
using Catch::Matchers::Contains;

namespace {

std::string smollm2_q4_1() {
    const char* home = std::getenv("HOME");
    return std::string(home ? home : "") + "/.cache/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
}

} // namespace

TEST_CASE("SmolLM2 Q4_1 on the CPU says transformers' greedy text in the exact mode", "[cli][quant][smollm]") {
    const std::string path = smollm2_q4_1();
    if (!test::exists(path)) {
        WARN("SKIPPED: " << path << " is absent");
        return;
    }
    test::TempDir dir;
    const std::vector<std::string> run = {"-q", "run", "-m", path, "--prompt", "What is the capital of France?",
                                          "--temp", "0", "-n", "32", "--device", "cpu"};
    // The best instruction set, then AVX2 (the portable loops are the kernel tests' to check:
    // their scalar dequantization is slow for a whole model).
    for (const char* isa : {"", "avx2"}) {
        const std::map<std::string, std::string> env = {{"RABBIT_CACHE", dir / "cache"}, {"RABBIT_ISA", isa}};
        const test::RunResult r = test::run_rabbit(run, env);
        INFO("RABBIT_ISA=" << isa << ": " << r.err);
        REQUIRE(r.exit_code == 0);
        REQUIRE(r.out == "The capital of France is Paris.\n");
    }
    // The 8-bit mode still runs (its text is llama.cpp's arithmetic, not transformers').
    std::vector<std::string> q8 = run;
    q8[9] = "4"; // -n
    q8.insert(q8.end(), {"--act-quant", "q8"});
    const test::RunResult r = test::run_rabbit(q8, {{"RABBIT_CACHE", dir / "cache"}});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_FALSE(r.out.empty());
    const test::RunResult bad = test::run_rabbit({"run", "-m", path, "--act-quant", "q4"});
    REQUIRE(bad.exit_code != 0);
    REQUIRE_THAT(bad.err, Contains("--act-quant"));
}
