// SPDX-License-Identifier: Apache-2.0
// rabbit bench: its measurements (file reads, page cache, peak memory), the figures it
// derives (overlap, streaming bound), the engines' stream counters it reads, and the command
// itself on tinystories-656k, CPU rows only, as CI runs it.
#include "common/thread_pool.h"
#include "bench/measure.h"
#include "common/timing.h"
#include "common/error.h"
#include "common/json_read.h"
#include "backend/cpu/cpu_engine.h"
#include "format/split_model.h"
#include "engine_helpers.h"
#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>

using namespace rabbit;
using Catch::Contains;

TEST_CASE("median of runs", "[bench]") {
    REQUIRE(median({}) == 0);
    REQUIRE(median({3}) == 3);
    REQUIRE(median({5, 1, 3}) == 3);
    REQUIRE(median({4, 1, 3, 2}) == 2.5);
}

TEST_CASE("overlap efficiency: 1 when a token takes its busiest stage, 0 when the sum", "[bench]") {
    TokenSplit t;
    t.disk = 0.010;
    t.host_copy = 0.010; // loader 20 ms
    t.h2d = 0.030;       // link 30 ms
    t.wall = 0.040;
    t.wait = 0.0;        // compute 40 ms: the busiest
    REQUIRE(*overlap_efficiency(t) == Approx(1.0));
    t.wall = 0.090; // 20 + 30 + 40: nothing overlapped
    t.wait = 0.050;
    REQUIRE(*overlap_efficiency(t) == Approx(0.0));
    t.wall = 0.065; // halfway: 25 of the 50 ms that could hide did
    t.wait = 0.025;
    REQUIRE(*overlap_efficiency(t) == Approx(0.5));
    // Worse than serial (host overheads) clamps to 0.
    t.wall = 0.200;
    t.wait = 0.150;
    REQUIRE(*overlap_efficiency(t) == Approx(0.0));
    // Nothing streamed: nothing to overlap.
    TokenSplit resident;
    resident.wall = 0.010;
    REQUIRE_FALSE(overlap_efficiency(resident));
}

TEST_CASE("the streaming bound is the slower of the disk and the link", "[bench]") {
    REQUIRE(*streaming_bound(1e9, 2e9, 1e9, 25e9) == Approx(0.5));     // the disk
    REQUIRE(*streaming_bound(1e9, 100e9, 1e9, 25e9) == Approx(0.04));  // the link
    REQUIRE(*streaming_bound(0, 2e9, 1e9, 25e9) == Approx(0.04));      // from pinned memory: the link only
    REQUIRE(*streaming_bound(1e9, 2e9, 0, 0) == Approx(0.5));          // the CPU: no link
    REQUIRE_FALSE(streaming_bound(0, 2e9, 0, 25e9));                   // nothing streams
    REQUIRE_FALSE(streaming_bound(1e9, 0, 0, 0));                      // no rate measured
}

TEST_CASE("file reads: the bytes asked for, across files, and then in the page cache", "[bench]") {
    test::TempDir dir;
    std::string a(3 << 20, 'a'), b(2 << 20, 'b');
    test::write_file(dir / "a", a);
    test::write_file(dir / "b", b);
    const std::vector<std::string> files = {dir / "a", dir / "b"};
    ThreadPool pool(3);
    const ReadBandwidth all = measure_file_read(files, 1ull << 30, true, &pool);
    REQUIRE(all.bytes == a.size() + b.size());
    REQUIRE(all.seconds > 0);
    REQUIRE(all.cached_before >= 0);
    REQUIRE(all.cached_before <= 1);
    const ReadBandwidth part = measure_file_read(files, 4 << 20, false, nullptr);
    REQUIRE(part.bytes == 4u << 20); // all of a, half of b
    // Just read: the page cache holds them (a tmpfs always does).
    REQUIRE(page_cache_fraction(files) == Approx(1.0));
    REQUIRE(all.bytes_per_second() > 0);
    REQUIRE_THROWS_WITH(measure_file_read({dir / "missing"}, 1 << 20, false, &pool), Contains("missing"));
}

TEST_CASE("peak memory: reset, then it follows what is touched", "[bench]") {
    REQUIRE(current_rss() > 0);
    REQUIRE(peak_rss() >= current_rss());
    if (!reset_peak_rss()) {
        WARN("SKIPPED: /proc/self/clear_refs is not writable here; the peak cannot be reset");
        return;
    }
    const uint64_t before = current_rss();
    REQUIRE(peak_rss() < before + (16u << 20));
    const size_t bytes = 64u << 20;
    std::unique_ptr<char[]> big(new char[bytes]);
    volatile char* touch = big.get(); // volatile: the compiler may not drop the allocation
    for (size_t i = 0; i < bytes; i += 4096) touch[i] = 1;
    REQUIRE(peak_rss() >= before + bytes - (4u << 20));
    const MachineInfo m = machine_info();
    REQUIRE(m.cpus >= 1);
    REQUIRE(m.memory > 0);
    REQUIRE_FALSE(m.cpu.empty());
}

TEST_CASE("the CPU engine counts the weights it reads from the files", "[bench][engine]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    SplitModel model = SplitModel::open(split);
    // What a token reads when nothing stays in memory: every matrix of every layer, and the
    // output projection (the norms are read in place).
    uint64_t matrices = 0;
    for (const auto& u : model.manifest().units)
        for (const auto& t : u.layout.tensors)
            if (t.shape.size() == 2 && (u.kind == UnitKind::layer || u.kind == UnitKind::lm_head ||
                                        (u.kind == UnitKind::embed && model.config().tie_word_embeddings)))
                matrices += t.nbytes;
    REQUIRE(matrices > 0);
    const std::vector<int32_t> prompt = {1, 80, 147, 201};
    for (uint64_t budget : {uint64_t(0), uint64_t(1) << 30}) {
        EngineOptions o;
        o.threads = 2;
        o.ram_budget = budget;
        o.stream_block = 64 << 10; // several blocks per matrix
        CpuEngine e(model, o);
        std::vector<float> logits;
        e.forward(prompt.data(), prompt.size(), 1, logits);
        const StreamStats a = e.stream_stats();
        const int32_t next = 5;
        e.forward(&next, 1, 1, logits);
        const StreamStats d = e.stream_stats() - a;
        INFO("RAM budget " << budget);
        REQUIRE(d.link_bytes == 0);
        REQUIRE(d.h2d_s == 0);
        if (budget == 0) {
            REQUIRE(d.file_bytes == matrices);
            REQUIRE(d.disk_s > 0);
            REQUIRE(d.wait_s == d.disk_s); // no loader: the compute waits for every read
        } else {
            REQUIRE(d.file_bytes == 0);
            REQUIRE(d.disk_s == 0);
        }
    }
}

TEST_CASE("rabbit bench prints the CPU rows as a table and as JSON", "[bench][cli]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::string json = dir / "bench.json";
    test::RunResult r = test::run_rabbit({"bench", "-m", split, "--backend", "cpu", "--prompt-len", "24", "--gen", "6",
                                          "--repeat", "3", "--ram-budget", "0,default", "--read-bytes", "4M", "--json",
                                          json});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.out, Contains("shard read (4 threads, as the loader reads): cold"));
    REQUIRE_THAT(r.out, Contains("| backend | slots | VRAM | RAM |"));
    REQUIRE_THAT(r.out, Contains("| cpu | - | - | 0 | 512 |"));
    REQUIRE_THAT(r.out, Contains("| cpu | - | - | default | 512 |"));

    JsonDocument doc(test::read_file(json), json);
    auto root = doc.root_object();
    REQUIRE(json_field(root, "bandwidth"));
    auto settings = (*json_field(root, "settings")).get_object().value();
    REQUIRE(int64_t((*json_field(settings, "prompt_len")).get_int64()) == 24);
    auto configs = (*json_field(root, "configs")).get_array().value();
    REQUIRE(configs.size() == 2);
    size_t k = 0;
    for (auto c : configs) {
        auto o = c.get_object().value();
        REQUIRE(std::string_view((*json_field(o, "backend")).get_string().value()) == "cpu");
        REQUIRE(bool((*json_field(o, "ok")).get_bool()));
        REQUIRE(double((*json_field(o, "decode_tok_s")).get_double()) > 0);
        REQUIRE(double((*json_field(o, "prefill_tok_s")).get_double()) > 0);
        // The row is one run's, the run of median decode time, among the three.
        auto runs = (*json_field(o, "runs")).get_array().value();
        REQUIRE(runs.size() == 3);
        std::vector<double> decode;
        for (auto run : runs) decode.push_back((*json_field(run.get_object().value(), "decode_tok_s")).get_double());
        std::sort(decode.begin(), decode.end());
        REQUIRE(double((*json_field(o, "decode_tok_s")).get_double()) == decode[1]);
        REQUIRE(json_field(o, "ring_slots")->is_null());
        const double file_bytes = (*json_field(o, "file_bytes_per_token")).get_double();
        auto token = (*json_field(o, "token_s")).get_object().value();
        const double wall = (*json_field(token, "wall")).get_double();
        const double compute = (*json_field(token, "compute")).get_double();
        const double wait = (*json_field(token, "wait")).get_double();
        REQUIRE(wall > 0);
        REQUIRE(compute > 0);
        REQUIRE(1.0 / wall == Approx(double((*json_field(o, "decode_tok_s")).get_double())));
        REQUIRE(uint64_t((*json_field(o, "peak_host_bytes")).get_uint64()) > 0);
        const std::string_view from = (*json_field(o, "weights_from")).get_string().value();
        if (k == 0) { // RAM budget 0: every token reads the weights, from the page cache after the warm-up
            REQUIRE(file_bytes > 0);
            REQUIRE(from == "page cache"); // 2.5 MB just read: the page cache holds them
            REQUIRE(wait > 0);             // the CPU engine reads them itself
            REQUIRE(wait < wall);
        } else { // all in memory: nothing streams
            REQUIRE(file_bytes == 0);
            REQUIRE(from == "none");
            REQUIRE(wait == 0);
        }
        // The drive is not read and there is no link: nothing bounds the CPU's streaming.
        REQUIRE(json_field(o, "bound_s")->is_null());
        ++k;
    }
}

TEST_CASE("rabbit bench refuses what it cannot measure, before the work", "[bench][cli][bad-input]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    auto bad = [&](std::vector<std::string> extra, int code, const std::string& says) {
        std::vector<std::string> args = {"bench", "-m", split, "--read-bytes", "0"};
        args.insert(args.end(), extra.begin(), extra.end());
        test::RunResult r = test::run_rabbit(args);
        INFO(r.err);
        REQUIRE(r.exit_code == code);
        REQUIRE_THAT(r.err, Contains(says));
        REQUIRE(r.out.empty());
    };
    bad({"--backend", "tpu"}, int(ExitCode::usage), "--backend tpu");
    bad({"--vram", "most"}, int(ExitCode::usage), "--vram most");
    bad({"--vram", "none,0"}, int(ExitCode::usage), "--vram 0: a budget of 0 holds nothing");
    bad({"--ram-budget", "lots"}, int(ExitCode::usage), "--ram-budget lots");
    bad({"--ring-slots", "2,x"}, int(ExitCode::usage), "--ring-slots");
    bad({"--ring-slots", "99"}, int(ExitCode::usage), "--ring-slots 99");
    bad({}, int(ExitCode::usage), "544 positions, more than the model's 512"); // 512 + 32 by default
    bad({"--json", dir / "no/such/dir/b.json"}, int(ExitCode::output), "no/such/dir");
    if (!test::gpu_available()) bad({"--backend", "cuda"}, int(ExitCode::usage), "--backend cuda: ");
    // --fill-ctx: what it does not go with, and a context too small for it and the steps.
    bad({"--fill-ctx", "510", "--gen", "8"}, int(ExitCode::usage), "--fill-ctx and --gen: 518 positions, more than the model's 512");
    bad({"--fill-ctx", "100", "--prompt-len", "50"}, int(ExitCode::usage), "drop --prompt-len");
    bad({"--fill-ctx", "100", "--parallel", "2"}, int(ExitCode::usage), "drop --parallel and --draft");
    bad({"--fill-ctx", "100", "--draft", "ngram"}, int(ExitCode::usage), "drop --parallel and --draft");
    bad({"--fill-ctx", "100", "--gen", "8", "--ctx", "64"}, int(ExitCode::usage), "108 positions, more than --ctx 64");
    if (test::gpu_available())
        bad({"--fill-ctx", "100", "--gen", "8", "--backend", "cuda"}, int(ExitCode::usage), "the CPU engine only");
    test::RunResult m = test::run_rabbit({"bench", "-m", dir / "nothing"});
    REQUIRE(m.exit_code == int(ExitCode::bad_input));
    REQUIRE_THAT(m.err, Contains("nothing"));
}

TEST_CASE("rabbit bench --fill-ctx decodes after a synthetic cache, says so, and refuses a cache memory cannot hold", "[bench][kv][cli]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const std::string json = dir / "bench.json";
    test::RunResult r = test::run_rabbit({"bench", "-m", split, "--backend", "cpu", "--fill-ctx", "300", "--gen", "4",
                                          "--kv-dtype", "bf16", "--repeat", "1", "--warmup", "0", "--read-bytes", "0",
                                          "--json", json});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.out, Contains("the KV cache filled with 300 synthetic positions, not prefilled"));
    REQUIRE_THAT(r.out, Contains("the decoded text is meaningless"));
    REQUIRE_THAT(r.out, Contains("KV cache: bf16, "));
    REQUIRE_THAT(r.out, Contains("| filled 300 |"));
    JsonDocument doc(test::read_file(json), json);
    auto root = doc.root_object();
    auto settings = (*json_field(root, "settings")).get_object().value();
    REQUIRE(int64_t((*json_field(settings, "fill_ctx")).get_int64()) == 300);
    REQUIRE(std::string_view((*json_field(settings, "kv_dtype")).get_string().value()) == "bf16");
    auto configs = (*json_field(root, "configs")).get_array().value();
    for (auto c : configs) {
        auto o = c.get_object().value();
        REQUIRE(bool((*json_field(o, "ok")).get_bool()));
        REQUIRE(int64_t((*json_field(o, "context_filled")).get_int64()) == 300);
        REQUIRE(int64_t((*json_field(o, "ctx")).get_int64()) == 305); // the fill, the steps and one more
        REQUIRE(json_field(o, "prefill_tok_s")->is_null());            // no prefill ran
        REQUIRE(double((*json_field(o, "fill_s")).get_double()) > 0);
        REQUIRE(double((*json_field(o, "decode_tok_s")).get_double()) > 0);
    }
    // A model whose context is long enough for a cache that no memory here holds.
    test::TempDir big;
    const std::string long_model =
        test::generate_and_split({"-p", "tiny-qwen2", "--seed", "1", "--dtype", "f32", "--max-pos", "2000000000"}, big);
    test::RunResult m = test::run_rabbit({"bench", "-m", long_model, "--backend", "cpu", "--read-bytes", "0", "--fill-ctx",
                                          "1000000000", "--gen", "2"});
    REQUIRE(m.exit_code == int(ExitCode::resources));
    REQUIRE_THAT(m.err, Contains("--fill-ctx 1000000000: a KV cache of ") && Contains("more than half the memory available"));
    REQUIRE(m.out.empty());
}
