// SPDX-License-Identifier: Apache-2.0
// The CPU engine end to end: the tinystories-656k goldens (an independent float64 forward
// pass), logits and greedy tokens against Hugging Face transformers for every architecture,
// and generation's stop conditions.
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/system.h"
#include "backend/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "format/split_model.h"
#include "engine_helpers.h"
#include "helpers.h"
#include "split/splitter.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <cmath>

using namespace rabbit;
using Catch::Contains;

namespace {

// From ../shared/models/tinystories-656k/GOLDEN.md.
const std::vector<int32_t> k_golden_bos = {
    1, 147, 201, 282, 215, 286, 598, 1662, 356, 499, 826, 1363, 1145, 1652, 615, 242, 1482, 951, 628, 499, 826, 872, 921,
    318, 385, 628, 499, 826, 617, 242, 198, 1047, 425, 1939, 122, 1924, 1171, 94, 303, 328, 229, 521, 776, 115, 1139, 312,
    447, 1456, 319, 115, 133, 114, 100, 167, 753, 1665, 361, 303, 1900, 319, 467, 730, 717, 532, 856, 645, 1188, 108, 319,
    135, 1629, 319, 53, 382, 122, 1765, 1398, 313, 1150, 1095, 1250};
const std::vector<int32_t> k_golden_prompt = {
    1, 80, 147, 201, 282, 215, 286, 401, 236, 192, 1094, 463, 622, 100, 258, 461, 715, 299, 93, 401, 1444, 1808, 872, 1094,
    614, 1198, 265, 876, 108, 307, 831, 344, 93, 401, 115, 720, 152, 401, 115, 720, 152, 401, 204, 1221, 298, 720, 94, 229,
    604, 1343, 401, 204, 1803, 94, 604, 1658, 1881, 1056, 401, 115, 720, 144, 494, 100, 494, 1379, 401, 115, 1381, 446, 401};

size_t agreeing_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
    size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

} // namespace

using test::greedy;
using test::split_into;

TEST_CASE("tinystories-656k reproduces both goldens with f32 weights", "[engine][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    SplitModel model = SplitModel::open(split_into(test::tinystories_dir(), dir / "f32"));
    REQUIRE(model.manifest().dtype == "f32");
    for (size_t threads : {size_t(1), size_t(0)}) {
        INFO("threads " << threads);
        EngineOptions opt;
        opt.threads = threads;
        CpuEngine engine(model, opt);
        REQUIRE(greedy(engine, {1}, k_golden_bos.size()) == k_golden_bos);
        REQUIRE(greedy(engine, std::vector<int32_t>(k_golden_prompt.begin(), k_golden_prompt.begin() + 10),
                       k_golden_prompt.size()) == k_golden_prompt);
    }
}

TEST_CASE("tinystories-656k with bf16 weights: how many golden tokens agree", "[engine][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    SplitModel model = SplitModel::open(split_into(test::tinystories_dir(), dir / "bf16", DTypeChoice::bf16));
    CpuEngine engine(model, {});
    const size_t a = agreeing_prefix(greedy(engine, {1}, k_golden_bos.size()), k_golden_bos);
    const size_t b = agreeing_prefix(
        greedy(engine, std::vector<int32_t>(k_golden_prompt.begin(), k_golden_prompt.begin() + 10), k_golden_prompt.size()),
        k_golden_prompt);
    WARN("bf16 weights: " << a << " of " << k_golden_bos.size() << " ids agree from BOS, " << b << " of "
                          << k_golden_prompt.size() << " from the prompt");
    REQUIRE(a > 10); // the first tokens are far from any tie
    REQUIRE(b > 12);
}

TEST_CASE("streaming weights in row blocks, or a prompt in parts, changes no logit", "[engine][memory]") {
    // Resident (read once, used whole) against streamed in blocks of a few rows (each matmul
    // split, with the output written at a stride, and the rows dropped after use), for a
    // prompt and decode steps, with f32 and bf16 weights and an untied lm_head.
    for (const char* dtype : {"f32", "bf16"}) {
        INFO(dtype);
        test::TempDir dir;
        REQUIRE(test::run_program(test::genmodel_bin(), {"-p", "tiny-qwen3", "--seed", "3", "--dtype", dtype, "-o", dir / "hf"})
                    .exit_code == 0);
        SplitModel model = SplitModel::open(split_into(dir / "hf", dir / "split"));
        auto run = [&](uint64_t ram_budget, size_t block, size_t batch) {
            EngineOptions o;
            o.ram_budget = ram_budget;
            o.stream_block = block;
            o.batch = batch;
            CpuEngine engine(model, o);
            return test::prompt_and_steps_logits(engine, {1, 50, 7, 300, 21, 9, 64});
        };
        const std::vector<float> resident = run(1ull << 30, k_stream_block, 512), streamed = run(0, 1000, 512);
        REQUIRE(resident.size() == streamed.size());
        for (size_t i = 0; i < resident.size(); ++i)
            REQUIRE(std::fabs(resident[i] - streamed[i]) <= 1e-5f * (1 + std::fabs(resident[i])));
        // A prompt in parts of 3 and 2 tokens: the same logits for every position.
        for (size_t batch : {size_t(3), size_t(2)}) {
            const std::vector<float> parts = run(1ull << 30, k_stream_block, batch);
            REQUIRE(parts.size() == resident.size());
            for (size_t i = 0; i < resident.size(); ++i)
                REQUIRE(std::fabs(resident[i] - parts[i]) <= 1e-5f * (1 + std::fabs(resident[i])));
        }
    }
}

TEST_CASE("the logit comparison fails on NaN, infinities and sizes that differ", "[engine][hf]") {
    const std::vector<float> want = {1.0f, -2.0f, 3.0f};
    REQUIRE(test::worst_error(want, want, 1e-4, 1e-4) == 0.0);
    REQUIRE(test::worst_error({1.0f, -2.0f, 3.00001f}, want, 1e-4, 1e-4) < 1.0);
    for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
        INFO(bad);
        REQUIRE(test::worst_error({1.0f, bad, 3.0f}, want, 1e-4, 1e-4) > 1.0);
        REQUIRE(test::worst_error(want, {1.0f, bad, 3.0f}, 1e-4, 1e-4) > 1.0);
        REQUIRE(test::worst_error(std::vector<float>(3, bad), std::vector<float>(3, bad), 1e-4, 1e-4) > 1.0);
    }
    REQUIRE(test::worst_error({1.0f, -2.0f}, want, 1e-4, 1e-4) > 1.0);
    REQUIRE(test::rms({3.0f, -4.0f}) == Approx(std::sqrt(12.5)));
}

TEST_CASE("logits and greedy tokens match Hugging Face transformers for every architecture", "[engine][hf]") {
    // tests/data/goldens/*.json, written by scripts/hf_reference.py --goldens: transformers on
    // the CPU in float32, eager attention, on models rabbit-genmodel makes from a preset and seed.
    // f32 arithmetic in a different order than torch: the tolerance of the logits, documented
    // in docs/ARCHITECTURE.md.
    const double atol = 1e-4, rtol = 1e-4;
    for (const std::string& name : test::hf_golden_names()) {
        INFO(name);
        const test::HfGolden g = test::read_hf_golden(name);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::make_golden_model(g, "f32", dir.path()));
        CpuEngine engine(model, {});
        std::vector<float> logits;
        engine.forward(g.prompt.data(), g.prompt.size(), g.prompt.size(), logits);
        REQUIRE(g.prompt_logits.size() == g.prompt.size() * model.config().vocab_size);
        const double worst = test::worst_error(logits, g.prompt_logits, atol, rtol);
        WARN(name << ": largest logit difference " << worst << " of the tolerance (atol " << atol << ", rtol " << rtol << ")");
        CHECK(worst <= 1.0);
        REQUIRE(g.greedy.size() == 32);
        std::vector<int32_t> seq = greedy(engine, g.prompt, g.prompt.size() + g.greedy.size());
        REQUIRE(std::vector<int32_t>(seq.begin() + long(g.prompt.size()), seq.end()) == g.greedy);
    }
}

TEST_CASE("generation stops at eos, at a stop string, at the token limit", "[engine][generate]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    SplitModel model = SplitModel::open(split_into(test::tinystories_dir(), dir / "ts"));
    auto tok = load_tokenizer(model.dir());
    CpuEngine engine(model, {});
    const std::vector<int32_t> prompt = {1};
    auto run = [&](GenerateOptions g) {
        engine.reset();
        std::string text;
        GenerateResult r = generate(engine, *tok, prompt, g, [&](const std::string& t) { text += t; });
        return std::make_pair(r, text);
    };
    GenerateOptions g;
    g.max_tokens = 80;
    auto [full, full_text] = run(g);
    REQUIRE(full.stop_reason == "max tokens");
    REQUIRE(full.tokens == std::vector<int32_t>(k_golden_bos.begin() + 1, k_golden_bos.end()));
    REQUIRE(full_text == tok->decode(full.tokens, true));

    // "Lily" is generated as tokens 598 ("L"?) ... stop before its first appearance.
    GenerateOptions s = g;
    s.stop_strings = {"Lily"};
    auto [stopped, text] = run(s);
    REQUIRE(stopped.stop_reason == "stop string");
    REQUIRE(text == full_text.substr(0, full_text.find("Lily")));

    GenerateOptions e = g;
    e.stop_ids = {499}; // a token of the golden: generation stops right after producing it
    auto [eos, eos_text] = run(e);
    REQUIRE(eos.stop_reason == "eos");
    REQUIRE(eos.tokens.back() == 499);
    REQUIRE(eos.tokens.size() < full.tokens.size());

    // Of two stop strings, the one that appears first ends the text, whichever was given first.
    const size_t lily = full_text.find("Lily"), later = full_text.find(' ', lily + 6);
    REQUIRE(later != std::string::npos);
    const std::string after = full_text.substr(later, 3);
    for (auto stops : {std::vector<std::string>{after, "Lily"}, std::vector<std::string>{"Lily", after}}) {
        GenerateOptions two = g;
        two.stop_strings = stops;
        REQUIRE(run(two).second == full_text.substr(0, lily));
    }

    GenerateOptions n = g;
    n.max_tokens = 5;
    REQUIRE(run(n).first.tokens.size() == 5);
    n.max_tokens = 0;
    auto [none, none_text] = run(n);
    REQUIRE(none.tokens.empty());
    REQUIRE(none_text.empty());

    // The context bounds generation, and a prompt longer than it is an error.
    EngineOptions small;
    small.ctx = 8;
    CpuEngine tiny(model, small);
    std::string t;
    GenerateResult r = generate(tiny, *tok, prompt, g, [&](const std::string& x) { t += x; });
    REQUIRE(r.stop_reason == "context full");
    REQUIRE(r.tokens.size() == 8);
    tiny.reset();
    REQUIRE_THROWS_WITH(generate(tiny, *tok, std::vector<int32_t>(9, 1), g, [](const std::string&) {}),
                        Contains("the prompt is 9 tokens, longer than the context (8)"));
}

TEST_CASE("rabbit run reproduces the tinystories-656k goldens on the command line", "[engine][cli][golden]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = split_into(test::tinystories_dir(), dir / "ts");
    auto tok = load_tokenizer(split);
    // From BOS alone: an empty raw prompt, 80 steps.
    test::RunResult a = test::run_rabbit({"run", "-m", split, "--raw", "-p", "", "-n", "80"});
    INFO(a.err);
    REQUIRE(a.exit_code == 0);
    REQUIRE(a.out == tok->decode(std::vector<int32_t>(k_golden_bos.begin() + 1, k_golden_bos.end()), true) + "\n");
    REQUIRE_THAT(a.err, Contains("1 prompt tokens") && Contains("80 generated"));
    // From the prompt, BOS added by the tokenizer, read from stdin this time: 10 prompt ids and
    // 61 generated (GOLDEN.md lists 71 ids).
    const std::string n = std::to_string(k_golden_prompt.size() - 10);
    test::RunResult b = test::run_rabbit({"-q", "run", "-m", split, "-n", n}, {}, "Once upon a time, there was a dog named");
    REQUIRE(b.exit_code == 0);
    REQUIRE(b.out == tok->decode(std::vector<int32_t>(k_golden_prompt.begin() + 10, k_golden_prompt.end()), true) + "\n");
    REQUIRE(b.err.empty());
    // An unsplit directory is split into the cache on first use.
    test::RunResult c = test::run_rabbit({"run", "-m", test::tinystories_dir(), "-p", "Once upon a time, there was a dog named",
                                          "-n", n},
                                         {{"RABBIT_CACHE", dir / "cache"}});
    INFO(c.err);
    REQUIRE(c.exit_code == 0);
    REQUIRE(c.out == b.out);
    REQUIRE_THAT(c.err, Contains("is not split yet: splitting it into " + dir / "cache/splits/tinystories-656k-"));
    test::RunResult again = test::run_rabbit({"run", "-m", test::tinystories_dir(), "-p", "Once", "-n", "3"},
                                             {{"RABBIT_CACHE", dir / "cache"}});
    REQUIRE(again.exit_code == 0);
    REQUIRE(again.err.find("is not split yet") == std::string::npos); // the second time it is
}

TEST_CASE("rabbit run refuses what it cannot run, clearly", "[engine][cli][bad-input]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = split_into(test::tinystories_dir(), dir / "ts");
    // A prompt longer than the context.
    test::RunResult r = test::run_rabbit({"run", "-m", split, "-p", "Once upon a time, there was a dog named", "--ctx", "5"});
    REQUIRE(r.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(r.err, Contains("the prompt is 10 tokens, longer than the context (5)"));
    // A context longer than the model's.
    test::RunResult c = test::run_rabbit({"run", "-m", split, "-p", "x", "--ctx", "100000"});
    REQUIRE(c.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(c.err, Contains("--ctx 100000 is more than the model's 512 positions"));
    // Sampling settings out of range.
    for (auto bad : {std::vector<std::string>{"--repeat-penalty", "0"}, {"--top-p", "1.5"}, {"--temp", "-1"}})
        REQUIRE(test::run_rabbit({"run", "-m", split, "-p", "x", bad[0], bad[1]}).exit_code == int(ExitCode::usage));
    // --dump-logits where nothing can be written: refused before generating anything.
    test::RunResult d = test::run_rabbit({"run", "-m", split, "-p", "x", "--dump-logits", dir / "no/such/dir/l.npy"});
    REQUIRE(d.exit_code == int(ExitCode::output));
    REQUIRE(d.out.empty());
    REQUIRE_THAT(d.err, Contains("l.npy: its directory"));
    // --system without a chat template.
    REQUIRE(test::run_rabbit({"run", "-m", split, "-p", "x", "--system", "s"}).exit_code == int(ExitCode::usage));
    // A unit whose content changed but not its size: found with --verify, naming the unit.
    std::string layer = test::read_file(dir / "ts/layer.001.rbt");
    layer[layer.size() / 2] ^= 0x10;
    test::write_file(dir / "ts/layer.001.rbt", layer);
    test::RunResult v = test::run_rabbit({"run", "-m", split, "-p", "x", "-n", "2", "--verify"});
    REQUIRE(v.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(v.err, Contains("layer.001.rbt: checksum") && Contains("(unit layer.1)"));
    // A unit whose size changed: always found.
    test::write_file(dir / "ts/layer.001.rbt", layer.substr(0, layer.size() - 4096));
    test::RunResult s = test::run_rabbit({"run", "-m", split, "-p", "x", "-n", "2"});
    REQUIRE(s.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(s.err, Contains("layer.001.rbt: is") && Contains("the manifest says") && Contains("(unit layer.1)"));
    // A model directory without a tokenizer.
    test::TempDir bare;
    REQUIRE(test::run_program(test::genmodel_bin(), {"-p", "tiny-qwen2", "-o", bare / "m"}).exit_code == 0);
    split_into(bare / "m", bare / "s");
    test::RunResult t = test::run_rabbit({"run", "-m", bare / "s", "-p", "x"});
    REQUIRE(t.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(t.err, Contains("tokenizer.json: no such file"));
}

// AddressSanitizer's shadow memory dwarfs what the memory test measures.
#if defined(__SANITIZE_ADDRESS__)
#define RABBIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RABBIT_ASAN 1
#endif
#endif

TEST_CASE("resident memory follows the RAM budget, not the model", "[engine][memory]") {
    if (!test::have_shared()) return;
#ifdef RABBIT_ASAN
    WARN("SKIPPED: resident memory is not measurable under AddressSanitizer");
    return;
#endif
    test::TempDir dir;
    // 8 layers of about 29 MiB in bf16: a 230 MiB model.
    REQUIRE(test::run_program(test::genmodel_bin(), {"-p", "tiny-llama3", "--layers", "8", "--hidden", "1024", "--heads", "8",
                                                    "--kv-heads", "2", "--intermediate", "4096", "--vocab", "4096",
                                                    "--dtype", "bf16", "--tokenizer", test::tinystories_dir(), "-o", dir / "m"})
                .exit_code == 0);
    const std::string split = split_into(dir / "m", dir / "s");
    const uint64_t layer = SplitModel::open(split).manifest().units[1].layout.data_size;
    auto peak = [&](const std::string& budget) {
        std::vector<std::string> args = {"-q", "run", "-m", split, "--raw", "-p", "Once upon a time", "-n", "4", "--temp", "0",
                                         "--device", "cpu"}; // an emulated GPU's memory would be this process's too
        if (!budget.empty()) args.insert(args.end(), {"--ram-budget", budget});
        test::RunResult r = test::run_rabbit(args);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        return uint64_t(r.max_rss_kib) * 1024;
    };
    const uint64_t idle = uint64_t(test::run_rabbit({"inspect", split}).max_rss_kib) * 1024;
    const uint64_t none = peak("0"), some = peak("64M"), all = peak("1G"), dflt = peak("");
    INFO("layer " << layer / 1048576.0 << " MiB; peak RSS: idle " << idle / 1048576.0 << ", budget 0 " << none / 1048576.0
                  << ", 64M " << some / 1048576.0 << ", 1G " << all / 1048576.0 << ", default " << dflt / 1048576.0
                  << " MiB");
    const uint64_t slack = 24ull << 20; // activations, KV cache, allocator
    REQUIRE(none < idle + layer + slack);                      // a weight at a time, dropped once used
    REQUIRE(some < idle + (64ull << 20) + layer + slack);      // plus what the budget keeps
    REQUIRE(all > idle + 6 * layer);                           // a budget that holds the model keeps it
    if (available_memory() > (1ull << 30)) REQUIRE(dflt > idle + 6 * layer); // and so does the default, given room
}
