// SPDX-License-Identifier: Apache-2.0
// Round trips: split generated models of every architecture and the real tinystories-656k,
// then check every tensor in OUT against its source, converted as asked. The expectations
// here are written out independently of the split planner: which Hugging Face tensors make
// each unit tensor, and in what order.
#include "common/dtype.h"
#include "common/error.h"
#include "common/file_io.h"
#include "format/safetensors.h"
#include "format/split_model.h"
#include "engine_helpers.h"
#include "genmodel.h"
#include "helpers.h"
#include "split/splitter.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <map>

using namespace rabbit;
using rabbit::test::split_quietly;

namespace {

// Every tensor of a Hugging Face directory, read with the safetensors parser (tested on its own).
class SourceModel {
public:
    explicit SourceModel(const std::string& dir) {
        for (const auto& name : test::list_files(dir)) {
            if (name.size() < 12 || name.substr(name.size() - 12) != ".safetensors") continue;
            auto file = std::make_shared<MappedFile>(dir + "/" + name);
            SafetensorsHeader h = parse_safetensors(file->data(), file->size(), file->size(), name);
            for (const auto& t : h.tensors) tensors_[t.name] = {file, h.data_start + t.begin, t};
            for (const auto& [k, v] : h.metadata) aliases_[k] = v;
        }
    }
    // The tensor's values as f32 (exact for every source dtype), and its dtype.
    std::vector<float> values(const std::string& name, DType* dtype) const {
        auto it = tensors_.find(name);
        if (it == tensors_.end()) {
            auto a = aliases_.find(name);
            REQUIRE(a != aliases_.end());
            it = tensors_.find(a->second);
        }
        REQUIRE(it != tensors_.end());
        const Entry& e = it->second;
        *dtype = e.entry.dtype;
        std::vector<float> out(size_t(e.entry.numel()));
        convert_elements(e.file->data() + e.offset, e.entry.dtype, out.data(), DType::f32, out.size());
        return out;
    }
    bool has(const std::string& name) const { return tensors_.count(name) || aliases_.count(name); }

private:
    struct Entry {
        std::shared_ptr<MappedFile> file;
        uint64_t offset;
        TensorEntry entry;
    };
    std::map<std::string, Entry> tensors_;
    std::map<std::string, std::string> aliases_;
};

std::vector<std::string> expected_sources(const std::string& unit, const std::string& tensor, const SourceModel& src) {
    if (unit == "embed") return {"model.embed_tokens.weight"};
    if (unit == "norm") return {"model.norm.weight"};
    if (unit == "lm_head") return {"lm_head.weight"};
    const std::string p = "model.layers." + unit.substr(6) + ".";
    if (tensor == "attn_norm") return {p + "input_layernorm.weight"};
    if (tensor == "qkv") return {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"};
    if (tensor == "qkv_bias") return {p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"};
    if (tensor == "q_norm") return {p + "self_attn.q_norm.weight"};
    if (tensor == "k_norm") return {p + "self_attn.k_norm.weight"};
    if (tensor == "o") return {p + "self_attn.o_proj.weight"};
    if (tensor == "o_bias") return {p + "self_attn.o_proj.bias"};
    if (tensor == "ffn_norm") return {p + "post_attention_layernorm.weight"};
    if (tensor == "gate_up") return {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"};
    if (tensor == "down") return {p + "mlp.down_proj.weight"};
    FAIL("unexpected tensor " << unit << "/" << tensor);
    (void)src;
    return {};
}

// Bytes of `values` in dtype `t`, converted one element at a time by the scalar functions.
std::vector<uint8_t> encode(const std::vector<float>& values, DType t) {
    std::vector<uint8_t> out(values.size() * dtype_size(t));
    for (size_t i = 0; i < values.size(); ++i) {
        if (t == DType::f32) std::memcpy(&out[i * 4], &values[i], 4);
        else {
            uint16_t h = t == DType::bf16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
            std::memcpy(&out[i * 2], &h, 2);
        }
    }
    return out;
}

// Checks OUT against the source. `matrix_dtype`: what 2-D tensors must be stored as
// (nullopt: as the source holds them, i.e. --dtype keep).
void verify_split(const std::string& src_dir, const std::string& out_dir, std::optional<DType> matrix_dtype) {
    SourceModel src(src_dir);
    SplitModel split = SplitModel::open(out_dir);
    const Manifest& m = split.manifest();
    REQUIRE(!m.units.empty());
    for (const auto& u : m.units) {
        INFO("unit " << u.layout.name);
        split.verify_checksum(u);
        MappedFile f(split.unit_path(u));
        REQUIRE(f.size() == u.size());
        REQUIRE(f.size() % 4096 == 0);
        REQUIRE(u.layout.data_offset % 4096 == 0);
        std::vector<bool> covered(size_t(u.layout.data_size), false);
        for (const auto& t : u.layout.tensors) {
            INFO("tensor " << t.name);
            REQUIRE(t.offset % 256 == 0);
            std::vector<float> values;
            DType src_type = DType::f32;
            for (const auto& name : expected_sources(u.layout.name, t.name, src)) {
                std::vector<float> part = src.values(name, &src_type);
                values.insert(values.end(), part.begin(), part.end());
            }
            const DType want = t.shape.size() == 1 ? DType::f32 : matrix_dtype ? *matrix_dtype : src_type;
            REQUIRE(t.dtype == want);
            REQUIRE(t.numel() == values.size());
            std::vector<uint8_t> expect = encode(values, want);
            REQUIRE(t.nbytes == expect.size());
            REQUIRE(std::memcmp(f.data() + u.layout.data_offset + t.offset, expect.data(), expect.size()) == 0);
            for (uint64_t i = t.offset; i < t.offset + t.nbytes; ++i) covered[size_t(i)] = true;
        }
        for (size_t i = 0; i < covered.size(); ++i)
            if (!covered[i]) REQUIRE(f.data()[u.layout.data_offset + i] == 0); // padding is zero
    }
}

std::string generate(const test::TempDir& dir, const std::string& name, const std::string& preset, DType dtype,
                     uint32_t shards, bool alias = false) {
    GenSpec spec = preset_spec(preset);
    spec.dtype = dtype;
    spec.shards = shards;
    spec.seed = 42;
    spec.tied_as_alias = alias;
    if (alias) spec.config.tie_word_embeddings = true;
    generate_model(spec, dir / name);
    return dir / name;
}

} // namespace

TEST_CASE("split round-trips every architecture, dtype and sharding", "[split]") {
    test::TempDir dir;
    for (const char* preset : {"tiny-qwen2", "tiny-qwen3", "tiny-llama3", "tiny-mistral"}) {
        for (DType src_dtype : {DType::f32, DType::bf16, DType::f16}) {
            const uint32_t shards = src_dtype == DType::f32 ? 1 : 3;
            const std::string src = generate(dir, std::string(preset) + "-" + dtype_name(src_dtype), preset, src_dtype, shards);
            const bool half = src_dtype != DType::f32;
            struct Case {
                DTypeChoice choice;
                std::optional<DType> stored;
            };
            for (Case c : {Case{DTypeChoice::automatic, half ? DType::bf16 : DType::f32}, Case{DTypeChoice::keep, std::nullopt},
                           Case{DTypeChoice::bf16, DType::bf16}, Case{DTypeChoice::f16, DType::f16},
                           Case{DTypeChoice::f32, DType::f32}}) {
                INFO(preset << " from " << dtype_name(src_dtype) << " --dtype " << dtype_choice_name(c.choice));
                const std::string out = src + "-split-" + dtype_choice_name(c.choice);
                SplitResult r = split_quietly(src, out, c.choice);
                REQUIRE(!r.up_to_date);
                REQUIRE(r.units_written == r.units_total);
                verify_split(src, out, c.stored);
            }
        }
    }
}

TEST_CASE("split of the real tinystories-656k keeps f32, stores the tied embedding once, copies the tokenizer",
          "[split][tinystories]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string src = test::tinystories_dir();
    REQUIRE(test::exists(src + "/model.safetensors"));
    SplitResult r = split_quietly(src, dir / "f32");
    REQUIRE(r.dtype == "f32");
    REQUIRE(r.units_total == 4); // embed, 2 layers, norm: no lm_head, it is tied
    verify_split(src, dir / "f32", DType::f32);
    SplitModel s = SplitModel::open(dir / "f32");
    REQUIRE(s.config().tie_word_embeddings);
    REQUIRE(s.config().num_kv_heads == 4);
    REQUIRE(s.manifest().find("lm_head") == nullptr);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json",
                          "special_tokens_map.json"}) {
        INFO(f);
        REQUIRE(test::read_file(dir / "f32" + "/" + f) == test::read_file(src + "/" + f));
    }
    REQUIRE(s.manifest().files.size() == 5);

    split_quietly(src, dir / "bf16", DTypeChoice::bf16);
    verify_split(src, dir / "bf16", DType::bf16);
    REQUIRE(SplitModel::open(dir / "bf16").manifest().dtype == "bf16");
}

TEST_CASE("a tied embedding stored once under lm_head.weight, with a metadata alias, splits", "[split]") {
    test::TempDir dir;
    const std::string src = generate(dir, "alias", "tiny-qwen2", DType::f32, 1, true);
    SourceModel s(src);
    REQUIRE(s.has("model.embed_tokens.weight")); // through the alias only
    split_quietly(src, dir / "out");
    verify_split(src, dir / "out", DType::f32);

    // Without the alias, a tied model that stores only lm_head.weight still splits: the tie
    // makes it the embedding, as transformers does.
    std::string bytes = test::read_file(src + "/model.safetensors");
    const std::string alias = "\"model.embed_tokens.weight\":\"lm_head.weight\"";
    const size_t at = bytes.find(alias);
    REQUIRE(at != std::string::npos);
    bytes.replace(at, alias.size(), "\"model.embed_tokens.weighX\":\"lm_head.weight\""); // same length
    test::write_file(src + "/model.safetensors", bytes);
    REQUIRE(!SourceModel(src).has("model.embed_tokens.weight"));
    split_quietly(src, dir / "out2");
    SplitModel out2 = SplitModel::open(dir / "out2");
    SplitModel out1 = SplitModel::open(dir / "out");
    REQUIRE(out2.manifest().units.front().xxh3 == out1.manifest().units.front().xxh3);
}

TEST_CASE("chunk size changes nothing: a 4 KiB chunk gives the same bytes as 16 MiB", "[split]") {
    test::TempDir dir;
    const std::string src = generate(dir, "m", "tiny-qwen3", DType::f32, 2);
    split_quietly(src, dir / "big", DTypeChoice::bf16);
    split_quietly(src, dir / "small", DTypeChoice::bf16, 4096);
    for (const auto& name : test::list_files(dir / "big")) {
        INFO(name);
        REQUIRE(test::read_file(dir / "big" + "/" + name) == test::read_file(dir / "small" + "/" + name));
    }
}

TEST_CASE("a second split of the same model is up to date, forcing rewrites it, other options are refused",
          "[split]") {
    test::TempDir dir;
    const std::string src = generate(dir, "m", "tiny-llama3", DType::bf16, 1);
    split_quietly(src, dir / "out");
    const auto before = test::file_id(dir / "out/layer.001.rbt");
    SplitResult again = split_quietly(src, dir / "out");
    REQUIRE(again.up_to_date);
    REQUIRE(again.units_reused == again.units_total);
    REQUIRE(test::file_id(dir / "out/layer.001.rbt") == before);

    REQUIRE_THROWS_WITH(split_quietly(src, dir / "out", DTypeChoice::f32), Catch::Contains("already holds a split of another model or with other options"));
    REQUIRE(test::exists(dir / "out/manifest.json")); // the refusal changed nothing

    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = dir / "out";
    opt.dtype = DTypeChoice::f32;
    opt.force = true;
    SplitProgress quiet;
    SplitResult forced = run_split(opt, quiet);
    REQUIRE(forced.units_written == forced.units_total);
    verify_split(src, dir / "out", DType::f32);
}

TEST_CASE("an interrupted split resumes: finished units are verified and kept, the rest written", "[split][resume]") {
    test::TempDir dir;
    const std::string src = generate(dir, "m", "tiny-mistral", DType::f32, 2);
    // Stop after two units, the way Ctrl-C would: by an exception out of the progress hook.
    struct StopAfter : SplitProgress {
        int left;
        explicit StopAfter(int n) : left(n) {}
        void unit_done(const std::string&, uint64_t, bool) override {
            if (--left == 0) throw Error(ExitCode::interrupted, "interrupted");
        }
    } stop(2);
    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = dir / "out";
    REQUIRE_THROWS_AS(run_split(opt, stop), Error);
    REQUIRE(!test::exists(dir / "out/manifest.json"));
    REQUIRE(test::exists(dir / "out/.rabbit-split.journal.json"));
    const auto embed = test::file_id(dir / "out/embed.rbt");
    const auto layer0 = test::file_id(dir / "out/layer.000.rbt");
    REQUIRE(!test::exists(dir / "out/layer.001.rbt"));

    SplitProgress quiet;
    SplitResult r = run_split(opt, quiet);
    REQUIRE(r.units_reused == 2);
    REQUIRE(r.units_written == r.units_total - 2);
    REQUIRE(test::file_id(dir / "out/embed.rbt") == embed);
    REQUIRE(test::file_id(dir / "out/layer.000.rbt") == layer0);
    REQUIRE(!test::exists(dir / "out/.rabbit-split.journal.json"));
    verify_split(src, dir / "out", DType::f32);
}

TEST_CASE("resume rewrites a finished unit whose checksum no longer matches", "[split][resume]") {
    test::TempDir dir;
    const std::string src = generate(dir, "m", "tiny-qwen2", DType::f32, 1);
    struct StopAfter : SplitProgress {
        void unit_done(const std::string&, uint64_t, bool) override { throw Error(ExitCode::interrupted, "interrupted"); }
    } stop;
    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = dir / "out";
    REQUIRE_THROWS_AS(run_split(opt, stop), Error);
    // Flip one byte of the finished embedding, keeping its size.
    std::string bytes = test::read_file(dir / "out/embed.rbt");
    bytes[bytes.size() / 2] ^= 0x40;
    test::write_file(dir / "out/embed.rbt", bytes);
    SplitProgress quiet;
    SplitResult r = run_split(opt, quiet);
    REQUIRE(r.units_reused == 0);
    verify_split(src, dir / "out", DType::f32);
}

TEST_CASE("deleting the original removes each shard once its units are written and verified", "[split][delete]") {
    test::TempDir dir;
    const std::string src = generate(dir, "m", "tiny-qwen3", DType::bf16, 3);
    test::copy_dir(src, dir / "pristine");
    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = dir / "out";
    opt.delete_original = true;
    // First run stops half-way: some shards are gone, the rest must still be there.
    struct StopAfter : SplitProgress {
        int left = 2;
        void unit_done(const std::string&, uint64_t, bool) override {
            if (--left == 0) throw Error(ExitCode::interrupted, "interrupted");
        }
    } stop;
    REQUIRE_THROWS_AS(run_split(opt, stop), Error);
    REQUIRE(!test::exists(src + "/model-00001-of-00003.safetensors")); // embed + layer 0 came from it
    REQUIRE(test::exists(src + "/model-00003-of-00003.safetensors"));
    // The resumed run plans without the deleted shard, from what the journal recorded.
    SplitProgress quiet;
    SplitResult r = run_split(opt, quiet);
    REQUIRE(r.units_reused == 2);
    for (const auto& name : test::list_files(src)) {
        INFO(name);
        if (name.size() >= 12) REQUIRE(name.substr(name.size() - 12) != ".safetensors"); // shards gone; the index stays
    }
    verify_split(dir / "pristine", dir / "out", DType::bf16);
}

TEST_CASE("splitting is deterministic", "[split]") {
    test::TempDir dir;
    const std::string a = generate(dir, "a", "tiny-qwen2", DType::bf16, 2);
    const std::string b = generate(dir, "b", "tiny-qwen2", DType::bf16, 2);
    REQUIRE(test::read_file(a + "/model-00002-of-00002.safetensors") == test::read_file(b + "/model-00002-of-00002.safetensors"));
    split_quietly(a, dir / "outa");
    split_quietly(b, dir / "outb");
    SplitModel sa = SplitModel::open(dir / "outa"), sb = SplitModel::open(dir / "outb");
    REQUIRE(sa.manifest().units.size() == sb.manifest().units.size());
    for (size_t i = 0; i < sa.manifest().units.size(); ++i) REQUIRE(sa.manifest().units[i].xxh3 == sb.manifest().units[i].xxh3);
}
