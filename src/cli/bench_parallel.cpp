// SPDX-License-Identifier: Apache-2.0
#include "cli/bench_parallel.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "common/json_writer.h"
#include "common/timing.h"
#include "engine/sampler.h"
#include "format/split_model.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

namespace rabbit {

namespace {

struct ParallelRun {
    double prefill_s = 0, decode_s = 0; // all N prompts' shared passes; the --gen decode passes
    StreamStats decode;                 // over the decode passes: the disk's share of them
};

struct ParallelResult {
    BenchConfig config;
    size_t asked = 0, sequences = 0; // --parallel's count, and what the memory allowed
    std::vector<ParallelRun> runs;
    std::string error;
    ExitCode code = ExitCode::ok;
    ParallelRun median() const {
        std::vector<ParallelRun> r = runs;
        std::sort(r.begin(), r.end(), [](const ParallelRun& a, const ParallelRun& b) { return a.decode_s < b.decode_s; });
        return r[(r.size() - 1) / 2];
    }
};

// One run: every sequence's prompt in shared passes, then --gen passes of one token each.
ParallelRun run_once(Engine& e, const std::vector<std::vector<int32_t>>& prompts, size_t gen) {
    const size_t n = prompts.size(), vocab = e.config().vocab_size;
    std::vector<SlotTokens> seqs;
    for (size_t s = 0; s < n; ++s) {
        e.reset_slot(s);
        seqs.push_back({s, prompts[s].data(), prompts[s].size(), 1});
    }
    std::vector<float> logits;
    std::vector<int32_t> next(n);
    auto pick = [&] {
        for (size_t s = 0; s < n; ++s) {
            const auto row = logits.begin() + long(s * vocab);
            next[s] = int32_t(std::max_element(row, row + long(vocab)) - row);
        }
    };
    ParallelRun r;
    auto t0 = Clock::now();
    e.forward_slots(seqs, logits);
    pick();
    r.prefill_s = seconds_since(t0);
    const StreamStats before = e.stream_stats();
    t0 = Clock::now();
    for (size_t g = 0; g < gen; ++g) {
        throw_if_interrupted();
        for (size_t s = 0; s < n; ++s) seqs[s] = {s, &next[s], 1, 1};
        e.forward_slots(seqs, logits);
        pick();
    }
    r.decode_s = seconds_since(t0);
    r.decode = e.stream_stats() - before;
    return r;
}

void measure(const SplitModel& model, const Settings& s, ParallelResult& p) {
    ConfigResult r;
    std::unique_ptr<Engine> e = bench_engine(model, p.config, s, r, p.asked);
    p.sequences = std::min(p.asked, e->max_slots());
    e->set_slots(p.sequences);
    std::vector<std::vector<int32_t>> prompts;
    for (size_t k = 0; k < p.sequences; ++k) prompts.push_back(bench_prompt(model.config(), s.prompt_len, k));
    for (size_t w = 0; w < s.warmup; ++w) run_once(*e, prompts, s.gen);
    for (size_t k = 0; k < s.repeat; ++k) p.runs.push_back(run_once(*e, prompts, s.gen));
}

void print(const std::vector<ParallelResult>& results, const Settings& s) {
    std::printf("\n%-44s %5s %12s %12s %10s %12s %8s %14s\n", "configuration", "seqs", "prefill t/s", "decode t/s",
                "ms/pass", "t/s per seq", "speedup", "disk ms/pass");
    double base = 0;
    for (const ParallelResult& p : results) {
        if (!p.error.empty()) {
            std::printf("%-44s %5zu  failed: %s\n", config_label(p.config).c_str(), p.asked, p.error.c_str());
            continue;
        }
        const ParallelRun m = p.median();
        const double decode = double(p.sequences * s.gen) / std::max(m.decode_s, 1e-12);
        const double prefill = double(p.sequences * s.prompt_len) / std::max(m.prefill_s, 1e-12);
        if (base == 0 || p.sequences == results.front().sequences) base = decode;
        std::printf("%-44s %5zu %12s %12s %10.1f %12s %7.2fx %14.1f\n", config_label(p.config).c_str(), p.sequences,
                    rate(prefill).c_str(), rate(decode).c_str(), 1e3 * m.decode_s / double(s.gen),
                    rate(decode / double(p.sequences)).c_str(), decode / base, 1e3 * m.decode.disk_s / double(s.gen));
    }
}

void write_results(const std::string& path, const SplitModel& model, const Settings& s,
                   const std::vector<ParallelResult>& results) {
    JsonWriter w;
    w.begin_object().member("model", model.dir()).member("prompt_len", uint64_t(s.prompt_len)).member("gen", uint64_t(s.gen));
    w.key("results").begin_array();
    for (const ParallelResult& p : results) {
        w.begin_object().member("config", config_label(p.config)).member("parallel", uint64_t(p.asked));
        if (!p.error.empty()) {
            w.member("error", p.error).end_object();
            continue;
        }
        const ParallelRun m = p.median();
        w.member("sequences", uint64_t(p.sequences))
            .member("prefill_s", m.prefill_s)
            .member("decode_s", m.decode_s)
            .member("decode_tokens_per_s", double(p.sequences * s.gen) / std::max(m.decode_s, 1e-12))
            .member("seconds_per_pass", m.decode_s / double(s.gen))
            .member("disk_seconds_per_pass", m.decode.disk_s / double(s.gen))
            .member("file_bytes_per_pass", double(m.decode.file_bytes) / double(s.gen))
            .end_object();
    }
    w.end_array().end_object();
    if (path == "-") std::puts(w.str().c_str());
    else write_file_atomic(path, w.str() + "\n");
}

} // namespace

std::vector<int32_t> bench_prompt(const ModelConfig& c, size_t n, uint64_t seed) {
    std::vector<int32_t> ids(n);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
    for (auto& id : ids) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        id = int32_t(x % c.vocab_size);
    }
    return ids;
}

int run_parallel_bench(const SplitModel& model, const std::vector<BenchConfig>& configs, const Settings& s,
                       const std::vector<size_t>& counts, const std::string& json) {
    std::vector<ParallelResult> results;
    int rc = 0;
    for (const BenchConfig& b : configs)
        for (size_t n : counts) {
            ParallelResult p;
            p.config = b;
            p.asked = n;
            spdlog::info("{}, {} sequences", config_label(b), n);
            try {
                measure(model, s, p);
                const ParallelRun m = p.median();
                spdlog::info("  {} sequences: {} tok/s decoding, {:.1f} ms a pass", p.sequences,
                             rate(double(p.sequences * s.gen) / std::max(m.decode_s, 1e-12)), 1e3 * m.decode_s / double(s.gen));
            } catch (const Error& e) {
                if (e.code() == ExitCode::interrupted || e.code() == ExitCode::internal) throw;
                p.error = e.what();
                p.code = e.code();
                rc = int(e.code());
                spdlog::warn("{}: {}", config_label(b), e.what());
            }
            results.push_back(std::move(p));
        }
    if (json != "-") print(results, s);
    if (!json.empty()) write_results(json, model, s, results);
    return rc;
}

} // namespace rabbit
