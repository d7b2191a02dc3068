// SPDX-License-Identifier: Apache-2.0
// What `rabbit bench` measures, and how it reports it: a table on stdout, JSON with --json.
// The measuring itself is cli/cmd_bench.cpp's.
#pragma once

#include "bench/measure.h"
#include "common/error.h"
#include "common/timing.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

class SplitModel;

// One configuration of the matrix.
struct BenchConfig {
    bool cuda = false;
    uint32_t slots = 2;
    std::string vram = "all"; // none, half, all (resident weights in VRAM), or a budget such as 4G
    std::string ram = "default"; // default (3/4 of available memory), or a size (0: nothing kept)
    size_t batch = 512;
    std::string draft = "none"; // speculative decoding: none, ngram, self (the model as its own draft), or a draft model
    std::string draft_dir;      // a draft model's split
};

// One measured run, per decoded token.
struct RunFigures {
    double prefill_tps = 0, decode_tps = 0; // prefill: 0 when the cache was filled instead
    double fill_s = 0;                      // --fill-ctx: the synthetic fill's time
    TokenSplit token;
    double file_bytes = 0, link_bytes = 0;
    std::optional<double> bound, overlap;
    double experts = 0, expert_hits = 0; // MoE: experts run, and of those held by the expert cache
    // With a draft: per target pass of the decode.
    double tokens_per_pass = 0, draft_s = 0, verify_s = 0;
};

struct ConfigResult {
    BenchConfig config;
    std::string error;
    ExitCode code = ExitCode::ok;
    double load_s = 0;
    uint64_t ram_budget = 0;
    uint64_t vram_budget = 0;     // GPU: the budget the engine used
    uint64_t resident_bytes = 0;  // weights kept (CPU: in memory; GPU: in VRAM)
    size_t threads = 0;           // CPU: the engine's threads
    uint64_t ctx = 0;
    uint64_t filled = 0;          // --fill-ctx: positions filled with synthetic keys and values, no prefill
    std::vector<RunFigures> runs; // every measured run
    size_t median = 0;            // the run whose decode time is the median (the lower one of an even count)
    double cached = 0;            // page-cache fraction of the streamed unit files after the warm-up
    std::string from;             // where the streamed weights came from
    uint64_t peak_host = 0, peak_gpu = 0;
    std::string draft_on;        // a draft model: "GPU" (resident in VRAM) or "CPU" (resident in RAM)
    uint64_t draft_vram = 0;     // on the GPU: its share of vram_budget (CudaEngine::resident_share)
    bool ok() const { return error.empty(); }
    const RunFigures& m() const { return runs[median]; }
    double prefill_tps() const {
        std::vector<double> v;
        for (const auto& r : runs) v.push_back(r.prefill_tps);
        return rabbit::median(v);
    }
};

struct Rates {
    std::optional<ReadBandwidth> cold, warm;
    bool cold_valid = false; // the cold read came from the drive (little of it was cached)
    double pinned_bps = 0, pageable_bps = 0; // 0: not measured (no GPU configuration)
    uint64_t link_bytes = 0;
};

struct Settings {
    size_t prompt_len = 512, gen = 32, repeat = 3, warmup = 1, threads = 0;
    uint64_t ctx = 0; // 0: prompt and generated tokens
    // --fill-ctx: decode starts at this position of a KV cache filled with synthetic keys and
    // values (CpuEngine::fill_cache), not after a prompt; 0: after a prompt of prompt_len.
    size_t fill_ctx = 0;
    std::string kv_dtype; // --kv-dtype; empty: the engine's default
    // The position the decode steps start at: the fill's, else the prompt's end.
    size_t start() const { return fill_ctx ? fill_ctx : prompt_len; }
    int gpu = 0;
    std::string act_quant = "f32"; // CPU rows: --act-quant
    size_t draft_budget = 16, draft_max = 0; // with a draft: trees of draft_budget, or chains of draft_max if set
    std::string draft_device = "auto";        // a draft model: --draft-device (auto, cpu, cuda)
};

struct Describe {
    std::string gpu;      // name, compute capability, memory; empty without a GPU configuration
    std::string versions; // CUDA driver and runtime
};

// 123 -> "123", 12.3 -> "12.3", 1.234 -> "1.23": tokens per second.
std::string rate(double per_second);
// "cuda, 2 slots, VRAM half, RAM default, batch 512"
std::string config_label(const BenchConfig& b);

// The lines above the table: the model, the machine, the rates measured, the runs.
void print_header(const SplitModel& model, const Settings& s, const Rates& rates, const Describe& about);
void print_table(const std::vector<ConfigResult>& results);
// To path, or stdout for "-".
void write_json(const std::string& path, const SplitModel& model, const Settings& s, const Rates& rates,
                const std::vector<ConfigResult>& results, const Describe& d);

} // namespace rabbit
