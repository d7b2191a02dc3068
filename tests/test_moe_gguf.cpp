// SPDX-License-Identifier: Apache-2.0
// Mixture-of-experts GGUFs (qwen3moe, qwen2moe with its shared expert, Mixtral as llama with an
// expert count) made by llama.cpp's own converter and llama-quantize from tiny transformers
// checkpoints, against transformers' logits (tests/data/moe_gguf, scripts/moe_gguf_reference.py):
// the stacked experts cut into one byte range per expert, in F32 and Q8_0.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "engine/weights.h"
#include "engine_helpers.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/split_model.h"
#include "gguf_writer.h"
#include "helpers.h"
#include "split/plan.h"

#include <catch2/catch.hpp>

using namespace rabbit;
using Catch::Contains;

namespace {

const std::vector<std::string> k_files = {"qwen3moe-F32",       "qwen2moe-F32",       "mixtral-F32",
                                          "qwen3moe-wide-Q8_0", "qwen2moe-wide-Q8_0", "mixtral-wide-Q8_0"};

std::string data_path(const std::string& name) { return test::source_dir() + "/tests/data/moe_gguf/" + name; }

using Reference = test::MoeReference;

Reference read_gguf_reference(const std::string& name) { return test::read_moe_reference(data_path(name + ".json")); }

// The committed file as a writer holds it, to be spoilt one way per case.
test::GgufWriter rewrite(const std::string& path) {
    const GgufFile f = GgufFile::open(path);
    test::GgufWriter w;
    for (const auto& [k, v] : f.metadata()) w.value(k, v);
    InputFile in(path);
    for (const GgufTensorInfo& t : f.tensors()) {
        std::string data(size_t(t.nbytes), '\0');
        in.read_at(data.data(), data.size(), t.offset);
        w.tensors.push_back({t.name, t.ggml_type, t.ne, data});
    }
    return w;
}

void set_u32(test::GgufWriter& w, const std::string& key, uint32_t v) {
    for (auto& [k, value] : w.kv)
        if (k == key) value = test::gguf_scalar(GgufType::u32, v);
}

void drop_key(test::GgufWriter& w, const std::string& key) {
    for (size_t i = 0; i < w.kv.size(); ++i)
        if (w.kv[i].first == key) w.kv.erase(w.kv.begin() + long(i));
}

test::GgufWriterTensor& tensor(test::GgufWriter& w, const std::string& name) {
    for (auto& t : w.tensors)
        if (t.name == name) return t;
    FAIL("no tensor " << name);
    return w.tensors[0];
}

} // namespace

TEST_CASE("MoE GGUFs give transformers' logits and greedy tokens, F32 and Q8_0", "[moe][gguf][engine]") {
    // transformers in float32 on the weights as the GGUF holds them (the original checkpoint
    // for F32, gguf-py's dequantization for Q8_0), rabbit in f32 against the same values
    // dequantized on the fly: only the order of the f32 sums differs, as for the dense GGUF
    // references (scripts/gguf_reference.py): 1e-4.
    const double atol = 1e-4, rtol = 1e-4;
    for (const std::string& name : k_files) {
        INFO(name);
        const Reference ref = read_gguf_reference(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::split_into(data_path(name + ".gguf"), dir / "split"));
        REQUIRE(model.config().is_moe());
        test::check_moe_reference(model, ref, name, atol, rtol);
    }
}

TEST_CASE("an F32 MoE GGUF splits into the units of the checkpoint it was converted from", "[moe][gguf]") {
    // Mixtral's q and k rows come back from llama.cpp's rotary order; every expert's slice of
    // the stacked tensors lands where the safetensors expert does, byte for byte.
    for (const auto& [gguf, hf] : {std::pair<std::string, std::string>{"qwen3moe-F32", "qwen3-moe-norm"}, {"mixtral-F32", "mixtral"}}) {
        INFO(gguf);
        test::TempDir dir;
        const std::string a = test::split_into(test::source_dir() + "/tests/data/moe/" + hf, dir / "hf", DTypeChoice::keep);
        const std::string b = test::split_into(data_path(gguf + ".gguf"), dir / "gguf");
        test::require_same_units(a, b, false); // the GGUFs have no tokenizer, so no stop tokens
    }
}

TEST_CASE("fused gate_up experts (the converter's --fuse-gate-up-exps) split as gate and up do", "[moe][gguf]") {
    test::TempDir dir;
    const std::string plain = data_path("qwen3moe-F32.gguf");
    test::GgufWriter w = rewrite(plain);
    for (const char* layer : {"blk.0.", "blk.1."}) {
        const test::GgufWriterTensor gate = tensor(w, std::string(layer) + "ffn_gate_exps.weight");
        const test::GgufWriterTensor up = tensor(w, std::string(layer) + "ffn_up_exps.weight");
        const size_t slice = gate.data.size() / 6; // 6 experts
        std::string fused;
        for (size_t e = 0; e < 6; ++e) fused += gate.data.substr(e * slice, slice) + up.data.substr(e * slice, slice);
        for (size_t i = 0; i < w.tensors.size(); ++i)
            if (w.tensors[i].name == gate.name || w.tensors[i].name == up.name) w.tensors.erase(w.tensors.begin() + long(i--));
        w.tensors.push_back({std::string(layer) + "ffn_gate_up_exps.weight", gate.ggml_type, {16, 16, 6}, fused});
    }
    w.write(dir / "fused.gguf");
    test::require_same_units(test::split_into(plain, dir / "a"), test::split_into(dir / "fused.gguf", dir / "b"));
}

TEST_CASE("a llama GGUF with an expert_count of 0 is a dense llama", "[moe][gguf]") {
    test::TempDir dir;
    test::GgufWriter w = rewrite(data_path("mixtral-F32.gguf"));
    set_u32(w, "llama.expert_count", 0);
    w.write(dir / "zero.gguf");
    // Read as dense, its stacked experts are tensors a dense llama does not have.
    const test::RunResult r = test::run_rabbit({"split", dir / "zero.gguf", "-o", dir / "out"});
    CHECK(r.exit_code == int(ExitCode::bad_input));
    CHECK_THAT(r.err, Contains("holds stacked experts in layer 0 but metadata 'llama.expert_count' is absent or 0"));
}

TEST_CASE("a MoE GGUF token reads its attention and its routed experts, nothing more", "[moe][gguf][bytes]") {
    for (const std::string& name : {std::string("qwen2moe-wide-Q8_0"), std::string("mixtral-wide-Q8_0")}) {
        INFO(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::split_into(data_path(name + ".gguf"), dir / "split"));
        const ModelConfig& c = model.config();
        const TokenBytes tb = token_bytes(model.manifest());
        const LayerTensors first = layer_tensors(model.manifest().units[model.roles().layers[0]]);
        REQUIRE(first.experts.size() == c.num_experts);
        // Q8_0: 34 bytes per 32 values; an expert's gate, up and down of 32 x 32, read without
        // the padding to the unit's alignment that its byte range holds after each matrix.
        const uint64_t expert = 3 * 32 * 34;
        CHECK(first.experts[0].bytes >= expert);
        CHECK(tb.routed_experts == uint64_t(c.num_layers) * c.experts_per_tok * expert);
        CHECK(tb.all_experts == uint64_t(c.num_layers) * c.num_experts * expert);
        CpuEngine engine(model, {}); // no RAM budget: every unit streams
        const std::vector<int32_t> prompt = {1, 9, 30, 4, 17, 22, 5, 40};
        std::vector<float> logits;
        engine.forward(prompt.data(), prompt.size(), 1, logits);
        StreamStats s1 = engine.stream_stats();
        for (int32_t t : {3, 50, 11}) { // decode steps: exactly k experts per MoE layer
            engine.forward(&t, 1, 1, logits);
            const StreamStats d = engine.stream_stats() - s1;
            CHECK(d.experts_run == uint64_t(c.num_layers) * c.experts_per_tok);
            CHECK(d.file_bytes == tb.active());
            s1 = engine.stream_stats();
        }
    }
}

TEST_CASE("inspect and bench on a MoE GGUF: its experts, routed bytes per token, run from the file", "[moe][gguf][cli]") {
    const test::RunResult r = test::run_rabbit({"inspect", data_path("qwen2moe-wide-Q8_0.gguf")});
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("qwen2moe") && Contains("Qwen2MoeForCausalLM"));
    CHECK_THAT(r.out, Contains("experts       4 per MoE layer (2 of 2 layers), 2 routed per token, expert ffn 32, shared expert ffn 32"));
    CHECK_THAT(r.out, Contains("per decoded token"));
    const test::RunResult j = test::run_rabbit({"inspect", data_path("mixtral-F32.gguf"), "--json"});
    REQUIRE(j.exit_code == 0);
    CHECK_THAT(j.out, Contains("\"routed_bytes_per_token\"") && Contains("\"experts_per_token\": 2"));
    test::TempDir dir;
    const test::RunResult b = test::run_rabbit({"-q", "bench", "-m", data_path("qwen3moe-F32.gguf"), "--backend", "cpu",
                                                "--prompt-len", "4", "--gen", "2", "--repeat", "1", "--warmup", "0",
                                                "--read-bytes", "0"},
                                               {{"RABBIT_CACHE", dir / "cache"}});
    INFO(b.err);
    CHECK(b.exit_code == 0);
}

TEST_CASE("a corrupt MoE GGUF is refused in one line naming the file", "[moe][gguf][cli]") {
    struct Case {
        const char* file;
        const char* what;
        std::function<void(test::GgufWriter&)> spoil;
        ExitCode code;
        const char* message;
    };
    const std::vector<Case> cases = {
        {"qwen3moe-F32", "no expert_count", [](test::GgufWriter& w) { drop_key(w, "qwen3moe.expert_count"); }, ExitCode::bad_input,
         "has no metadata 'qwen3moe.expert_count'"},
        {"qwen3moe-F32", "expert_used_count > expert_count", [](test::GgufWriter& w) { set_u32(w, "qwen3moe.expert_used_count", 9); },
         ExitCode::bad_input, "'qwen3moe.expert_used_count' is 9, more than the 6 of qwen3moe.expert_count"},
        {"qwen3moe-F32", "3-D tensor of the wrong shape",
         [](test::GgufWriter& w) {
             auto& t = tensor(w, "blk.1.ffn_up_exps.weight");
             t.ne = {16, 8, 5};
             t.data.resize(16 * 8 * 5 * 4);
         },
         ExitCode::bad_input, "tensor 'blk.1.ffn_up_exps.weight' has ne [16, 8, 5]; expected [16, 8, 6]"},
        {"qwen3moe-F32", "expert ffn that the tensors do not have", [](test::GgufWriter& w) { set_u32(w, "qwen3moe.expert_feed_forward_length", 4); },
         ExitCode::bad_input, "tensor 'blk.0.ffn_down_exps.weight' has ne [8, 16, 6]; expected [4, 16, 6]"},
        {"qwen3moe-F32", "a sigmoid router", [](test::GgufWriter& w) { w.u32("qwen3moe.expert_gating_func", 2); }, ExitCode::unsupported,
         "qwen3moe.expert_gating_func is 2; rabbit routes with a softmax (1) only"},
        {"qwen3moe-F32", "a layer count no table should be sized by", [](test::GgufWriter& w) { set_u32(w, "qwen3moe.block_count", 100000); },
         ExitCode::bad_input, "metadata 'qwen3moe.block_count' is 100000; expected 1..4096"},
        {"mixtral-F32", "Mixtral without its expert_count", [](test::GgufWriter& w) { drop_key(w, "llama.expert_count"); },
         ExitCode::bad_input, "holds stacked experts in layer 0 but metadata 'llama.expert_count' is absent or 0"},
        {"mixtral-F32", "Mixtral without renormalised top k", [](test::GgufWriter& w) { w.boolean("llama.expert_weights_norm", false); },
         ExitCode::unsupported, "llama.expert_weights_norm is false; Mixtral always renormalises its top k"},
    };
    test::TempDir dir;
    const std::string good = data_path("qwen3moe-F32.gguf");
    int n = 0;
    for (const Case& c : cases) {
        INFO(c.what);
        test::GgufWriter w = rewrite(data_path(std::string(c.file) + ".gguf"));
        c.spoil(w);
        const std::string path = dir / ("bad" + std::to_string(n) + ".gguf"), out = dir / ("out" + std::to_string(n++));
        w.write(path);
        const test::RunResult r = test::run_rabbit({"split", path, "-o", out});
        CHECK(r.exit_code == int(c.code));
        const size_t last = r.err.rfind('\n', r.err.size() - 2);
        const std::string line = last == std::string::npos ? r.err : r.err.substr(last + 1);
        CHECK_THAT(line, Contains("error: ") && Contains(path) && Contains(c.message));
        CHECK_FALSE(test::exists(out));
    }
    // Cut short inside the stacked experts: the GGUF reader's own check.
    const std::string bytes = test::read_file(good), cut = dir / "cut.gguf";
    test::write_file(cut, bytes.substr(0, bytes.size() - 3000));
    const test::RunResult r = test::run_rabbit({"split", cut, "-o", dir / "cut"});
    CHECK(r.exit_code == int(ExitCode::bad_input));
    CHECK_THAT(r.err, Contains(cut));
    CHECK_FALSE(test::exists(dir / "cut"));
}
