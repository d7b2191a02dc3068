// SPDX-License-Identifier: Apache-2.0
// GGUF in: the reader (every metadata type, the tensor table, each malformed file refused in
// one line), split sets, and GGUF models split into the same units as their Hugging Face
// originals, with llama's q/k rows back in Hugging Face order and quantized stacks kept apart.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "engine_helpers.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/split_model.h"
#include "format/unit_file.h"
#include "genmodel.h"
#include "gguf_writer.h"
#include "helpers.h"
#include "split/plan.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <random>

using namespace rabbit;
using Catch::Contains;
using test::GgufWriter;

namespace {

GgufFile parse_bytes(const std::string& b, const std::string& name = "t.gguf") {
    return GgufFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), name);
}

std::string random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (auto& c : s) c = char(rng() & 0xff);
    return s;
}

// Bytes of one tensor of type t and shape [rows, cols]: random, except that f32 and f16 hold
// small finite values (norms), and each block's f16 scale is finite.
std::string tensor_bytes(DType t, uint64_t rows, uint64_t cols, uint32_t seed) {
    const uint64_t n = rows * cols;
    if (t == DType::f32 || t == DType::f16) {
        std::mt19937 rng(seed);
        std::vector<float> v = test::random_vector(size_t(n), rng);
        std::string out(size_t(n * dtype_size(t)), '\0');
        convert_elements(v.data(), DType::f32, &out[0], t, size_t(n));
        return out;
    }
    std::string out = random_bytes(size_t(dtype_row_bytes(t, cols) * rows), seed);
    const size_t bb = dtype_block_bytes(t);
    for (size_t b = 0; b < out.size(); b += bb) { // q8_0 / q4_0: the scale first, 1/64 in f16
        out[b] = 0x00;
        out[b + 1] = 0x24;
    }
    return out;
}

struct TinyTypes {
    DType embed = DType::q8_0, q = DType::q8_0, k = DType::q8_0, v = DType::q8_0, o = DType::q8_0;
    DType gate = DType::q4_0, up = DType::q4_0, down = DType::q8_0;
};

// A one-layer llama GGUF: hidden 64, 2 heads of 32, 1 kv head, ffn 64, vocab 32, tied.
GgufWriter tiny_llama(const TinyTypes& t, const std::string& arch = "llama") {
    GgufWriter w;
    const std::string a = arch + ".";
    w.str("general.architecture", arch).u32(a + "block_count", 1).u32(a + "context_length", 256);
    w.u32(a + "embedding_length", 64).u32(a + "feed_forward_length", 64).u32(a + "attention.head_count", 2);
    w.u32(a + "attention.head_count_kv", 1).f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
    w.f32(a + "rope.freq_base", 10000.0f);
    uint32_t seed = 1;
    auto mat = [&](const std::string& name, DType dt, uint64_t rows, uint64_t cols) {
        w.tensor(name, dt, {cols, rows}, tensor_bytes(dt, rows, cols, seed++));
    };
    mat("token_embd.weight", t.embed, 32, 64);
    mat("blk.0.attn_norm.weight", DType::f32, 1, 64);
    w.tensors.back().ne = {64};
    mat("blk.0.attn_q.weight", t.q, 64, 64);
    mat("blk.0.attn_k.weight", t.k, 32, 64);
    mat("blk.0.attn_v.weight", t.v, 32, 64);
    mat("blk.0.attn_output.weight", t.o, 64, 64);
    mat("blk.0.ffn_norm.weight", DType::f16, 1, 64); // F16 norms become f32
    w.tensors.back().ne = {64};
    mat("blk.0.ffn_gate.weight", t.gate, 64, 64);
    mat("blk.0.ffn_up.weight", t.up, 64, 64);
    mat("blk.0.ffn_down.weight", t.down, 64, 64);
    mat("output_norm.weight", DType::f32, 1, 64);
    w.tensors.back().ne = {64};
    return w;
}

// The bytes of tensor `name` of a split's unit file.
std::string unit_tensor(const std::string& split, const std::string& file, const std::string& name) {
    InputFile f(join_path(split, file));
    const UnitLayout l = read_unit_header(f);
    const UnitTensor* t = l.find(name);
    REQUIRE(t);
    std::string out(size_t(t->nbytes), '\0');
    f.read_at(&out[0], out.size(), l.data_offset + t->offset);
    return out;
}

std::string gguf_tensor(const GgufWriter& w, const std::string& name) {
    for (const auto& t : w.tensors)
        if (t.name == name) return t.data;
    FAIL("no tensor " << name);
    return "";
}

// A random-weight Hugging Face model of `preset` (llama without RoPE scaling) in `dtype`.
std::string make_hf(const test::TempDir& dir, const std::string& preset, DType dtype) {
    GenSpec spec = preset_spec(preset);
    spec.config.rope_scaling = {};
    spec.dtype = dtype;
    spec.seed = 11;
    generate_model(spec, dir / "hf");
    return dir / "hf";
}

} // namespace

TEST_CASE("GGUF metadata of all 13 types, nested arrays and tensor infos read back", "[gguf]") {
    for (uint32_t version : {2u, 3u}) {
        INFO("version " << version);
        GgufWriter w;
        w.version = version;
        w.alignment = 64;
        w.value("u8", test::gguf_scalar(GgufType::u8, 200)).value("i8", test::gguf_scalar(GgufType::i8, 0xfe));
        w.value("u16", test::gguf_scalar(GgufType::u16, 65000)).value("i16", test::gguf_scalar(GgufType::i16, 0x8000));
        w.u32("u32", 4000000000u).i32("i32", -7).f32("f32", 0.1f).boolean("bool", true).str("string", "héllo");
        w.u64("u64", 1ull << 40).value("i64", test::gguf_scalar(GgufType::i64, uint64_t(-5)));
        double d = -2.5;
        uint64_t db;
        std::memcpy(&db, &d, 8);
        w.value("f64", test::gguf_scalar(GgufType::f64, db));
        w.value("ints", test::gguf_array(GgufType::i16, {test::gguf_scalar(GgufType::i16, 3), test::gguf_scalar(GgufType::i16, 0xffff)}));
        w.strings("strs", {"a", "", "b c"});
        w.value("nested", test::gguf_array(GgufType::array, {test::gguf_array(GgufType::u32, {test::gguf_scalar(GgufType::u32, 9)}),
                                                             test::gguf_array(GgufType::string, {test::gguf_string("x")})}));
        w.tensor("q", DType::q8_0, {64, 3}, random_bytes(3 * 2 * 34, 1));
        w.tensor("v", DType::f32, {5}, random_bytes(20, 2));
        const GgufFile f = parse_bytes(w.bytes());
        REQUIRE(f.version() == version);
        REQUIRE(f.alignment() == 64);
        REQUIRE(f.get_int("u8") == 200);
        REQUIRE(f.get_int("i8") == -2);
        REQUIRE(f.get_int("u16") == 65000);
        REQUIRE(f.get_int("i16") == -32768);
        REQUIRE(f.get_int("u32") == 4000000000ll);
        REQUIRE(f.get_int("i32") == -7);
        REQUIRE(f.get_float("f32") == 0.1); // the shortest decimal of the float, not 0.100000001
        REQUIRE(f.get_bool("bool") == true);
        REQUIRE(f.get_string("string") == "héllo");
        REQUIRE(f.get_int("u64") == int64_t(1) << 40);
        REQUIRE(f.get_int("i64") == -5);
        REQUIRE(f.get_float("f64") == -2.5);
        REQUIRE(f.get_ints("ints") == std::vector<int64_t>{3, -1});
        REQUIRE(f.get_strings("strs") == std::vector<std::string>{"a", "", "b c"});
        const GgufValue* n = f.find("nested");
        REQUIRE(n);
        REQUIRE(n->items.size() == 2);
        REQUIRE(n->items[0].int_at(0) == 9);
        REQUIRE(n->items[1].items[0].str == "x");
        REQUIRE_FALSE(f.get_int("absent"));
        REQUIRE_THROWS_WITH(f.get_string("u32"), Contains("metadata 'u32' is u32; expected a string"));
        REQUIRE_THROWS_WITH(f.need_int("absent"), Contains("has no metadata 'absent'"));
        REQUIRE(f.tensors().size() == 2);
        const GgufTensorInfo* q = f.find_tensor("q");
        REQUIRE(q);
        REQUIRE(q->dtype == DType::q8_0);
        REQUIRE(q->shape == std::vector<uint64_t>{3, 64});
        REQUIRE(q->nbytes == 204);
        REQUIRE(q->offset == f.data_start());
        REQUIRE(f.data_start() % 64 == 0);
        REQUIRE(f.find_tensor("v")->offset == f.data_start() + 256);
    }
}

namespace {

struct BadCase {
    const char* what;
    std::function<std::string()> bytes;
    const char* message;
    ExitCode code = ExitCode::bad_input;
};

void put64(std::string& b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = char((v >> (8 * i)) & 0xff);
}

// A valid file whose first key is "a", an array of u8: the fields sit at fixed offsets.
GgufWriter with_array_first() {
    GgufWriter w = tiny_llama({});
    w.kv.insert(w.kv.begin(), {"a", test::gguf_array(GgufType::u8, {test::gguf_scalar(GgufType::u8, 1)})});
    return w;
}

std::vector<BadCase> bad_cases() {
    auto edit = [](std::function<void(GgufWriter&)> f) {
        return [f] {
            GgufWriter w = tiny_llama({});
            f(w);
            return w.bytes();
        };
    };
    const std::string valid = tiny_llama({}).bytes();
    return {
        {"an empty file", [] { return std::string(); }, "does not start with the GGUF magic"},
        {"another magic", [valid] { return "GGML" + valid.substr(4); }, "does not start with the GGUF magic"},
        {"version 4", edit([](GgufWriter& w) { w.version = 4; }), "has GGUF version 4; expected 2 or 3"},
        {"version 1", edit([](GgufWriter& w) { w.version = 1; }), "GGUF version 1", ExitCode::unsupported},
        {"a truncated header", [valid] { return valid.substr(0, 200); }, "is truncated"},
        {"a tensor past the end", [valid] { return valid.substr(0, valid.size() - 100); }, "runs past the end of the file"},
        {"a type GGML never had", edit([](GgufWriter& w) { w.tensors[1].ggml_type = 99; }), "which GGML does not define"},
        {"an unsupported quant type", edit([](GgufWriter& w) { w.tensors[2].ggml_type = 16; }),
         "has type IQ2_XXS, which rabbit does not read", ExitCode::unsupported},
        {"rows not whole blocks", edit([](GgufWriter& w) { w.tensors[2].ne = {48, 64}; }),
         "rows of 48 elements, not a whole number of Q8_0 blocks (32)"},
        {"five dimensions", edit([](GgufWriter& w) { w.tensors[1].ne = {64, 1, 1, 1, 1}; }), "has 5 dimensions"},
        {"a misaligned tensor", edit([](GgufWriter& w) { w.u32("general.alignment", 4096); }), "not a multiple of the alignment"},
        {"an alignment not a power of two", edit([](GgufWriter& w) { w.u32("general.alignment", 48); }),
         "general.alignment must be a u32 power of two"},
        {"a key twice", edit([](GgufWriter& w) { w.u32("llama.block_count", 1); }), "holds metadata 'llama.block_count' twice"},
        {"a tensor twice", edit([](GgufWriter& w) { w.tensors.push_back(w.tensors[1]); }), "holds tensor 'blk.0.attn_norm.weight' twice"},
        {"an absurd tensor count", [valid] { std::string b = valid; put64(b, 8, 1ull << 60); return b; },
         "tensors, more than the file holds"},
        {"an absurd metadata count", [valid] { std::string b = valid; put64(b, 16, 1ull << 60); return b; },
         "metadata pairs, more than the file holds"},
        {"an absurd key length", [valid] { std::string b = valid; put64(b, 24, 1ull << 62); return b; },
         "over the limit of 65535"},
        {"an absurd array count", [] { std::string b = with_array_first().bytes(); put64(b, 41, 1ull << 61); return b; },
         "elements, more than the file holds"},
        {"a value type of 13", [] { std::string b = with_array_first().bytes(); b[33] = 13; return b; },
         "has value type 13"},
        {"another architecture", [] { return tiny_llama({}, "gpt2").bytes(); }, "general.architecture is 'gpt2'",
         ExitCode::unsupported},
        {"a tensor rabbit does not map", edit([](GgufWriter& w) { w.tensor("blk.0.ssm_conv1d.weight", DType::f32, {4}, std::string(16, '\0')); }),
         "holds tensor 'blk.0.ssm_conv1d.weight', which is not part of a llama model", ExitCode::unsupported},
        {"a missing tensor", edit([](GgufWriter& w) { w.tensors.erase(w.tensors.begin() + 8); }),
         "tensor 'model.layers.0.mlp.up_proj.weight' is missing"},
        {"a missing block_count", edit([](GgufWriter& w) { w.kv.erase(w.kv.begin() + 1); }), "has no metadata 'llama.block_count'"},
    };
}

} // namespace

TEST_CASE("malformed GGUF files are refused in one line each, in the parser and by rabbit split", "[gguf][cli]") {
    test::TempDir dir;
    const std::string good = dir / "good.gguf";
    tiny_llama({}).write(good);
    REQUIRE(test::run_rabbit({"-q", "split", good, "-o", dir / "good"}).exit_code == 0);
    int n = 0;
    for (const BadCase& c : bad_cases()) {
        INFO(c.what);
        const std::string path = dir / ("bad" + std::to_string(n) + ".gguf"), out = dir / ("out" + std::to_string(n++));
        test::write_file(path, c.bytes());
        try {
            plan_split(open_gguf_checkpoint(path), DTypeChoice::automatic);
            FAIL("accepted");
        } catch (const Error& e) {
            REQUIRE_THAT(e.what(), Contains(path) && Contains(c.message));
            REQUIRE(e.code() == c.code);
        }
        const test::RunResult r = test::run_rabbit({"split", path, "-o", out});
        REQUIRE(r.exit_code == int(c.code));
        REQUIRE_THAT(r.err, Contains(c.message));
        // One error line, the last (a warning that the GGUF has no tokenizer may come first).
        const size_t last = r.err.rfind('\n', r.err.size() - 2);
        const std::string error_line = last == std::string::npos ? r.err : r.err.substr(last + 1);
        REQUIRE(error_line.rfind("error: ", 0) == 0);
        REQUIRE_THAT(error_line, Contains(c.message));
        REQUIRE(r.err.find("error") == r.err.size() - error_line.size());
        REQUIRE_FALSE(test::exists(out));
    }
}

TEST_CASE("a llama GGUF splits into its Hugging Face model's units, q and k rows unpermuted", "[gguf][engine]") {
    // rabbit-genmodel's models converted as llama.cpp does; the GGUF split must equal the
    // safetensors split unit for unit, byte for byte, and so give the same logits.
    struct Variant {
        const char* preset;
        DType dtype;
    };
    for (const Variant& v : {Variant{"tiny-llama3", DType::f32}, Variant{"tiny-llama3", DType::f16},
                             Variant{"tiny-qwen2", DType::f32}, Variant{"tiny-qwen3", DType::f16}}) {
        INFO(v.preset << " " << dtype_name(v.dtype));
        test::TempDir dir;
        const std::string hf = make_hf(dir, v.preset, v.dtype);
        test::GgufConversion conv;
        conv.keep_types = true; // F16 norms too: they become f32, exactly
        const std::string gguf = test::convert_hf_to_gguf(hf, dir / "m.gguf", conv);
        const std::string a = test::split_into(hf, dir / "from_hf", DTypeChoice::keep);
        const std::string b = test::split_into(gguf, dir / "from_gguf");
        test::require_same_units(a, b);
        const SplitModel ma = SplitModel::open(a), mb = SplitModel::open(b);
        CpuEngine ea(ma, {}), eb(mb, {});
        const std::vector<int32_t> prompt = {1, 17, 300, 4, 99};
        test::require_same(test::prompt_and_steps_logits(eb, prompt), test::prompt_and_steps_logits(ea, prompt));
    }
}

TEST_CASE("tinystories-656k as a GGUF gives the logits of its safetensors", "[gguf][engine][tinystories]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string gguf = test::convert_hf_to_gguf(test::tinystories_dir(), dir / "ts.gguf");
    const std::string a = test::split_into(test::tinystories_dir(), dir / "from_hf");
    const std::string b = test::split_into(gguf, dir / "from_gguf");
    test::require_same_units(a, b);
    const SplitModel ma = SplitModel::open(a), mb = SplitModel::open(b);
    CpuEngine ea(ma, {}), eb(mb, {});
    test::require_same(test::prompt_and_steps_logits(eb, {1, 400, 20, 7}), test::prompt_and_steps_logits(ea, {1, 400, 20, 7}));
}

TEST_CASE("quantized GGUF tensors keep their type; q/k/v of different types are kept apart", "[gguf]") {
    test::TempDir dir;
    SECTION("one type: stacked") {
        const GgufWriter w = tiny_llama({});
        w.write(dir / "same.gguf");
        const std::string out = test::split_into(dir / "same.gguf", dir / "same");
        const SplitModel m = SplitModel::open(out);
        REQUIRE(m.manifest().dtype == "mixed"); // q8_0 and q4_0 matrices
        const ManifestUnit& layer = m.manifest().units.at(1);
        REQUIRE(layer.layout.find("qkv")->dtype == DType::q8_0);
        REQUIRE(layer.layout.find("qkv")->shape == std::vector<uint64_t>{128, 64});
        REQUIRE(layer.layout.find("gate_up")->dtype == DType::q4_0);
        REQUIRE(layer.layout.find("ffn_norm")->dtype == DType::f32);
        REQUIRE(m.manifest().units.at(0).layout.find("embed")->dtype == DType::q8_0);
        REQUIRE(m.config().tie_word_embeddings);
        // HF row r of q comes from GGUF row gguf_row_of_hf_row(r): rows move whole, blocks intact.
        const std::string qkv = unit_tensor(out, "layer.000.rbt", "qkv");
        const std::string q = gguf_tensor(w, "blk.0.attn_q.weight"), k = gguf_tensor(w, "blk.0.attn_k.weight");
        const size_t row = size_t(dtype_row_bytes(DType::q8_0, 64));
        for (uint64_t r : {0u, 1u, 15u, 16u, 17u, 31u, 32u, 48u, 63u})
            REQUIRE(qkv.substr(r * row, row) == q.substr(test::gguf_row_of_hf_row(r, 32) * row, row));
        for (uint64_t r : {0u, 1u, 16u, 31u})
            REQUIRE(qkv.substr((64 + r) * row, row) == k.substr(test::gguf_row_of_hf_row(r, 32) * row, row));
        REQUIRE(test::gguf_row_of_hf_row(16, 32) == 1); // the second half of a head: the odd rows
        REQUIRE(test::gguf_row_of_hf_row(1, 32) == 2);
    }
    SECTION("types differ: q, k, v and gate, up apart") {
        TinyTypes t;
        t.v = DType::q4_0;
        t.up = DType::q8_0;
        const GgufWriter w = tiny_llama(t);
        w.write(dir / "mixed.gguf");
        const std::string out = test::split_into(dir / "mixed.gguf", dir / "mixed");
        const SplitModel m = SplitModel::open(out);
        const UnitLayout& l = m.manifest().units.at(1).layout;
        REQUIRE_FALSE(l.find("qkv"));
        REQUIRE_FALSE(l.find("gate_up"));
        REQUIRE(l.find("q")->dtype == DType::q8_0);
        REQUIRE(l.find("k")->shape == std::vector<uint64_t>{32, 64});
        REQUIRE(l.find("v")->dtype == DType::q4_0);
        REQUIRE(l.find("gate")->dtype == DType::q4_0);
        REQUIRE(l.find("up")->dtype == DType::q8_0);
        const std::string k = unit_tensor(out, "layer.000.rbt", "k"), src = gguf_tensor(w, "blk.0.attn_k.weight");
        const size_t row = size_t(dtype_row_bytes(DType::q8_0, 64));
        for (uint64_t r = 0; r < 32; ++r) REQUIRE(k.substr(r * row, row) == src.substr(test::gguf_row_of_hf_row(r, 32) * row, row));
        REQUIRE(unit_tensor(out, "layer.000.rbt", "v") == gguf_tensor(w, "blk.0.attn_v.weight")); // not permuted
    }
    SECTION("qwen2 rows are not permuted") {
        GgufWriter w = tiny_llama({}, "qwen2");
        for (const char* b : {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"})
            w.tensor(b, DType::f32, {std::string(b).find("attn_q") != std::string::npos ? 64u : 32u},
                     tensor_bytes(DType::f32, 1, std::string(b).find("attn_q") != std::string::npos ? 64 : 32, 9));
        w.write(dir / "qwen2.gguf");
        const std::string out = test::split_into(dir / "qwen2.gguf", dir / "qwen2");
        const std::string qkv = unit_tensor(out, "layer.000.rbt", "qkv");
        REQUIRE(qkv.substr(0, gguf_tensor(w, "blk.0.attn_q.weight").size()) == gguf_tensor(w, "blk.0.attn_q.weight"));
        REQUIRE(unit_tensor(out, "layer.000.rbt", "qkv_bias").substr(0, 256) == gguf_tensor(w, "blk.0.attn_q.bias"));
    }
    SECTION("a quantized GGUF is not converted") {
        tiny_llama({}).write(dir / "q.gguf");
        const test::RunResult r = test::run_rabbit({"split", dir / "q.gguf", "-o", dir / "f16", "--dtype", "f16"});
        REQUIRE(r.exit_code == int(ExitCode::unsupported));
        REQUIRE_THAT(r.err, Contains("keeps quantized tensors as they are"));
        REQUIRE_FALSE(test::exists(dir / "f16"));
    }
}

TEST_CASE("a GGUF split set splits as one file; a missing part is named", "[gguf][cli]") {
    test::TempDir dir;
    const std::string hf = make_hf(dir, "tiny-qwen2", DType::f32);
    const std::string one = test::convert_hf_to_gguf(hf, dir / "one.gguf");
    test::GgufConversion conv;
    conv.parts = 3;
    const std::string first = test::convert_hf_to_gguf(hf, dir / "set", conv);
    REQUIRE(first == dir / "set-00001-of-00003.gguf");
    const GgufSet set = open_gguf_set(dir / "set-00002-of-00003.gguf"); // any part opens the set
    REQUIRE(set.parts.size() == 3);
    REQUIRE(set.parts[1].tensors().size() > 0);
    test::require_same_units(test::split_into(one, dir / "a"), test::split_into(first, dir / "b"));

    test::remove_path(dir / "set-00002-of-00003.gguf");
    const test::RunResult r = test::run_rabbit({"split", first, "-o", dir / "c"});
    REQUIRE(r.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(r.err, Contains(dir / "set-00002-of-00003.gguf") && Contains("no such file: part 2 of the 3-part split set"));
    REQUIRE_FALSE(test::exists(dir / "c"));
}

TEST_CASE("inspect shows a GGUF's types; bench -m FILE.gguf splits it into the cache once", "[gguf][cli]") {
    test::TempDir dir;
    tiny_llama({}).write(dir / "tiny.gguf");
    const test::RunResult i = test::run_rabbit({"inspect", dir / "tiny.gguf"});
    REQUIRE(i.exit_code == 0);
    REQUIRE_THAT(i.out, Contains("GGUF") && Contains("llama") && Contains("Q8_0 x6") && Contains("Q4_0 x2"));
    const test::RunResult j = test::run_rabbit({"inspect", dir / "tiny.gguf", "--json"});
    REQUIRE_THAT(j.out, Contains("\"architecture\": \"llama\"") && Contains("\"Q4_0\""));
    // f32 weights: the CPU kernels of quantized blocks are another change's.
    TinyTypes f32;
    f32.embed = f32.q = f32.k = f32.v = f32.o = f32.gate = f32.up = f32.down = DType::f32;
    tiny_llama(f32).write(dir / "tiny32.gguf");
    const std::map<std::string, std::string> env = {{"RABBIT_CACHE", dir / "cache"}};
    const std::vector<std::string> bench = {"-q", "bench", "-m", dir / "tiny32.gguf", "--backend", "cpu", "--prompt-len", "4",
                                            "--gen", "2", "--repeat", "1", "--warmup", "0", "--read-bytes", "0"};
    for (int run = 0; run < 2; ++run) { // the second finds the split the first made
        const test::RunResult b = test::run_rabbit(bench, env);
        INFO(b.err);
        REQUIRE(b.exit_code == 0);
        const std::vector<std::string> splits = test::list_files(dir / "cache/splits");
        REQUIRE(splits.size() >= 1);
        REQUIRE(splits[0].rfind("tiny32-", 0) == 0);
    }
}

TEST_CASE("SmolLM2-135M-Instruct Q4_1 GGUF maps onto 30 llama layers", "[gguf][smollm]") {
    const char* home = std::getenv("HOME");
    const std::string path =
        std::string(home ? home : "") + "/.cache/rabbit/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!test::exists(path)) {
        WARN("SKIPPED: " << path << " is absent");
        return;
    }
    const HfCheckpoint ck = open_gguf_checkpoint(path, false);
    const SplitPlan plan = plan_split(ck, DTypeChoice::automatic);
    const ModelConfig& c = plan.config;
    REQUIRE(c.arch == Arch::llama);
    REQUIRE(c.num_layers == 30);
    REQUIRE(c.hidden_size == 576);
    REQUIRE(c.num_heads == 9);
    REQUIRE(c.num_kv_heads == 3);
    REQUIRE(c.head_dim == 64);
    REQUIRE(c.intermediate_size == 1536);
    REQUIRE(c.vocab_size == 49152);
    REQUIRE(c.tie_word_embeddings);
    REQUIRE(c.rms_norm_eps == 1e-5);
    REQUIRE(plan.dtype == "mixed");
    REQUIRE(plan.units.size() == 32);
    REQUIRE(plan.units[0].layout.find("embed")->dtype == DType::q8_0);
    const UnitLayout& l = plan.units[1].layout;
    REQUIRE(l.find("qkv")->dtype == DType::q4_1);
    REQUIRE(l.find("qkv")->shape == std::vector<uint64_t>{576 + 2 * 192, 576});
    REQUIRE(l.find("gate_up")->dtype == DType::q4_1);
    REQUIRE(l.find("attn_norm")->dtype == DType::f32);
    // q and k come back row by row: one piece per row.
    REQUIRE(plan.units[1].pieces[1].size() == 576 + 192 + 1);
}

// Not run by default: writes the fuzzer's seed corpus (tests/fuzz/corpus_gguf) from the
// writer above. `rabbit_tests "[.gguf-seeds]"` after a change of the format's coverage.
TEST_CASE("write the GGUF fuzz seeds", "[.gguf-seeds]") {
    const std::string dir = test::source_dir() + "/tests/fuzz/corpus_gguf";
    make_directories(dir);
    TinyTypes mixed;
    mixed.v = DType::q4_0;
    tiny_llama(mixed).write(dir + "/tiny_llama_q8_0_q4_0.gguf");
    GgufWriter q3 = tiny_llama({}, "qwen3");
    q3.version = 2;
    q3.alignment = 64;
    q3.tensor("blk.0.attn_q_norm.weight", DType::f32, {32}, tensor_bytes(DType::f32, 1, 32, 3));
    q3.tensor("blk.0.attn_k_norm.weight", DType::f32, {32}, tensor_bytes(DType::f32, 1, 32, 4));
    q3.write(dir + "/tiny_qwen3_v2_align64.gguf");
    GgufWriter meta;
    meta.value("u8", test::gguf_scalar(GgufType::u8, 7)).value("i16", test::gguf_scalar(GgufType::i16, 0x8001));
    meta.u64("u64", 99).f32("f32", 0.5f).boolean("b", false).str("s", "x");
    meta.value("f64", test::gguf_scalar(GgufType::f64, 0x3ff0000000000000ull));
    meta.value("nested", test::gguf_array(GgufType::array, {test::gguf_array(GgufType::i32, {test::gguf_scalar(GgufType::i32, 1)})}));
    meta.strings("tokenizer.ggml.tokens", {"a", "b"});
    meta.value("split.no", test::gguf_scalar(GgufType::u16, 0)).value("split.count", test::gguf_scalar(GgufType::u16, 1));
    meta.tensor("t", DType::q4_k, {256, 1}, std::string(144, '\1'));
    meta.write(dir + "/metadata_all_types.gguf");
    // A MoE model as llama.cpp's converter writes it: stacked experts, router, shared expert.
    test::write_file(dir + "/qwen2moe_f32.gguf", test::read_file(test::source_dir() + "/tests/data/moe_gguf/qwen2moe-F32.gguf"));
}
