// SPDX-License-Identifier: Apache-2.0
// Llama 3 GGUFs: llama.cpp's converter stores llama3 rope_scaling as rope_freqs.weight, one
// divisor per frequency, and no metadata. rabbit recovers the scaling's parameters from
// them, so the split's config and logits are those of the Hugging Face original. YaRN GGUFs
// keep theirs as metadata.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "engine_helpers.h"
#include "format/gguf.h"
#include "format/gguf_rope.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "gguf_writer.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>

using namespace rabbit;
using Catch::Contains;

namespace {

RopeScaling llama3(double factor, double low, double high, uint64_t original) {
    RopeScaling s;
    s.type = RopeScaling::Type::llama3;
    s.factor = factor;
    s.low_freq_factor = low;
    s.high_freq_factor = high;
    s.original_max_position_embeddings = original;
    return s;
}

// tiny-llama3 with heads of 32 and base 10000: three of its 16 frequencies lie in the
// transition band of original_max_position_embeddings 64, which pins the parameters.
GenSpec banded_llama3() {
    GenSpec spec = preset_spec("tiny-llama3");
    spec.config.num_heads = 2;
    spec.config.num_kv_heads = 1;
    spec.config.head_dim = 32;
    spec.config.rope_theta = 10000;
    spec.seed = 5;
    return spec;
}

void require_same_logits(const std::string& a, const std::string& b) {
    const SplitModel ma = SplitModel::open(a), mb = SplitModel::open(b);
    CpuEngine ea(ma, {}), eb(mb, {});
    const std::vector<int32_t> prompt = {1, 17, 300, 4, 99, 7, 250, 3};
    test::require_same(test::prompt_and_steps_logits(eb, prompt), test::prompt_and_steps_logits(ea, prompt));
}

} // namespace

TEST_CASE("llama3 RoPE parameters are recovered from the converter's factors", "[gguf]") {
    struct Case {
        RopeScaling s;
        double theta;
        uint64_t head_dim, context;
    };
    for (const Case& c : {Case{llama3(8, 1, 4, 8192), 500000, 128, 131072},  // Llama 3.1 8B
                          Case{llama3(32, 1, 4, 8192), 500000, 64, 131072},  // Llama 3.2 1B
                          Case{llama3(8, 1, 4, 64), 500000, 64, 2048},       // the cache's llama3 test model
                          Case{llama3(4, 2, 8, 1024), 10000, 64, 4096},
                          Case{llama3(16, 1, 4, 64), 10000, 32, 512}}) {
        INFO("factor " << c.s.factor << " low " << c.s.low_freq_factor << " high " << c.s.high_freq_factor << " original "
                       << c.s.original_max_position_embeddings << " head_dim " << c.head_dim);
        const std::vector<float> f = llama3_rope_factors(c.s, c.theta, c.head_dim);
        const auto r = llama3_scaling_of_factors(f, c.theta, c.head_dim, c.context);
        REQUIRE(r);
        // (4, 2, 8, 1024) is (4, 1, 4, 512) to within rounding; either gives the same frequencies.
        if (c.s.low_freq_factor == 1) REQUIRE(*r == c.s);
        REQUIRE(llama3_rope_factors(*r, c.theta, c.head_dim) == f);
    }
    std::vector<float> ones(32, 1.0f);
    REQUIRE(llama3_scaling_of_factors(ones, 10000, 64, 2048)->type == RopeScaling::Type::none);
    std::vector<float> f = llama3_rope_factors(llama3(8, 1, 4, 64), 500000, 64);
    f[5] *= 1.01f; // a band value off the rule
    REQUIRE_FALSE(llama3_scaling_of_factors(f, 500000, 64, 2048));
    REQUIRE_FALSE(llama3_scaling_of_factors(std::vector<float>(31, 2.0f), 500000, 64, 2048)); // one short
    std::vector<float> below(32, 8.0f);
    below[0] = 0.5f; // factors below 1 speed a frequency up: not llama3
    REQUIRE_FALSE(llama3_scaling_of_factors(below, 500000, 64, 2048));
}

TEST_CASE("a Llama 3 GGUF with rope_freqs.weight splits as its safetensors, rope_scaling and logits", "[gguf][engine]") {
    test::TempDir dir;
    for (uint32_t parts : {1u, 2u}) {
        INFO(parts << " part(s)");
        GenSpec spec = banded_llama3();
        generate_model(spec, dir / "hf");
        test::GgufConversion conv;
        conv.parts = parts;
        const std::string gguf = test::convert_hf_to_gguf(dir / "hf", dir / ("m" + std::to_string(parts)), conv);
        REQUIRE(open_gguf_set(gguf).find_tensor("rope_freqs.weight").second);
        const std::string a = test::split_into(dir / "hf", dir / ("from_hf" + std::to_string(parts)), DTypeChoice::keep);
        const std::string b = test::split_into(gguf, dir / ("from_gguf" + std::to_string(parts)));
        test::require_same_units(a, b); // the config too: rope_scaling llama3 (8, 1, 4, 64)
        REQUIRE(SplitModel::open(b).config().rope_scaling == spec.config.rope_scaling);
        require_same_logits(a, b);
    }
    // The preset's heads of 8: no frequency in the band; the recovered scaling gives the same
    // frequencies and so the same logits.
    GenSpec spec = preset_spec("tiny-llama3");
    spec.seed = 6;
    generate_model(spec, dir / "hf8");
    const std::string gguf = test::convert_hf_to_gguf(dir / "hf8", dir / "m8.gguf");
    require_same_logits(test::split_into(dir / "hf8", dir / "a8", DTypeChoice::keep), test::split_into(gguf, dir / "b8"));
}

TEST_CASE("rope_freqs.weight that is not Llama 3 scaling is refused in one line", "[gguf][cli]") {
    test::TempDir dir;
    generate_model(banded_llama3(), dir / "hf");
    const std::string path = test::convert_hf_to_gguf(dir / "hf", dir / "m.gguf");
    GgufFile good = GgufFile::open(path);
    const GgufTensorInfo* t = good.find_tensor("rope_freqs.weight");
    REQUIRE(t);
    std::string bytes = test::read_file(path);
    float v;
    std::memcpy(&v, &bytes[size_t(t->offset) + 4 * 4], 4);
    v *= 1.05f; // a band value off the rule
    std::memcpy(&bytes[size_t(t->offset) + 4 * 4], &v, 4);
    test::write_file(dir / "bad.gguf", bytes);
    const test::RunResult r = test::run_rabbit({"split", dir / "bad.gguf", "-o", dir / "out"});
    REQUIRE(r.exit_code == int(ExitCode::unsupported));
    REQUIRE_THAT(r.err, Contains("rope_freqs.weight whose factors are not Llama 3 RoPE scaling"));
}

TEST_CASE("llama.cpp's own Llama 3 GGUF (rope_freqs.weight) splits as its safetensors", "[gguf][llama.cpp]") {
    // scripts/make_gguf_models.sh llama3 converts a random llama3-scaled model with llama.cpp.
    const char* home = std::getenv("HOME");
    const char* env = std::getenv("RABBIT_GGUF_DIR");
    const std::string cache = env ? std::string(env) : std::string(home ? home : "") + "/.cache/rabbit/gguf";
    const std::string hf = cache + "/llama3/hf", gguf = cache + "/llama3/llama3-F32.gguf";
    if (!test::exists(gguf) || !test::exists(hf + "/model.safetensors")) {
        WARN("SKIPPED: no converter-made " << gguf << " (scripts/make_gguf_models.sh llama3 makes it)");
        return;
    }
    test::TempDir dir;
    const std::string a = test::split_into(hf, dir / "hf", DTypeChoice::keep), b = test::split_into(gguf, dir / "gguf");
    test::require_same_units(a, b, false);
    require_same_logits(a, b);
}

TEST_CASE("a YaRN GGUF (rope.scaling.type yarn) splits as its safetensors and matches transformers", "[gguf][engine][rope]") {
    // Qwen2.5's model-card scaling, as llama.cpp's converter stores it: type, factor and
    // original_context_length; then beta_fast/beta_slow as metadata too.
    for (const char* name : {"qwen2-yarn", "qwen3-yarn-mscale"}) {
        INFO(name);
        const test::HfGolden g = test::read_hf_golden(name);
        test::TempDir dir;
        const std::string a = test::make_golden_model(g, "f32", dir.path());
        const std::string gguf = test::convert_hf_to_gguf(dir / "hf", dir / "m.gguf");
        const std::string b = test::split_into(gguf, dir / "from_gguf");
        const ModelConfig want = SplitModel::open(a).config();
        const RopeScaling got = SplitModel::open(b).config().rope_scaling;
        REQUIRE(got.type == RopeScaling::Type::yarn);
        REQUIRE(got.factor == want.rope_scaling.factor);
        REQUIRE(got.original_max_position_embeddings == want.rope_scaling.original_max_position_embeddings);
        REQUIRE(got.beta_fast == want.rope_scaling.beta_fast);
        REQUIRE(got.beta_slow == want.rope_scaling.beta_slow);
        if (want.rope_scaling.mscale != 0) continue; // mscale/mscale_all_dim: llama.cpp's converter drops them
        const SplitModel mb = SplitModel::open(b);
        CpuEngine engine(mb, {});
        std::vector<float> logits;
        engine.forward(g.prompt.data(), g.prompt.size(), g.prompt.size(), logits);
        CHECK(test::worst_error(logits, g.prompt_logits, 1e-4, 1e-4) <= 1.0);
    }
}
