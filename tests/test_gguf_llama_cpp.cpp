// SPDX-License-Identifier: Apache-2.0
// GGUF files made by llama.cpp itself (convert_hf_to_gguf.py, llama-quantize), where this
// machine has them: the reader, the mapping and the q/k unpermute checked against what
// llama.cpp writes, not only against the tests' own writer. Skipped, visibly, elsewhere.
#include "engine_helpers.h"
#include "format/gguf.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "gguf_writer.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <cstdlib>

using namespace rabbit;

TEST_CASE("tinystories-656k converted by llama.cpp's convert_hf_to_gguf.py splits as its safetensors", "[gguf][tinystories][llama.cpp]") {
    // The converter itself, where this machine has it: the reader and the unpermute checked
    // against what llama.cpp writes, not only against this test's own writer.
    const char* home = std::getenv("HOME");
    const std::string cache = std::string(home ? home : "") + "/.cache/rabbit";
    const std::string python = cache + "/venv/bin/python";
    const std::string convert = cache + "/peers/llama_cpp_python-0.3.36/vendor/llama.cpp/convert_hf_to_gguf.py";
    if (!test::have_shared()) return;
    if (!test::exists(python) || !test::exists(convert)) {
        WARN("SKIPPED: llama.cpp's converter or its Python environment is absent (" << convert << ")");
        return;
    }
    test::TempDir dir;
    // f32 as it is; f16 as numpy rounds it, to nearest even, as rabbit's --dtype f16 does.
    for (auto [outtype, dtype] : {std::pair<const char*, DTypeChoice>{"f32", DTypeChoice::f32}, {"f16", DTypeChoice::f16}}) {
        INFO(outtype);
        const std::string gguf = dir / (std::string("ts-") + outtype + ".gguf");
        const test::RunResult r = test::run_program(python, {convert, test::tinystories_dir(), "--outtype", outtype, "--outfile", gguf});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        test::require_same_units(test::split_into(test::tinystories_dir(), dir / (std::string("hf-") + outtype), dtype),
                           test::split_into(gguf, dir / (std::string("gguf-") + outtype)));
    }
    // Qwen3 (q/k norms, no permutation), with the Qwen3 tokenizer the converter needs.
    GenSpec spec = preset_spec("tiny-qwen3");
    spec.config.vocab_size = 151936;
    spec.config.tie_word_embeddings = true;
    spec.tokenizer_dir = test::shared_dir() + "/tokenizers/qwen3";
    spec.seed = 3;
    generate_model(spec, dir / "qwen3");
    const test::RunResult r = test::run_program(python, {convert, dir / "qwen3", "--outtype", "f32", "--outfile", dir / "q3.gguf"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    test::require_same_units(test::split_into(dir / "qwen3", dir / "q3-hf"), test::split_into(dir / "q3.gguf", dir / "q3-gguf"), false);
}

TEST_CASE("a Q4_K_M GGUF made by llama-quantize keeps its types, v apart where it is Q6_K", "[gguf][tinystories][llama.cpp]") {
    const char* home = std::getenv("HOME");
    const std::string llama_cpp = std::string(home ? home : "") + "/.cache/rabbit/peers/llama_cpp_python-0.3.36/vendor/llama.cpp";
    const std::string python = std::string(home ? home : "") + "/.cache/rabbit/venv/bin/python";
    const std::string quantize = llama_cpp + "/build/bin/llama-quantize";
    if (!test::have_shared()) return;
    if (!test::exists(python) || !test::exists(quantize)) {
        WARN("SKIPPED: llama.cpp's converter, llama-quantize or the Python environment is absent (" << quantize << ")");
        return;
    }
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-llama3"); // rows of 256: whole k-quant blocks
    spec.config.rope_scaling = {};
    spec.config.hidden_size = 256;
    spec.config.intermediate_size = 512;
    spec.config.head_dim = 64;
    spec.config.num_heads = 4;
    spec.config.num_kv_heads = 2;
    spec.config.num_layers = 4;
    spec.config.vocab_size = 2048;
    spec.config.tie_word_embeddings = true;
    spec.tokenizer_dir = test::tinystories_dir();
    generate_model(spec, dir / "hf");
    test::RunResult r = test::run_program(python, {llama_cpp + "/convert_hf_to_gguf.py", dir / "hf", "--outtype", "f16",
                                                   "--outfile", dir / "f16.gguf"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    r = test::run_program(quantize, {dir / "f16.gguf", dir / "q4km.gguf", "Q4_K_M"});
    REQUIRE(r.exit_code == 0);
    const GgufSet set = open_gguf_set(dir / "q4km.gguf");
    const SplitModel m = SplitModel::open(test::split_into(dir / "q4km.gguf", dir / "split"));
    REQUIRE(m.manifest().dtype == "mixed");
    size_t apart = 0;
    for (uint32_t l = 0; l < 4; ++l) {
        const UnitLayout& u = m.manifest().units.at(1 + l).layout;
        const std::string blk = "blk." + std::to_string(l) + ".";
        const DType q = set.find_tensor(blk + "attn_q.weight").second->dtype, v = set.find_tensor(blk + "attn_v.weight").second->dtype;
        INFO("layer " << l << ": q " << dtype_name(q) << ", v " << dtype_name(v));
        if (q == v) {
            REQUIRE(u.find("qkv")->dtype == q);
        } else {
            ++apart;
            REQUIRE(u.find("q")->dtype == q);
            REQUIRE(u.find("v")->dtype == v);
        }
        REQUIRE(u.find("down")->dtype == set.find_tensor(blk + "ffn_down.weight").second->dtype);
    }
    REQUIRE(apart > 0); // Q4_K_M gives some layers' v more bits

    // Q2_K and Q3_K, which rabbit reads but does not write, are copied as they are: the split
    // must not ask for a quantizer it has no need of.
    for (const char* type : {"Q2_K", "Q3_K_M"}) {
        const std::string name = std::string(type) + ".gguf";
        r = test::run_program(quantize, {dir / "f16.gguf", dir / name, type});
        REQUIRE(r.exit_code == 0);
        const GgufSet qset = open_gguf_set(dir / name);
        const SplitModel qm = SplitModel::open(test::split_into(dir / name, dir / (std::string(type) + ".split")));
        const DType want = qset.find_tensor("blk.0.ffn_gate.weight").second->dtype;
        INFO(type << ": ffn_gate is " << dtype_name(want));
        REQUIRE((want == DType::q2_k || want == DType::q3_k));
        const UnitLayout& u = qm.manifest().units.at(1).layout;
        const UnitTensor* gate = u.find("gate_up") ? u.find("gate_up") : u.find("gate");
        REQUIRE(gate);
        REQUIRE(gate->dtype == want);
    }
}
