// SPDX-License-Identifier: Apache-2.0
// Bad input and failures part-way, through the command line: each gets one line on stderr
// that names the file and what was expected, the documented exit code, and leaves no
// manifest pointing at bad data.
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "format/safetensors.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <functional>
#include <sys/stat.h>
#include <unistd.h>

using namespace rabbit;
using Catch::Contains;

namespace {

std::string make_model(const test::TempDir& dir, const std::string& preset = "tiny-qwen2", uint32_t shards = 1,
                       DType dtype = DType::f32) {
    GenSpec spec = preset_spec(preset);
    spec.shards = shards;
    spec.dtype = dtype;
    spec.seed = 5;
    const std::string path = dir / "model";
    generate_model(spec, path);
    return path;
}

// Rewrites a safetensors file's header; the data section stays as it was.
void rewrite_header(const std::string& path, const std::function<void(std::vector<TensorEntry>&)>& edit,
                    const std::function<std::string(std::string)>& edit_json = nullptr) {
    std::string bytes = test::read_file(path);
    SafetensorsHeader h = parse_safetensors(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), bytes.size(), path);
    std::vector<TensorEntry> entries = h.tensors;
    if (edit) edit(entries);
    JsonWriter w(false);
    w.begin_object();
    for (const auto& t : entries) {
        w.key(t.name).begin_object().member("dtype", dtype_safetensors_name(t.dtype));
        w.key("shape").begin_array(true);
        for (uint64_t d : t.shape) w.value(d);
        w.end_array();
        w.key("data_offsets").begin_array(true).value(t.begin).value(t.end).end_array();
        w.end_object();
    }
    w.end_object();
    std::string json = w.str();
    if (edit_json) json = edit_json(json);
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(json.size()) >> (8 * i)) & 0xff);
    test::write_file(path, out + json + bytes.substr(size_t(h.data_start)));
}

TensorEntry& entry(std::vector<TensorEntry>& v, const std::string& name) {
    for (auto& t : v)
        if (t.name == name) return t;
    FAIL("no tensor " << name);
    return v.front();
}

// Runs `rabbit -q split SRC -o OUT` and checks the failure's shape: the exit code, a single
// "error: " line naming `file` and containing `what`, and no manifest in OUT.
void expect_split_failure(const std::string& src, const std::string& out, ExitCode code, const std::string& file,
                          const std::string& what, const std::map<std::string, std::string>& env = {}) {
    test::RunResult r = test::run_rabbit({"-q", "split", src, "-o", out}, env);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == int(code));
    REQUIRE(r.out.empty());
    // The error is the last line and the only one; a warning (no tokenizer) may precede it.
    REQUIRE(!r.err.empty());
    REQUIRE(r.err.back() == '\n');
    const size_t start = r.err.rfind('\n', r.err.size() - 2) + 1; // npos + 1 == 0
    const std::string line = r.err.substr(start);
    REQUIRE(line.rfind("error: ", 0) == 0);
    REQUIRE(r.err.find("error: ") == start);
    REQUIRE_THAT(line, Contains(file));
    REQUIRE_THAT(line, Contains(what));
    REQUIRE(!test::exists(out + "/manifest.json"));
}

} // namespace

TEST_CASE("missing config.json", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    test::remove_path(src + "/config.json");
    expect_split_failure(src, dir / "out", ExitCode::bad_input, src + "/config.json", "no such file");
    REQUIRE(!test::exists(dir / "out")); // bad input leaves nothing behind
}

TEST_CASE("model directory that does not exist", "[split][bad-input]") {
    test::TempDir dir;
    expect_split_failure(dir / "nope", dir / "out", ExitCode::bad_input, dir / "nope", "no such directory");
}

TEST_CASE("unsupported architecture lists what is supported", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    std::string cfg = test::read_file(src + "/config.json");
    cfg.replace(cfg.find("Qwen2ForCausalLM"), 16, "Phi3ForCausalLM");
    test::write_file(src + "/config.json", cfg);
    expect_split_failure(src, dir / "out", ExitCode::unsupported, src + "/config.json",
                         "architecture 'Phi3ForCausalLM' is not supported; rabbit runs Qwen2ForCausalLM, Qwen3ForCausalLM");
}

TEST_CASE("truncated safetensors", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    std::string bytes = test::read_file(st);
    test::write_file(st, bytes.substr(0, bytes.size() - 1000));
    expect_split_failure(src, dir / "out", ExitCode::bad_input, st, "run past the end of the data section");
}

TEST_CASE("header length past the end of the file", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    std::string bytes = test::read_file(st);
    bytes[5] = '\x01'; // the length becomes about 2^40
    test::write_file(st, bytes);
    expect_split_failure(src, dir / "out", ExitCode::bad_input, st, "runs past the end of the file");
}

TEST_CASE("malformed header JSON", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    rewrite_header(st, nullptr, [](std::string json) { return json.replace(json.find(':'), 1, ";"); });
    expect_split_failure(src, dir / "out", ExitCode::bad_input, st, "is not valid JSON");
}

TEST_CASE("a tensor range outside the file", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    rewrite_header(st, [](std::vector<TensorEntry>& v) {
        TensorEntry& t = entry(v, "model.norm.weight");
        t.begin += 1u << 20;
        t.end += 1u << 20;
    });
    expect_split_failure(src, dir / "out", ExitCode::bad_input, st,
                         "tensor 'model.norm.weight' data_offsets [");
}

TEST_CASE("a dtype or shape that does not match the bytes", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    SECTION("dtype") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) { entry(v, "model.layers.0.mlp.up_proj.weight").dtype = DType::bf16; });
        expect_split_failure(src, dir / "out", ExitCode::bad_input, st,
                             "tensor 'model.layers.0.mlp.up_proj.weight': shape [176, 64] of BF16 needs 22528 bytes but");
    }
    SECTION("shape") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) { entry(v, "model.layers.1.self_attn.q_proj.weight").shape = {64, 63}; });
        expect_split_failure(src, dir / "out", ExitCode::bad_input, st, "shape [64, 63] of F32 needs");
    }
    SECTION("shape consistent with the bytes but not with config.json") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) { entry(v, "model.layers.1.mlp.down_proj.weight").shape = {176, 64}; });
        expect_split_failure(src, dir / "out", ExitCode::bad_input, st,
                             "tensor 'model.layers.1.mlp.down_proj.weight' has shape [176, 64], but " + src +
                                 "/config.json implies [64, 176]");
    }
    SECTION("a dtype rabbit does not compute with") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) {
            TensorEntry& t = entry(v, "model.norm.weight");
            t.dtype = DType::i32; // same size as F32
        });
        expect_split_failure(src, dir / "out", ExitCode::unsupported, st, "tensor 'model.norm.weight' has dtype I32");
    }
}

TEST_CASE("a missing tensor, and an unexpected one", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    const std::string st = src + "/model.safetensors";
    SECTION("missing") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) {
            v.erase(v.begin() + (&entry(v, "model.layers.1.mlp.up_proj.weight") - v.data()));
        });
        expect_split_failure(src, dir / "out", ExitCode::bad_input, st,
                             "tensor 'model.layers.1.mlp.up_proj.weight' is missing; Qwen2ForCausalLM with 2 layers needs it");
    }
    SECTION("unexpected: a bias this architecture does not have") {
        rewrite_header(st, [](std::vector<TensorEntry>& v) {
            TensorEntry extra = v.back();
            extra.name = "model.layers.0.mlp.gate_proj.bias";
            extra.shape = {0};
            extra.begin = extra.end;
            v.push_back(extra);
        });
        expect_split_failure(src, dir / "out", ExitCode::bad_input, st,
                             "holds tensor 'model.layers.0.mlp.gate_proj.bias', which a Qwen2ForCausalLM with this "
                             "config.json does not have");
    }
}

TEST_CASE("an index that names a missing shard", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-qwen3", 3, DType::bf16);
    test::remove_path(src + "/model-00002-of-00003.safetensors");
    expect_split_failure(src, dir / "out", ExitCode::bad_input, src + "/model-00002-of-00003.safetensors",
                         "no such file, though " + src + "/model.safetensors.index.json names it");
}

TEST_CASE("an index that claims a tensor its shard does not hold", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-qwen3", 3, DType::bf16);
    std::string index = test::read_file(src + "/model.safetensors.index.json");
    const std::string key = "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"";
    REQUIRE(index.find(key) != std::string::npos);
    index.replace(index.find(key), key.size(), "\"model.norm.weight\": \"model-00001-of-00003.safetensors\"");
    test::write_file(src + "/model.safetensors.index.json", index);
    expect_split_failure(src, dir / "out", ExitCode::bad_input, "model-00001-of-00003.safetensors",
                         "holds no tensor 'model.norm.weight'");
}

TEST_CASE("no weights at all", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    test::remove_path(src + "/model.safetensors");
    test::write_file(src + "/pytorch_model.bin", "x");
    expect_split_failure(src, dir / "out", ExitCode::bad_input, src + "/model.safetensors",
                         "found pytorch_model.bin: rabbit reads safetensors only");
}

TEST_CASE("a full disk part-way: clear error, no partial files, and the next run resumes", "[split][failure]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-qwen3", 1, DType::f32);
    const std::string out = dir / "out";
    // The embedding is 131 KiB of f32: fail inside the second unit.
    expect_split_failure(src, out, ExitCode::output, out + "/layer.000.rbt.tmp",
                         "No space left on device (ENOSPC); finished units are kept: run the same command again to resume",
                         {{"RABBIT_FAULT", "enospc-after=180000"}});
    for (const auto& name : test::list_files(out)) REQUIRE(name.find(".tmp") == std::string::npos);
    REQUIRE(test::exists(out + "/embed.rbt"));
    REQUIRE(!test::exists(out + "/layer.000.rbt"));
    const auto embed = test::file_id(out + "/embed.rbt");

    test::RunResult r = test::run_rabbit({"split", src, "-o", out});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.err, Contains("kept embed"));
    REQUIRE_THAT(r.err, Contains("1 kept from an earlier run"));
    REQUIRE(test::file_id(out + "/embed.rbt") == embed);
    SplitModel s = SplitModel::open(out);
    for (const auto& u : s.manifest().units) s.verify_checksum(u);
}

TEST_CASE("a split killed mid-unit leaves no manifest and resumes without rewriting finished units",
          "[split][failure]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-llama3", 2, DType::bf16);
    const std::string out = dir / "out";
    test::RunResult killed = test::run_rabbit({"-q", "split", src, "-o", out}, {{"RABBIT_FAULT", "kill-after=140000"}});
    REQUIRE(killed.signal == 9);
    REQUIRE(!test::exists(out + "/manifest.json"));
    bool has_tmp = false;
    for (const auto& name : test::list_files(out)) has_tmp |= name.find(".rbt.tmp") != std::string::npos;
    REQUIRE(has_tmp); // a kill leaves the unit it was writing, under its temporary name
    const auto embed = test::file_id(out + "/embed.rbt");

    test::RunResult r = test::run_rabbit({"split", src, "-o", out});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(test::file_id(out + "/embed.rbt") == embed);
    for (const auto& name : test::list_files(out)) REQUIRE(name.find(".tmp") == std::string::npos);
    REQUIRE(!test::exists(out + "/.rabbit-split.journal.json"));

    // The same bytes as a split that was never interrupted.
    test::RunResult clean = test::run_rabbit({"-q", "split", src, "-o", dir / "clean"});
    REQUIRE(clean.exit_code == 0);
    for (const auto& name : test::list_files(dir / "clean")) {
        INFO(name);
        REQUIRE(test::read_file(out + "/" + name) == test::read_file(dir / "clean" + "/" + name));
    }
}

TEST_CASE("not enough free space is refused before writing", "[split][failure]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    expect_split_failure(src, dir / "out", ExitCode::output, dir / "out", "not enough free space: the split needs",
                         {{"RABBIT_FAULT", "free-bytes=100000"}});
    for (const auto& name : test::list_files(dir / "out")) REQUIRE(name.find(".rbt") == std::string::npos);
}

TEST_CASE("the output must be a new, empty or split directory", "[split][failure]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    test::write_file(dir / "file", "x");
    expect_split_failure(src, dir / "file", ExitCode::output, dir / "file", "exists and is not a directory");
    ::mkdir((dir / "busy").c_str(), 0755);
    test::write_file(dir / "busy/notes.txt", "mine");
    expect_split_failure(src, dir / "busy", ExitCode::output, dir / "busy", "is not empty and holds no rabbit split (found 'notes.txt')");
    REQUIRE(test::read_file(dir / "busy/notes.txt") == "mine");
    test::RunResult same = test::run_rabbit({"-q", "split", src, "-o", src});
    REQUIRE(same.exit_code == int(ExitCode::usage));
}

TEST_CASE("a damaged split is refused when opened, naming the unit file", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    REQUIRE(test::run_rabbit({"-q", "split", src, "-o", dir / "out"}).exit_code == 0);
    std::string layer = test::read_file(dir / "out/layer.001.rbt");
    test::write_file(dir / "out/layer.001.rbt", layer.substr(0, layer.size() - 4096));
    REQUIRE_THROWS_WITH(SplitModel::open(dir / "out"), Contains(dir / "out/layer.001.rbt") && Contains("the manifest says"));
    test::RunResult r = test::run_rabbit({"inspect", dir / "out"});
    REQUIRE(r.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(r.err, Contains("layer.001.rbt"));
}

TEST_CASE("Ctrl-C mid-unit exits 130, removes the partial unit, and the next run resumes", "[split][failure]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-qwen3", 1, DType::f32);
    const std::string out = dir / "out";
    test::RunResult r = test::run_rabbit({"-q", "split", src, "-o", out, "--chunk", "4K"}, {{"RABBIT_FAULT", "sigint-after=180000"}});
    INFO(r.err);
    REQUIRE(r.exit_code == int(ExitCode::interrupted));
    REQUIRE_THAT(r.err, Contains("\nerror: interrupted; finished units are kept: run the same command again to resume\n"));
    REQUIRE(!test::exists(out + "/manifest.json"));
    for (const auto& name : test::list_files(out)) REQUIRE(name.find(".tmp") == std::string::npos);
    REQUIRE(test::exists(out + "/embed.rbt"));
    test::RunResult again = test::run_rabbit({"split", src, "-o", out});
    REQUIRE(again.exit_code == 0);
    REQUIRE_THAT(again.err, Contains("kept embed"));
}

namespace {

bool any_shard_left(const std::string& dir) {
    for (const auto& name : test::list_files(dir))
        if (name.size() > 12 && name.substr(name.size() - 12) == ".safetensors") return true;
    return false;
}

// The same units and companion files; the manifests differ only in deleted_sources.
void expect_same_files(const std::string& a, const std::string& b) {
    for (const auto& name : test::list_files(b)) {
        INFO(name);
        if (name == "manifest.json") continue;
        REQUIRE(test::read_file(a + "/" + name) == test::read_file(b + "/" + name));
    }
    const Manifest ma = SplitModel::open(a).manifest(), mb = SplitModel::open(b).manifest();
    REQUIRE(ma.source_fingerprint == mb.source_fingerprint);
    REQUIRE(ma.units.size() == mb.units.size());
    for (size_t i = 0; i < ma.units.size(); ++i) REQUIRE(ma.units[i].xxh3 == mb.units[i].xxh3);
}

} // namespace

TEST_CASE("deleting the original survives a kill at any point: the resumed run removes every shard",
          "[split][delete][failure]") {
    test::TempDir dir;
    const std::string pristine = make_model(dir, "tiny-qwen3", 3, DType::bf16);
    REQUIRE(test::run_rabbit({"-q", "split", pristine, "-o", dir / "clean"}).exit_code == 0);
    // The whole run writes about 400 KB (units, journals, companions, manifest); kill it every
    // 3 KB of that, so that every window between two steps is hit: mid-unit, between a unit
    // and its journal entry, between the journal and a removal, before the manifest.
    int killed_runs = 0;
    for (uint64_t kill_at = 1000; kill_at < 430000; kill_at += 3000) {
        INFO("killed after " << kill_at << " bytes");
        const std::string src = dir / ("m" + std::to_string(kill_at));
        const std::string out = src + "-out";
        test::copy_dir(pristine, src);
        test::RunResult killed = test::run_rabbit({"-q", "split", src, "-o", out, "--delete-original"},
                                                  {{"RABBIT_FAULT", "kill-after=" + std::to_string(kill_at)}});
        REQUIRE((killed.signal == 9 || killed.exit_code == 0));
        killed_runs += killed.signal == 9;
        test::RunResult resumed = test::run_rabbit({"-q", "split", src, "-o", out, "--delete-original"});
        INFO(resumed.err);
        REQUIRE(resumed.exit_code == 0);
        REQUIRE(!any_shard_left(src));
        REQUIRE(test::exists(src + "/model.safetensors.index.json"));
        expect_same_files(out, dir / "clean");
        // Running it again finds the split complete, though its source shards are gone.
        test::RunResult again = test::run_rabbit({"split", src, "-o", out});
        INFO(again.err);
        REQUIRE(again.exit_code == 0);
        REQUIRE_THAT(again.err, Contains("already holds this split"));
        test::remove_path(src);
        test::remove_path(out);
    }
    REQUIRE(killed_runs > 120); // the sweep reached the end of the run
}

TEST_CASE("deleting the original after a finished split removes the shards and records them", "[split][delete]") {
    test::TempDir dir;
    const std::string src = make_model(dir, "tiny-llama3", 2, DType::bf16);
    REQUIRE(test::run_rabbit({"-q", "split", src, "-o", dir / "out"}).exit_code == 0);
    REQUIRE(any_shard_left(src));
    test::RunResult r = test::run_rabbit({"split", src, "-o", dir / "out", "--delete-original"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(!any_shard_left(src));
    REQUIRE(SplitModel::open(dir / "out").manifest().deleted_sources.size() == 2);
    REQUIRE(test::run_rabbit({"-q", "split", src, "-o", dir / "out"}).exit_code == 0);
    // --force cannot redo a split whose sources are gone.
    test::RunResult forced = test::run_rabbit({"-q", "split", src, "-o", dir / "out", "--force"});
    REQUIRE(forced.exit_code == int(ExitCode::output));
    REQUIRE_THAT(forced.err, Contains("--delete-original removed its source shards"));
    REQUIRE(test::exists(dir / "out/manifest.json"));
}

TEST_CASE("deleting the original removes a symlinked shard's link, never its target", "[split][delete]") {
    test::TempDir dir;
    const std::string blobs = make_model(dir, "tiny-qwen2", 2, DType::bf16);
    const std::string snap = dir / "snapshot";
    ::mkdir(snap.c_str(), 0755);
    for (const auto& name : test::list_files(blobs))
        REQUIRE(::symlink((blobs + "/" + name).c_str(), (snap + "/" + name).c_str()) == 0);
    test::RunResult r = test::run_rabbit({"split", snap, "-o", dir / "out", "--delete-original"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.err, Contains("its target stays"));
    REQUIRE(!any_shard_left(snap));
    REQUIRE(any_shard_left(blobs));
}

TEST_CASE("deleting the original from a read-only directory is refused before writing", "[split][delete]") {
    if (::geteuid() == 0) {
        WARN("running as root: directory permissions do not stop root, the check cannot be exercised");
        return;
    }
    test::TempDir dir;
    const std::string src = make_model(dir);
    ::chmod(src.c_str(), 0555);
    expect_split_failure(src, dir / "out", ExitCode::output, src, "the directory is not writable");
    ::chmod(src.c_str(), 0755);
}

TEST_CASE("a corrupt unit header length is refused without reading the unit into memory", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    REQUIRE(test::run_rabbit({"-q", "split", src, "-o", dir / "out"}).exit_code == 0);
    std::string bytes = test::read_file(dir / "out/embed.rbt");
    bytes[12] = '\xff';
    bytes[13] = '\xff';
    bytes[14] = '\xff';
    test::write_file(dir / "out/embed.rbt", bytes);
    REQUIRE_THROWS_WITH(SplitModel::open(dir / "out"), Contains("embed.rbt: header length 16777215 runs into the data section"));
    // A resumed split treats the unit as damaged and writes it again.
    test::RunResult r = test::run_rabbit({"split", src, "-o", dir / "out"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.err, Contains("wrote embed"));
    REQUIRE_NOTHROW(SplitModel::open(dir / "out"));
}

TEST_CASE("a companion file that cannot be copied fails before any unit is written", "[split][bad-input]") {
    test::TempDir dir;
    const std::string src = make_model(dir);
    ::mkdir((src + "/tokenizer.json").c_str(), 0755);
    expect_split_failure(src, dir / "out", ExitCode::bad_input, src + "/tokenizer.json", "expected a regular file");
    REQUIRE(!test::exists(dir / "out"));
}
