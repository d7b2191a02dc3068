// SPDX-License-Identifier: Apache-2.0
#include "engine_helpers.h"

#include "backend/cpu/cpu_engine.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "helpers.h"
#include "split/splitter.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rabbit::test {

std::string generate_and_split(const std::vector<std::string>& genmodel_args, const TempDir& dir) {
    std::vector<std::string> args = genmodel_args;
    args.insert(args.end(), {"-o", dir / "hf"});
    REQUIRE(run_program(genmodel_bin(), args).exit_code == 0);
    return split_into(dir / "hf", dir / "split");
}

std::vector<int32_t> long_prompt(size_t n, int32_t vocab) {
    std::vector<int32_t> p;
    for (size_t i = 0; i < n; ++i) p.push_back(int32_t((i * 53 + 7) % size_t(vocab)));
    return p;
}

std::string split_into(const std::string& src, const std::string& out, DTypeChoice dtype) {
    split_quietly(src, out, dtype);
    return out;
}

SplitResult split_quietly(const std::string& src, const std::string& out, DTypeChoice dtype, size_t chunk) {
    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = out;
    opt.dtype = dtype;
    opt.chunk_bytes = chunk;
    SplitProgress quiet;
    return run_split(opt, quiet);
}

std::vector<int32_t> greedy(Engine& engine, const std::vector<int32_t>& prompt, size_t total) {
    std::vector<int32_t> seq = prompt;
    std::vector<float> logits;
    engine.reset();
    engine.forward(seq.data(), seq.size(), 1, logits);
    while (seq.size() < total) {
        const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        seq.push_back(next);
        if (seq.size() == total) break;
        engine.forward(&next, 1, 1, logits);
    }
    return seq;
}

std::vector<float> prompt_and_steps_logits(Engine& engine, const std::vector<int32_t>& prompt) {
    std::vector<float> all, logits;
    engine.reset();
    engine.forward(prompt.data(), prompt.size(), prompt.size(), logits);
    all = logits;
    const int32_t vocab = int32_t(engine.config().vocab_size);
    for (int32_t t : {5, 99, 400}) {
        t %= vocab; // within every test model's vocabulary (tiny-mistral has 384)
        engine.forward(&t, 1, 1, logits);
        all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
}

const std::vector<std::string>& hf_golden_names() {
    // The last six run past their RoPE scaling's original context (docs/ARCHITECTURE.md).
    static const std::vector<std::string> names = {"qwen2-tied-bias",   "qwen3-qknorm-untied", "llama3-rope-scaling",
                                                   "mistral-sliding-window", "qwen2-yarn",  "qwen3-yarn-mscale",
                                                   "llama-dynamic-ntk", "qwen3-dynamic-ntk", "llama3-long",
                                                   "qwen2-longrope"};
    return names;
}

HfGolden read_hf_golden(const std::string& name) {
    const std::string path = source_dir() + "/tests/data/goldens/" + name + ".json";
    JsonDocument doc(read_text_file(path), path);
    auto o = doc.root_object();
    HfGolden g;
    g.name = name;
    for (auto a : json_to_array(*json_field(o, "genmodel"), path, "genmodel")) g.genmodel.push_back(json_to_string(a, path, "arg"));
    for (auto v : json_to_array(*json_field(o, "prompt_ids"), path, "")) g.prompt.push_back(int32_t(json_to_int(v, path, "")));
    for (auto r : json_to_array(*json_field(o, "prompt_logits"), path, ""))
        for (auto v : json_to_array(r, path, "")) g.prompt_logits.push_back(float(json_to_double(v, path, "")));
    for (auto v : json_to_array(*json_field(o, "greedy_ids"), path, "")) g.greedy.push_back(int32_t(json_to_int(v, path, "")));
    return g;
}

std::string make_golden_model(const HfGolden& g, const std::string& dtype, const std::string& dir) {
    std::vector<std::string> args = g.genmodel;
    args.insert(args.end(), {"--dtype", dtype, "-o", dir + "/hf"});
    if (run_program(genmodel_bin(), args).exit_code != 0) throw std::runtime_error("rabbit-genmodel failed for " + g.name);
    return split_into(dir + "/hf", dir + "/split");
}

std::string moe_dir(const std::string& name) { return source_dir() + "/tests/data/moe/" + name; }

MoeReference read_moe_reference(const std::string& path) {
    JsonDocument doc(read_file(path), path);
    auto o = doc.root_object();
    MoeReference r;
    for (auto v : json_to_array(*json_field(o, "prompt_ids"), path, "")) r.prompt.push_back(int32_t(json_to_int(v, path, "")));
    for (auto row : json_to_array(*json_field(o, "prompt_logits"), path, ""))
        for (auto v : json_to_array(row, path, "")) r.prompt_logits.push_back(float(json_to_double(v, path, "")));
    for (auto v : json_to_array(*json_field(o, "greedy_ids"), path, "")) r.greedy.push_back(int32_t(json_to_int(v, path, "")));
    return r;
}

void check_moe_reference(const SplitModel& model, const MoeReference& ref, const std::string& name, double atol,
                         double rtol) {
    for (size_t batch : {size_t(512), size_t(3)}) { // whole, and a prefill in parts
        INFO("batch " << batch);
        EngineOptions opt;
        opt.batch = batch;
        CpuEngine engine(model, opt);
        std::vector<float> logits;
        engine.forward(ref.prompt.data(), ref.prompt.size(), ref.prompt.size(), logits);
        REQUIRE(ref.prompt_logits.size() == ref.prompt.size() * model.config().vocab_size);
        const double worst = worst_error(logits, ref.prompt_logits, atol, rtol);
        WARN(name << ": largest logit difference " << worst << " of the tolerance");
        CHECK(worst <= 1.0);
        CHECK(greedy(engine, ref.prompt, ref.greedy.size()) == ref.greedy);
    }
}

} // namespace rabbit::test
