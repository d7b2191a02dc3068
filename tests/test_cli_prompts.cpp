// SPDX-License-Identifier: Apache-2.0
// rabbit run --prompts FILE: one JSON object per prompt, each with the text `rabbit run -p`
// gives that prompt alone (greedy, and sampled with its seed), on both engines; bad lines
// named, the others run, exit code 3.
#include "common/error.h"
#include "common/json_read.h"
#include "engine_helpers.h"
#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <map>

using namespace rabbit;
using Catch::Contains;

namespace {

struct Line {
    uint64_t index = 0;
    std::string prompt, text, stop, error;
    uint64_t tokens = 0;
};

std::vector<Line> read_lines(const std::string& out) {
    std::vector<Line> lines;
    for (size_t at = 0; at < out.size();) {
        const size_t end = out.find('\n', at);
        REQUIRE(end != std::string::npos);
        JsonDocument doc(out.substr(at, end - at), "stdout");
        auto o = doc.root_object();
        Line l;
        l.index = json_to_uint(*json_field(o, "index"), "", "index");
        l.prompt = json_to_string(*json_field(o, "prompt"), "", "prompt");
        if (auto e = json_field(o, "error")) {
            l.error = json_to_string(*e, "", "error");
        } else {
            l.text = json_to_string(*json_field(o, "text"), "", "text");
            l.stop = json_to_string(*json_field(o, "stop"), "", "stop");
            l.tokens = json_to_uint(*json_field(o, "tokens"), "", "tokens");
        }
        lines.push_back(l);
        at = end + 1;
    }
    return lines;
}

// `rabbit run -p` on prompt alone: its text (the line it ends with dropped).
std::string alone(const std::vector<std::string>& base, const std::string& prompt, const std::vector<std::string>& extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), {"-p", prompt});
    args.insert(args.end(), extra.begin(), extra.end());
    const test::RunResult r = test::run_rabbit(args, {{"RABBIT_EMU_QUIET", "1"}});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(!r.out.empty());
    return r.out.substr(0, r.out.size() - 1);
}

// Runs FILE's prompts (parallel 3) and each good one alone, greedy and sampled; the texts must agree.
void check_against_alone(const std::vector<std::string>& base, const std::string& file,
                         const std::vector<std::string>& prompts) {
    for (const std::vector<std::string>& sampling :
         {std::vector<std::string>{"--temp", "0"}, {"--temp", "0.8", "--top-k", "40", "--seed", "11"}}) {
        INFO(sampling[1]);
        std::vector<std::string> args = base;
        args.insert(args.end(), {"--prompts", file, "--parallel", "3", "--ordered"});
        args.insert(args.end(), sampling.begin(), sampling.end());
        const test::RunResult r = test::run_rabbit(args, {{"RABBIT_EMU_QUIET", "1"}});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const std::vector<Line> lines = read_lines(r.out);
        REQUIRE(lines.size() == prompts.size());
        for (size_t i = 0; i < prompts.size(); ++i) {
            INFO("prompt " << i);
            REQUIRE(lines[i].index == i); // --ordered
            REQUIRE(lines[i].prompt == prompts[i]);
            CHECK(lines[i].text == alone(base, prompts[i], sampling));
            CHECK((lines[i].stop == "eos" || lines[i].stop == "max_tokens"));
        }
    }
}

} // namespace

TEST_CASE("run --prompts: each prompt's text is its text alone, on both engines", "[cli][batch][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::vector<std::string> prompts = {"Once upon a time", "Lily",
                                              "The big dog ran to the park and saw a little bird in a tree. The bird "
                                              "was sad because it could not fly. The dog wanted to help, so he",
                                              "Tom and his mom", "One day"};
    std::string file;
    for (const std::string& p : prompts) file += p + "\n";
    test::write_file(dir / "prompts.txt", file);
    check_against_alone({"run", "-m", split, "-n", "24", "--device", "cpu"}, dir / "prompts.txt", prompts);
    if (!test::gpu_available()) return;
    check_against_alone({"run", "-m", split, "-n", "24", "--device", "cuda"}, dir / "prompts.txt", prompts);
}

TEST_CASE("run --prompts on SmolLM2: each prompt's text is its text alone, on both engines", "[cli][batch]") {
    if (!test::have_smollm2()) return;
    test::TempDir dir;
    const std::vector<std::string> prompts = {"What is the capital of France?", "Write a haiku about the sea.",
                                              "Explain in two sentences why the sky is blue, and then say what colour "
                                              "sunsets are and why."};
    const std::map<std::string, std::string> env = {{"RABBIT_CACHE", dir / "cache"}, {"RABBIT_EMU_QUIET", "1"}};
    for (const char* device : {"cpu", "cuda"}) {
        INFO(device);
        const bool cpu = std::string(device) == "cpu";
        if (!cpu && !test::gpu_available()) return;
        // Fewer prompts and tokens on the emulated device, where every kernel runs on the CPU.
        const size_t count = cpu ? prompts.size() : 2;
        std::string file;
        for (size_t i = 0; i < count; ++i) file += "{\"prompt\": \"" + prompts[i] + "\"}\n";
        test::write_file(dir / "prompts.jsonl", file);
        const std::vector<std::string> base = {"run", "-m", test::smollm2_gguf(), "-n", cpu ? "16" : "4",
                                               "--device", device, "--temp", "0"};
        std::vector<std::string> args = base;
        args.insert(args.end(), {"--prompts", dir / "prompts.jsonl", "--parallel", "3"});
        const test::RunResult r = test::run_rabbit(args, env);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        const std::vector<Line> lines = read_lines(r.out);
        REQUIRE(lines.size() == count);
        for (const Line& l : lines) {
            INFO("prompt " << l.index);
            std::vector<std::string> one = base;
            one.insert(one.end(), {"-p", prompts[l.index]});
            const test::RunResult a = test::run_rabbit(one, env);
            REQUIRE(a.exit_code == 0);
            CHECK(l.text + "\n" == a.out);
        }
    }
}

TEST_CASE("run --prompts: a bad line is an error naming it, and the others still run", "[cli][batch][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    test::write_file(dir / "p.jsonl", "Once upon a time\n"
                                      "{\"prompt\": \"Lily had a\", \"max_tokens\": 5}\n"
                                      "\n"
                                      "{\"prompt\": 3}\n"
                                      "{\"prompt\": \"Tom\", \"seed\": 5, \"colour\": 1}\n"
                                      "{not json\n"
                                      "{\"prompt\": \"One day\", \"max_tokens\": 7, \"seed\": 2}\n");
    const test::RunResult r = test::run_rabbit({"run", "-m", split, "--prompts", dir / "p.jsonl", "--parallel", "2", "-n",
                                                "12", "--device", "cpu"});
    INFO(r.err);
    REQUIRE(r.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(r.err, Contains(dir / "p.jsonl:4") && Contains(dir / "p.jsonl:5") && Contains(dir / "p.jsonl:6") &&
                            Contains("3 of 6 prompts"));
    std::vector<Line> lines = read_lines(r.out);
    REQUIRE(lines.size() == 6);
    std::map<uint64_t, Line> by_index;
    for (const Line& l : lines) by_index[l.index] = l;
    REQUIRE(by_index.size() == 6);
    CHECK_THAT(by_index[2].error, Contains("p.jsonl:4") && Contains("prompt"));
    CHECK_THAT(by_index[3].error, Contains("p.jsonl:5") && Contains("colour"));
    CHECK_THAT(by_index[4].error, Contains("p.jsonl:6"));
    CHECK(by_index[1].tokens <= 5);
    CHECK(by_index[5].tokens <= 7);
    CHECK(by_index[0].tokens <= 12);
    for (uint64_t i : {0, 1, 5}) CHECK(!by_index[i].text.empty());
    CHECK((by_index[1].stop == "max_tokens" || by_index[1].stop == "eos"));
}

TEST_CASE("run: --parallel and --ordered go with --prompts", "[cli][batch]") {
    const test::RunResult r = test::run_rabbit({"run", "-m", "/nonexistent", "-p", "x", "--parallel", "4"});
    REQUIRE(r.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(r.err, Contains("--parallel and --ordered go with --prompts"));
}
