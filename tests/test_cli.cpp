// SPDX-License-Identifier: Apache-2.0
// The command line: help, version, usage errors, split and inspect end to end.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "engine/memory_plan.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <algorithm>

#include <array>
#include <cmath>
#include <map>
#include <regex>
#include <sstream>

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
    if (!test::have_shared()) return;
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
    if (!test::have_shared()) return;
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
    if (!test::have_shared()) return;
    const std::string qwen = test::shared_dir() + "/tokenizers/qwen3";
    test::RunResult r = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--system", "You are a poet."}, {},
                                         "Write a haiku about rabbits.\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // Equal to the Qwen3 template rendered by jinja2 (tests/data/tokenizer/qwen3.chat.jsonl).
    REQUIRE(r.out == "[151644, 8948, 198, 2610, 525, 264, 39260, 13, 151645, 198, 151644, 872, 198, 7985, 264, 6386, "
                     "38242, 911, 69144, 13, 151645, 198, 151644, 77091, 198]\n");
    REQUIRE_THAT(r.err, Contains("chat template: ") && Contains("tokenizer_config.json"));

    test::RunResult none = test::run_rabbit({"-q", "tokenize", "-m", test::tinystories_dir(), "--chat"}, {}, "hi\n");
    REQUIRE(none.exit_code == int(ExitCode::unsupported));
    REQUIRE_THAT(none.err, Contains("has no chat template"));
    test::RunResult sys = test::run_rabbit({"tokenize", "-m", qwen, "--system", "x"}, {}, "hi\n");
    REQUIRE(sys.exit_code == int(ExitCode::usage));
}

TEST_CASE("tokenize --chat --jsonl renders whole conversations with the model's template", "[cli][tokenizer][chat]") {
    if (!test::have_shared()) return;
    const std::string qwen = test::shared_dir() + "/tokenizers/qwen3";
    const std::string conv1 = R"([{"role": "system", "content": "You are a poet."}, )"
                              R"({"role": "user", "content": "Write a haiku about rabbits."}])";
    const std::string conv2 = R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": )"
                              R"("<think>\nhm\n</think>\n\nHello!"}, {"role": "user", "content": "Again"}])";
    test::RunResult r = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--jsonl"}, {}, conv1 + "\n" + conv2 + "\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    // The first line equals the single-turn --chat --system rendering above; the second is the
    // template's multi-turn text (the past turn's thinking dropped), tokenized.
    const std::string rendered2 = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                                  "<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n";
    test::RunResult plain = test::run_rabbit({"tokenize", "-m", qwen, "--jsonl"}, {}, json_escape(rendered2) + "\n");
    REQUIRE(r.out == "[151644, 8948, 198, 2610, 525, 264, 39260, 13, 151645, 198, 151644, 872, 198, 7985, 264, 6386, "
                     "38242, 911, 69144, 13, 151645, 198, 151644, 77091, 198]\n" + plain.out);

    // --no-think: Qwen3's empty thinking block after the generation prompt.
    test::RunResult nothink = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--no-think", "--pieces"}, {}, "Hi\n");
    REQUIRE(nothink.exit_code == 0);
    REQUIRE_THAT(nothink.out, Contains("\"<think>\", ") && Contains("\"</think>\", "));
    test::RunResult think = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--think", "--pieces"}, {}, "Hi\n");
    REQUIRE(think.exit_code == 0);
    REQUIRE_THAT(think.out, !Contains("<think>"));
    // --chat-format: rabbit's own ChatML writer gives the same ids here.
    test::RunResult fallback = test::run_rabbit({"tokenize", "-m", qwen, "--chat", "--jsonl", "--chat-format", "chatml"}, {}, conv1 + "\n");
    REQUIRE(fallback.exit_code == 0);
    REQUIRE(r.out.substr(0, fallback.out.size()) == fallback.out);

    // A line that is not a conversation is a one-line error naming the line.
    test::RunResult bad = test::run_rabbit({"-q", "tokenize", "-m", qwen, "--chat", "--jsonl"}, {}, "[{\"role\": \"user\"}]\n");
    REQUIRE(bad.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(bad.err, Contains("stdin line 1") && Contains("\"role\" and \"content\""));
}

TEST_CASE("a template the interpreter cannot render names the construct and --chat-format", "[cli][tokenizer][chat]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    test::copy_dir(test::shared_dir() + "/tokenizers/qwen3", dir.path());
    // chat_template.jinja comes before tokenizer_config.json's template, as in transformers.
    test::write_file(dir / "chat_template.jinja", "{% for m in messages %}\n{% include 'turn.jinja' %}\n{% endfor %}");
    test::RunResult r = test::run_rabbit({"-q", "tokenize", "-m", dir.path(), "--chat"}, {}, "Hi\n");
    REQUIRE(r.exit_code == int(ExitCode::unsupported));
    REQUIRE_THAT(r.err, Contains("chat_template.jinja: chat template line 2: unsupported Jinja construct {% include %}") &&
                            Contains("--chat-format chatml|llama3|llama2|mistral"));
    REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    test::RunResult ok = test::run_rabbit({"-q", "tokenize", "-m", dir.path(), "--chat", "--chat-format", "chatml"}, {}, "Hi\n");
    REQUIRE(ok.exit_code == 0);
    REQUIRE(ok.out == "[151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198]\n");
    // A template's raise_exception is the template's own message.
    test::write_file(dir / "chat_template.jinja", "{{ raise_exception('Only user turns, please') }}");
    test::RunResult raised = test::run_rabbit({"-q", "tokenize", "-m", dir.path(), "--chat"}, {}, "Hi\n");
    REQUIRE(raised.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(raised.err, Contains("refuses this conversation: Only user turns, please"));
    test::RunResult usage = test::run_rabbit({"-q", "tokenize", "-m", dir.path(), "--chat-format", "chatml"}, {}, "Hi\n");
    REQUIRE(usage.exit_code == int(ExitCode::usage));
}

TEST_CASE("tokenize without a tokenizer, or with bad input lines, fails clearly", "[cli][tokenizer]") {
    if (!test::have_shared()) return;
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

// Every numeric option: a negative value, or 0 where 0 means nothing, is a usage error whose
// message names the option, the value and what the option takes. CLI11 alone would read -5 for
// an unsigned option as 18446744073709551611. The checks run as the options are read, before
// any file is opened, so the model directory need not exist.
TEST_CASE("numeric options refuse negative values, and 0 where it means nothing", "[cli]") {
    struct Bad {
        std::vector<std::string> command; // the program's arguments before the option
        std::string option, value, says;
    };
    const std::vector<std::string> run = {"run", "-m", "no-model", "-p", "x"}, bench = {"bench", "-m", "no-model"},
                                   inspect = {"inspect", "no-model"};
    const std::string positive = "expected a positive number";
    const std::vector<Bad> table = {
        {run, "--max-tokens", "-1", "expected 0 (the prompt alone) or a positive number"},
        {run, "--temp", "-0.5", "expected a number from 0 (greedy) to 100"},
        {run, "--temp", "101", "expected a number from 0 (greedy) to 100"},
        {run, "--top-k", "-1", "expected 0 (off) or a positive number"},
        {run, "--top-p", "-0.1", "expected a number from 0 (the most likely token only) to 1"},
        {run, "--top-p", "1.5", "expected a number from 0 (the most likely token only) to 1"},
        {run, "--min-p", "-0.1", "expected a number from 0 (off) to 1"},
        {run, "--repeat-penalty", "0", "expected a number above 0 (1: off)"},
        {run, "--repeat-penalty", "-1", "expected a number above 0 (1: off)"},
        {run, "--seed", "-1", "expected 0 or a positive number"},
        {run, "--ctx", "-5", "expected 0 (the model's maximum) or a positive number"},
        {run, "--threads", "-2", "expected 0 (every processor) or a positive number"},
        {run, "--batch", "0", positive + " (1 to 1048576)"},
        {run, "--batch", "-1", positive + " (1 to 1048576)"},
        {run, "--batch", "2000000", "expected 1 to 1048576"},
        {run, "--ram-budget", "-1G", "not a negative one"},
        {run, "--vram-expert-cache", "-1G", "not a negative one"},
        {run, "--vram-budget", "0", "expected a size above 0"},
        {run, "--vram-budget", "-4G", "not a negative one"},
        {run, "--ring-slots", "0", positive + " (1 to 16)"},
        {run, "--ring-slots", "-1", positive + " (1 to 16)"},
        {run, "--ring-slots", "17", "expected 1 to 16"},
        {bench, "--ring-slots", "0", positive + " (1 to 16)"},
        {bench, "--ring-slots", "-2", positive + " (1 to 16)"},
        {bench, "--batch", "-1", positive + " (1 to 1048576)"},
        {bench, "--batch", "0", positive + " (1 to 1048576)"},
        {bench, "--prompt-len", "0", positive + " (1 to 1048576)"},
        {bench, "--prompt-len", "-1", positive + " (1 to 1048576)"},
        {bench, "--gen", "0", positive + " (1 to 1048576)"},
        {bench, "--gen", "-1", positive + " (1 to 1048576)"},
        {bench, "--repeat", "0", positive + " (1 to 1000)"},
        {bench, "--repeat", "-3", positive + " (1 to 1000)"},
        {bench, "--warmup", "-1", "expected 0 (no warm-up) or a positive number"},
        {bench, "--warmup", "101", "expected 0 (no warm-up) to 100"},
        {bench, "--threads", "-1", "expected 0 (every processor) or a positive number"},
        {bench, "--ctx", "-1", "expected 0 (prompt and generated tokens) or a positive number"},
        {bench, "--gpu", "-1", "expected 0 to 255"},
        {bench, "--read-bytes", "-1", "not a negative one"},
        {bench, "--vram", "-1G", "a negative size"},
        {bench, "--vram", "0", "a budget of 0 holds nothing"},
        {bench, "--ram-budget", "-1", "a negative size"},
        {inspect, "--ctx", "-5", "expected 0 (the model's, at most 4096) or a positive number"},
        {inspect, "--ring-slots", "0", positive + " (1 to 16)"},
        {inspect, "--ring-slots", "-1", positive + " (1 to 16)"},
        {inspect, "--vram-budget", "0", "expected a size above 0"},
        {inspect, "--vram-budget", "-1G", "not a negative one"},
    };
    for (const Bad& b : table) {
        std::vector<std::string> args = b.command;
        args.push_back(b.option);
        args.push_back(b.value);
        test::RunResult r = test::run_rabbit(args);
        INFO(b.command[0] << " " << b.option << " " << b.value << ": " << r.err);
        REQUIRE(r.exit_code == int(ExitCode::usage));
        REQUIRE(r.err.rfind("error: ", 0) == 0);
        REQUIRE_THAT(r.err, Contains("error: " + b.option + " " + b.value + ": ") && Contains(b.says));
        REQUIRE_THAT(r.err, !Contains("18446744073709551"));
    }
    // In a list, the item that is wrong.
    test::RunResult list = test::run_rabbit({"bench", "-m", "no-model", "--ring-slots", "2,-1,3"});
    REQUIRE(list.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(list.err, Contains("--ring-slots -1: " + positive));
    // split's --chunk (a size of 4K to 1G): its own checks.
    test::RunResult chunk = test::run_rabbit({"split", "no-model", "-o", "no-out", "--chunk", "-1"});
    REQUIRE(chunk.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(chunk.err, Contains("--chunk -1: expected a size above 0"));
    test::RunResult zero_chunk = test::run_rabbit({"split", "no-model", "-o", "no-out", "--chunk", "0"});
    REQUIRE(zero_chunk.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(zero_chunk.err, Contains("--chunk 0: expected a size above 0"));
    test::RunResult small_chunk = test::run_rabbit({"split", "no-model", "-o", "no-out", "--chunk", "1K"});
    REQUIRE(small_chunk.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(small_chunk.err, Contains("--chunk 1K: expected a size from 4K to 1G"));
}

TEST_CASE("the tools' numeric options refuse negative values, and 0 where it means nothing", "[cli]") {
    test::TempDir dir;
    const std::string positive = "expected a positive number";
    const std::vector<std::array<std::string, 3>> table = {
        {"--layers", "0", positive},         {"--layers", "-1", positive},      {"--hidden", "-64", positive},
        {"--intermediate", "0", positive},   {"--heads", "-1", positive},       {"--kv-heads", "0", positive},
        {"--head-dim", "-8", positive},      {"--vocab", "0", positive},        {"--max-pos", "-1", positive},
        {"--shards", "0", positive},         {"--shards", "-2", positive},      {"--seed", "-1", "expected 0 or a positive number"},
        {"--sliding-window", "-1", "expected 0 (no window) or a positive number"},
        {"--mlp-scale", "0", "expected a number above 0"}, {"--mlp-scale", "-2", "expected a number above 0"},
    };
    for (const auto& [option, value, says] : table) {
        test::RunResult r = test::run_program(test::genmodel_bin(), {"-p", "tiny-qwen2", "-o", dir / "m", option, value});
        INFO(option << " " << value << ": " << r.err);
        REQUIRE(r.exit_code == int(ExitCode::usage));
        REQUIRE_THAT(r.err, Contains("error: " + option + " " + value + ": " + says));
        REQUIRE(!test::exists(dir / "m"));
    }
    // rabbit-tokbench --rounds: 1 to 100 (built beside rabbit, unless this build bundles only rabbit).
    const std::string tokbench = test::rabbit_bin().substr(0, test::rabbit_bin().rfind('/') + 1) + "rabbit-tokbench";
    if (!test::exists(tokbench)) return;
    for (const std::string value : {"0", "-1", "101"}) {
        test::RunResult r = test::run_program(tokbench, {"-m", "no-model", "--text", "no-text", "--rounds", value});
        INFO(value << ": " << r.err);
        REQUIRE(r.exit_code == int(ExitCode::usage));
        REQUIRE_THAT(r.err, Contains("--rounds " + value + ": "));
    }
}

TEST_CASE("0 is accepted where it means something", "[cli][tinystories]") {
    if (!test::have_shared()) return;
    // -n 0: the prompt alone; --ctx 0: the model's maximum; --threads 0: every processor;
    // greedy, no top-k or min-p; seed 0; nothing kept in memory.
    test::RunResult r = test::run_rabbit({"-q", "run", "-m", test::tinystories_dir(), "--raw", "-p", "Once", "-n", "0", "--ctx",
                                          "0", "--threads", "0", "--temp", "0", "--top-k", "0", "--min-p", "0", "--seed", "0",
                                          "--ram-budget", "0", "--device", "cpu"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    test::RunResult i = test::run_rabbit({"inspect", test::tinystories_dir(), "--ctx", "0", "--vram-budget", "1G"});
    INFO(i.err);
    REQUIRE(i.exit_code == 0);
    REQUIRE_THAT(i.out, Contains("context 512"));
}

// README.md's exit-code table, src/common/error.h's ExitCode and `rabbit --help`'s footer list
// the same codes, each with the label of its name and the meaning of its comment.
TEST_CASE("the exit codes of README.md are ExitCode's", "[cli]") {
    struct Code {
        std::string name, comment;
    };
    std::map<int, Code> enumerated;
    {
        std::istringstream in(test::read_file(test::source_dir() + "/src/common/error.h"));
        bool inside = false;
        for (std::string line; std::getline(in, line);) {
            if (line.find("enum class ExitCode") != std::string::npos) inside = true;
            else if (inside && line.find("};") != std::string::npos) break;
            else if (inside) {
                std::smatch m;
                if (std::regex_search(line, m, std::regex(R"(^\s*(\w+) = (\d+),\s*// (.*)$)")))
                    enumerated[std::stoi(m[2])] = {m[1], m[3]};
            }
        }
    }
    REQUIRE(enumerated.size() == 9);
    std::map<int, std::string> documented;
    {
        const std::string readme = test::read_file(test::source_dir() + "/README.md");
        const size_t at = readme.find("## Exit codes");
        REQUIRE(at != std::string::npos);
        std::istringstream in(readme.substr(at));
        for (std::string line; std::getline(in, line);) {
            if (line.rfind("## ", 0) == 0 && line != "## Exit codes") break;
            std::smatch m;
            if (std::regex_match(line, m, std::regex(R"(^\| (\d+) \| (.*) \|$)"))) documented[std::stoi(m[1])] = m[2];
        }
    }
    const std::string footer = test::run_rabbit({"--help"}).out;
    std::vector<int> codes, rows;
    for (const auto& [code, e] : enumerated) codes.push_back(code);
    for (const auto& [code, text] : documented) rows.push_back(code);
    REQUIRE(rows == codes);
    for (const auto& [code, e] : enumerated) {
        std::string label = e.name;
        for (char& c : label)
            if (c == '_') c = ' ';
        if (label == "internal") label = "internal error";
        const std::string& text = documented[code];
        INFO(code << " " << e.name << ": README says '" << text << "', error.h '" << e.comment << "'");
        REQUIRE(text.rfind(label + ": " + e.comment, 0) == 0);
        REQUIRE_THAT(footer, Contains(std::to_string(code) + " " + label + (code == 130 ? "." : ",")));
    }
}

namespace {

struct Perplexity {
    double value = 0;
    size_t tokens = 0, windows = 0;
};

Perplexity perplexity_of(const test::RunResult& r) {
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    JsonDocument doc(r.out, "perplexity --json");
    auto o = doc.root_object();
    return {json_to_double(*json_field(o, "perplexity"), "", ""), json_to_uint(*json_field(o, "tokens"), "", ""),
            json_to_uint(*json_field(o, "windows"), "", "")};
}

// The perplexity from the CPU engine's logits, each window through forward() whole with the
// logits of all its positions: the windows of transformers' perplexity guide (start k * stride,
// up to ctx tokens, scoring what no earlier window scored), written again here so that the
// command's windows, its batching and its log-softmax are checked against another reading.
Perplexity engine_perplexity(const std::string& split, const std::string& text_file, size_t ctx, size_t stride) {
    SplitModel model = SplitModel::open(split);
    const std::vector<int32_t> ids = load_tokenizer(split)->encode(test::read_file(text_file), true);
    EngineOptions opt;
    opt.ctx = ctx;
    CpuEngine engine(model, opt);
    const size_t vocab = model.config().vocab_size;
    double nll = 0;
    Perplexity p;
    size_t scored_until = 1; // tokens [0, scored_until) are scored or context only
    for (size_t begin = 0; scored_until < ids.size(); begin += stride) {
        const size_t end = std::min(ids.size(), begin + ctx);
        if (end <= scored_until) continue;
        engine.reset();
        std::vector<float> logits;
        engine.forward(ids.data() + begin, end - begin, end - begin, logits);
        for (size_t t = std::max(scored_until, begin + 1); t < end; ++t) {
            const float* row = logits.data() + (t - 1 - begin) * vocab;
            double mx = row[0], sum = 0;
            for (size_t i = 0; i < vocab; ++i) mx = std::max(mx, double(row[i]));
            for (size_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - mx);
            nll += std::log(sum) + mx - double(row[ids[t]]);
            ++p.tokens;
        }
        ++p.windows;
        scored_until = end;
    }
    p.value = std::exp(nll / double(p.tokens));
    return p;
}

} // namespace

TEST_CASE("perplexity of tinystories-656k on a text: finite, deterministic, the engine's logits' own",
          "[cli][perplexity][tinystories]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::string text = test::source_dir() + "/tests/data/text/perplexity.txt";
    struct Case {
        size_t ctx, stride, batch;
    };
    // Windows that do not overlap; overlapping ones with a batch that cuts them in odd parts;
    // the model's whole context.
    for (const Case& c : {Case{64, 64, 512}, Case{100, 37, 7}, Case{512, 512, 128}}) {
        INFO("ctx " << c.ctx << ", stride " << c.stride << ", batch " << c.batch);
        const std::vector<std::string> args = {"-q", "perplexity", "-m", split, "-f", text, "--ctx", std::to_string(c.ctx),
                                               "--stride", std::to_string(c.stride), "--batch", std::to_string(c.batch),
                                               "--device", "cpu", "--json"};
        const test::RunResult r = test::run_rabbit(args);
        const Perplexity got = perplexity_of(r);
        REQUIRE(std::isfinite(got.value));
        REQUIRE(got.value > 1.0);
        REQUIRE(test::run_rabbit(args).out == r.out); // deterministic, to the last digit
        const Perplexity want = engine_perplexity(split, text, c.ctx, c.stride);
        REQUIRE(got.tokens == want.tokens);
        REQUIRE(got.windows == want.windows);
        REQUIRE(std::abs(got.value - want.value) <= 1e-6 * want.value);
    }
    // The plain line.
    test::RunResult plain = test::run_rabbit({"-q", "perplexity", "-m", split, "-f", text, "--device", "cpu"});
    INFO(plain.err);
    REQUIRE(plain.exit_code == 0);
    REQUIRE(std::regex_match(plain.out, std::regex(R"(perplexity: \d+\.\d{6} \(\d+ tokens, windows \d+\)\n)")));
}

TEST_CASE("perplexity refuses a missing or empty text and a window under 2 tokens", "[cli][perplexity]") {
    test::TempDir dir;
    const std::string text = dir / "text.txt";
    test::write_file(text, "Some words.");
    auto refused = [&](const std::vector<std::string>& args, ExitCode code, const std::string& says) {
        test::RunResult r = test::run_rabbit(args);
        INFO(r.err);
        REQUIRE(r.exit_code == int(code));
        REQUIRE(r.err.rfind("error: ", 0) == 0);
        REQUIRE(std::count(r.err.begin(), r.err.end(), '\n') <= 2); // the error line (and the usage hint)
        REQUIRE_THAT(r.err, Contains(says));
    };
    refused({"perplexity", "-m", dir / "model", "-f", dir / "missing.txt"}, ExitCode::bad_input, "missing.txt: no such file");
    refused({"perplexity", "-m", dir / "model", "-f", text, "--ctx", "1"}, ExitCode::usage, "--ctx 1: expected at least 2");
    refused({"perplexity", "-m", dir / "model", "-f", text, "--ctx", "8", "--stride", "9"}, ExitCode::usage,
            "--stride 9: expected at most --ctx");
    refused({"perplexity", "-m", dir / "model", "-f", text}, ExitCode::bad_input, "model: no such directory");
    if (!test::have_shared()) return;
    test::write_file(dir / "empty.txt", "");
    refused({"perplexity", "-m", test::tinystories_dir(), "-f", dir / "empty.txt"}, ExitCode::bad_input,
            "empty.txt: holds 1 tokens; perplexity needs at least 2");
}

TEST_CASE("perplexity of SmolLM2's Q4_1 GGUF on English is that of a trained model", "[cli][perplexity][smollm2]") {
    if (!test::have_smollm2()) return;
    test::TempDir dir;
    const std::string text = dir / "text.txt";
    // Two sentences of plain English: a trained 135M model predicts them far better than the
    // uniform 49152 a random one would approach.
    test::write_file(text, "The capital of France is Paris. It is a large city on the river Seine, and many "
                           "people visit it every year to see its museums, its churches and its parks.\n");
    const std::vector<std::string> args = {"-q", "perplexity", "-m", test::smollm2_gguf(), "-f", text, "--ctx", "16",
                                           "--device", "cpu", "--json"};
    const test::RunResult r = test::run_rabbit(args);
    const Perplexity p = perplexity_of(r);
    REQUIRE(std::isfinite(p.value));
    REQUIRE(p.value > 1.0);
    REQUIRE(p.value < 200.0);
    REQUIRE(p.windows >= 2);
    REQUIRE(test::run_rabbit(args).out == r.out);
}
