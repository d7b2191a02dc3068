// SPDX-License-Identifier: Apache-2.0
// The command line: help, version, usage errors, split and inspect end to end.
#include "common/error.h"
#include "common/json_read.h"
#include "engine/memory_plan.h"
#include "genmodel.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace rabbit;
using Catch::Contains;

TEST_CASE("help and version print to stdout and exit 0", "[cli]") {
    test::RunResult help = test::run_rabbit({"--help"});
    REQUIRE(help.exit_code == 0);
    REQUIRE_THAT(help.out, Contains("split") && Contains("inspect") && Contains("Exit codes"));
    test::RunResult split_help = test::run_rabbit({"split", "--help"});
    REQUIRE(split_help.exit_code == 0);
    REQUIRE_THAT(split_help.out, Contains("--delete-original") && Contains("--dtype"));
    test::RunResult version = test::run_rabbit({"--version"});
    REQUIRE(version.exit_code == 0);
    REQUIRE_THAT(version.out, Contains("rabbit 0.1.0"));
}

TEST_CASE("usage errors exit 2 with one error line and a hint", "[cli]") {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {}, {"frobnicate"}, {"split"}, {"split", "dir"}, {"split", "dir", "-o", "out", "--dtype", "int4"},
             {"split", "dir", "-o", "out", "--chunk", "lots"}, {"inspect", "dir", "--vram-budget", "4Q"}}) {
        test::RunResult r = test::run_rabbit(args);
        INFO(r.err);
        REQUIRE(r.exit_code == int(ExitCode::usage));
        REQUIRE(r.err.rfind("error: ", 0) == 0);
        REQUIRE_THAT(r.err, Contains("--help"));
    }
}

TEST_CASE("split and inspect tinystories-656k from the command line", "[cli][tinystories]") {
    test::TempDir dir;
    const std::string out = dir / "ts";
    test::RunResult s = test::run_rabbit({"split", test::tinystories_dir(), "-o", out});
    INFO(s.err);
    REQUIRE(s.exit_code == 0);
    REQUIRE(s.out.empty()); // stdout carries results only; split's are files
    REQUIRE_THAT(s.err, Contains("4 units"));
    REQUIRE_THAT(s.err, Contains("[4/4] wrote norm")); // plain progress lines when stderr is not a terminal

    test::RunResult quiet = test::run_rabbit({"-q", "split", test::tinystories_dir(), "-o", out});
    REQUIRE(quiet.exit_code == 0);
    REQUIRE(quiet.err.empty());

    test::RunResult i = test::run_rabbit({"inspect", out});
    REQUIRE(i.exit_code == 0);
    REQUIRE_THAT(i.out, Contains("LlamaForCausalLM") && Contains("2 layers, hidden 128, 8 heads / 4 kv heads") &&
                            Contains("lm_head tied to the embedding") && Contains("f32"));

    test::RunResult j = test::run_rabbit({"inspect", out, "--json", "--vram-budget", "256M", "--ctx", "512"});
    REQUIRE(j.exit_code == 0);
    JsonDocument doc(j.out, "inspect output");
    auto o = doc.root_object();
    REQUIRE(json_to_bool(*json_field(o, "split"), "", ""));
    REQUIRE(json_to_array(*json_field(o, "units"), "", "").size() == 4);
    auto plan = json_to_object(*json_field(o, "vram_plan"), "", "");
    REQUIRE(json_to_bool(*json_field(plan, "fits"), "", ""));
    REQUIRE(json_to_uint(*json_field(plan, "streamed_bytes_per_token"), "", "") == 0); // it all fits

    // An unsplit directory is inspected with the sizes a split would give.
    test::RunResult hf = test::run_rabbit({"inspect", test::tinystories_dir(), "--json"});
    REQUIRE(hf.exit_code == 0);
    JsonDocument hdoc(hf.out, "inspect output");
    REQUIRE(!json_to_bool(*json_field(hdoc.root_object(), "split"), "", ""));
    REQUIRE(json_to_uint(*json_field(hdoc.root_object(), "total_file_bytes"), "", "") ==
            json_to_uint(*json_field(o, "total_file_bytes"), "", ""));
}

TEST_CASE("inspect plans a VRAM budget for a 14B-shaped model without its weights", "[cli][plan]") {
    test::TempDir dir;
    // Planning reads headers only: the weights can be holes.
    GenSpec spec = preset_spec("qwen2.5-14b");
    spec.dtype = DType::bf16;
    spec.sparse = true;
    spec.shards = 6;
    generate_model(spec, dir / "m");
    test::RunResult r = test::run_rabbit({"inspect", dir / "m", "--vram-budget", "4G", "--ctx", "4096", "--json"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    JsonDocument doc(r.out, "inspect output");
    auto plan = json_to_object(*json_field(doc.root_object(), "vram_plan"), "", "");
    // bf16 qkv, o, gate_up, down; f32 norms and qkv bias. Every piece is a multiple of 4 KiB.
    const uint64_t layer = 5120ull * (5120 + 2 * 1024) * 2 + 5120ull * 5120 * 2 + 3ull * 5120 * 13824 * 2 +
                           (5120 + (5120 + 2 * 1024) + 5120) * 4;
    REQUIRE(json_to_bool(*json_field(plan, "fits"), "", ""));
    REQUIRE(json_to_uint(*json_field(plan, "kv_cache_bytes"), "", "") == 2ull * 48 * 4096 * 1024 * 2);
    // The plan is the planner's for these units and the runtime overhead inspect found
    // (measured on a GPU, estimated without one); which units that keeps resident for each
    // overhead is the planner test's ("a 14B shape at 4 GiB").
    MemoryPlanInput in;
    in.config = spec.config;
    for (auto u : json_to_array(*json_field(doc.root_object(), "units"), "", "")) {
        auto uo = json_to_object(u, "", "");
        const std::string kind = json_to_string(*json_field(uo, "kind"), "", "");
        in.units.push_back({json_to_string(*json_field(uo, "name"), "", ""),
                            kind == "embed" ? UnitKind::embed : kind == "layer" ? UnitKind::layer
                                                            : kind == "norm" ? UnitKind::final_norm : UnitKind::lm_head,
                            json_to_uint(*json_field(uo, "data_bytes"), "", "")});
    }
    in.budget = 4ull << 30;
    in.ctx = 4096;
    in.overhead = json_to_uint(*json_field(plan, "overhead_bytes"), "", "") - k_device_reserve;
    const MemoryPlan want = plan_memory(in);
    REQUIRE(json_to_uint(*json_field(plan, "device_bytes"), "", "") == want.device_bytes);
    REQUIRE(json_to_uint(*json_field(plan, "resident_layers"), "", "") == want.resident_layers);
    std::vector<std::string> resident, want_resident;
    for (auto u : json_to_array(*json_field(plan, "resident_units"), "", "")) resident.push_back(json_to_string(u, "", ""));
    for (size_t i = 0; i < in.units.size(); ++i)
        if (want.resident[i]) want_resident.push_back(in.units[i].name);
    REQUIRE(resident == want_resident);
    REQUIRE(want.resident_layers >= 3);
    REQUIRE(json_to_bool(*json_field(plan, "chunked"), "", ""));
    REQUIRE(!json_to_bool(*json_field(plan, "kv_on_host"), "", ""));
    uint64_t layer_data = 0;
    for (auto u : json_to_array(*json_field(doc.root_object(), "units"), "", ""))
        if (json_to_string(*json_field(json_to_object(u, "", ""), "name"), "", "") == "layer.1")
            layer_data = json_to_uint(*json_field(json_to_object(u, "", ""), "data_bytes"), "", "");
    REQUIRE(layer_data == layer);
    REQUIRE(json_to_uint(*json_field(plan, "ring_bytes"), "", "") == 2 * (16ull << 20));
    REQUIRE(json_to_uint(*json_field(doc.root_object(), "bytes_per_token"), "", "") > 48 * layer);

    test::RunResult big = test::run_rabbit({"inspect", dir / "m", "--vram-budget", "16G", "--ctx", "4096"});
    REQUIRE(big.exit_code == 0);
    REQUIRE_THAT(big.out, Contains("Qwen2ForCausalLM") && Contains("qkv bias") && Contains("resident"));
    // 1200M: the 768 MiB KV cache still fits on the GPU beside the smallest ring and the
    // runtime's overhead, and every layer streams in row blocks.
    test::RunResult one = test::run_rabbit({"inspect", dir / "m", "--vram-budget", "1200M"});
    REQUIRE(one.exit_code == 0);
    REQUIRE_THAT(one.out, Contains("KV cache 768 MiB") && Contains("in row blocks") && Contains("0 of 48 layers"));
    test::RunResult small = test::run_rabbit({"inspect", dir / "m", "--vram-budget", "100M"});
    REQUIRE(small.exit_code == 0);
    REQUIRE_THAT(small.out, Contains("too small: the minimum is"));
}

TEST_CASE("split memory is bounded by the chunk, not the model", "[cli][memory]") {
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-llama3");
    spec.config.vocab_size = 131072; // a 64 MiB embedding and lm_head in bf16 -> 128 MiB f32 out
    spec.config.hidden_size = 128;
    spec.config.head_dim = 16;
    spec.dtype = DType::bf16;
    generate_model(spec, dir / "m");
    test::RunResult r = test::run_rabbit({"-q", "split", dir / "m", "-o", dir / "out", "--dtype", "f32", "--chunk", "1M"});
    REQUIRE(r.exit_code == 0);
    // Against the same binary doing nothing much (sanitizer builds start bigger).
    test::RunResult idle = test::run_rabbit({"inspect", test::tinystories_dir()});
    INFO("peak RSS " << r.max_rss_kib << " KiB, idle " << idle.max_rss_kib << " KiB");
    REQUIRE(r.max_rss_kib < idle.max_rss_kib + 24 * 1024); // units of 64 MiB, buffers of 1 MiB
}

TEST_CASE("on a terminal, split draws a progress bar on stderr", "[cli]") {
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-qwen2");
    generate_model(spec, dir / "m");
    int master = -1;
    pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const std::string out = dir / "out", model = dir / "m";
        ::execl(test::rabbit_bin().c_str(), "rabbit", "split", model.c_str(), "-o", out.c_str(), (char*)nullptr);
        ::_exit(127);
    }
    std::string screen;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break; // EIO once the child has exited
        screen.append(buf, size_t(n));
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(master);
    INFO(screen);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    REQUIRE_THAT(screen, Contains("\r\033[K[") && Contains("ETA") && Contains("4/4 units"));
    REQUIRE_THAT(screen, !Contains("[1/4] wrote")); // the bar replaces the plain lines
}

TEST_CASE("tokenize prints ids, pieces, special tokens and decodes back", "[cli][tokenizer]") {
    const std::string qwen = test::shared_dir() + "/tokenizers/qwen3";
    test::RunResult r = test::run_rabbit({"tokenize", "-m", qwen}, {}, "Hello, my dog is cute\n\nsecond line\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.out == "[9707, 11, 847, 5562, 374, 18838]\n[]\n[5569, 1555]\n");

    test::RunResult p = test::run_rabbit({"tokenize", "-m", qwen, "--pieces"}, {}, "Hello, my dog\n");
    REQUIRE(p.out == "[\"Hello\", \",\", \"\u0120my\", \"\u0120dog\"]\n");

    // The golden prompt of tinystories-656k, BOS added by its post-processor.
    test::RunResult s = test::run_rabbit({"tokenize", "-m", test::tinystories_dir(), "--special"}, {},
                                         "Once upon a time, there was a dog named\n");
    REQUIRE(s.out == "[1, 80, 147, 201, 282, 215, 286, 401, 236, 192]\n");

    // --jsonl: texts that hold newlines.
    test::RunResult j = test::run_rabbit({"tokenize", "-m", qwen, "--jsonl"}, {}, "\"a\\nb\"\n\"<|im_end|>\"\n");
    REQUIRE(j.out == "[64, 198, 65]\n[151645]\n");

    // --decode: the way back, special tokens dropped unless --special.
    test::RunResult d = test::run_rabbit({"tokenize", "-m", qwen, "--decode"}, {}, "[64, 198, 65]\n[151645, 9707]\n");
    REQUIRE(d.out == "\"a\\nb\"\n\"Hello\"\n");
    test::RunResult ds = test::run_rabbit({"tokenize", "-m", qwen, "--decode", "--special"}, {}, "[151645, 9707]\n");
    REQUIRE(ds.out == "\"<|im_end|>Hello\"\n");
}

TEST_CASE("tokenize --chat wraps lines in the model's chat format", "[cli][tokenizer][chat]") {
    const std::string qwen = test::shared_dir() + "/tokenizers/qwen3";
    test::RunResult r = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--system", "You are a poet."}, {},
                                         "Write a haiku about rabbits.\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // Equal to the Qwen3 template rendered by jinja2 (tests/data/tokenizer/qwen3.chat.jsonl).
    REQUIRE(r.out == "[151644, 8948, 198, 2610, 525, 264, 39260, 13, 151645, 198, 151644, 872, 198, 7985, 264, 6386, "
                     "38242, 911, 69144, 13, 151645, 198, 151644, 77091, 198]\n");
    REQUIRE_THAT(r.err, Contains("chat format: ChatML (Qwen)"));

    test::RunResult none = test::run_rabbit({"-q", "tokenize", "-m", test::tinystories_dir(), "--chat"}, {}, "hi\n");
    REQUIRE(none.exit_code == int(ExitCode::unsupported));
    REQUIRE_THAT(none.err, Contains("has no chat template"));
    test::RunResult sys = test::run_rabbit({"tokenize", "-m", qwen, "--system", "x"}, {}, "hi\n");
    REQUIRE(sys.exit_code == int(ExitCode::usage));
}

TEST_CASE("tokenize without a tokenizer, or with bad input lines, fails clearly", "[cli][tokenizer]") {
    test::TempDir dir;
    test::RunResult r = test::run_rabbit({"tokenize", "-m", dir.path()}, {}, "hi\n");
    REQUIRE(r.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(r.err, Contains(dir / "tokenizer.json") && Contains("no tokenizer.model either"));
    test::RunResult j = test::run_rabbit({"tokenize", "-m", test::tinystories_dir(), "--jsonl"}, {}, "not json\n");
    REQUIRE(j.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(j.err, Contains("stdin line 1: is not valid JSON"));
    // Invalid UTF-8 is read as U+FFFD, with a warning.
    test::RunResult u = test::run_rabbit({"tokenize", "-m", test::shared_dir() + "/tokenizers/qwen3"}, {}, "a\xff" "b\n");
    REQUIRE(u.exit_code == 0);
    REQUIRE(u.out == "[64, 5691, 65]\n");
    REQUIRE_THAT(u.err, Contains("not valid UTF-8"));
}
