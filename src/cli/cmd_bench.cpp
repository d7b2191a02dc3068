// SPDX-License-Identifier: Apache-2.0
// rabbit bench -m DIR: throughput against the hardware bound, configurations side by side.
// First the machine's own rates (the shard files read cold and warm, the host-to-device link
// from pinned and pageable memory); then, for every configuration asked for (backend, ring
// slots, VRAM, RAM budget, batch), one engine: a warm-up run, then --repeat runs of a prompt
// of --prompt-len tokens and --gen greedy decode steps, with the medians reported: tokens per
// second, each decoded token's time split by stage, the streaming bound and the share of it
// reached, the overlap, and peak memory. A table on stdout, and JSON with --json.
#include "bench/measure.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "common/json_writer.h"
#include "common/system.h"
#include "common/timing.h"
#include "common/units.h"
#include "common/thread_pool.h"
#include "backend/cpu/cpu_engine.h"
#include "engine/memory_plan.h"
#include "format/split_model.h"

#include <spdlog/spdlog.h>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/device.h"
#include "backend/cuda/link.h"
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <sstream>

#ifndef RABBIT_GIT_REV
#define RABBIT_GIT_REV "unknown"
#endif

namespace rabbit {

namespace {



// One configuration of the matrix.
struct BenchConfig {
    bool cuda = false;
    uint32_t slots = 2;
    std::string vram = "all"; // none, half, all (resident weights in VRAM), or a budget such as 4G
    std::string ram = "default"; // default (3/4 of available memory), or a size (0: nothing kept)
    size_t batch = 512;
};

struct Sample {
    double prefill_s = 0, decode_s = 0;
    StreamStats decode; // over the decode steps
};

// One measured run, per decoded token.
struct RunFigures {
    double prefill_tps = 0, decode_tps = 0;
    TokenSplit token;
    double file_bytes = 0, link_bytes = 0;
    std::optional<double> bound, overlap;
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
    std::vector<RunFigures> runs; // every measured run
    size_t median = 0;            // the run whose decode time is the median (the lower one of an even count)
    double cached = 0;            // page-cache fraction of the streamed unit files after the warm-up
    std::string from;             // where the streamed weights came from
    uint64_t peak_host = 0, peak_gpu = 0;
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

// Comma-separated lists, as the options take them.
std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

template <typename T>
std::vector<T> number_list(const std::string& text, const char* option, T lo, T hi) {
    std::vector<T> out;
    for (const auto& item : split_list(text)) {
        if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 9)
            throw Error(ExitCode::usage, std::string(option) + " " + text + ": expected numbers separated by commas");
        const auto v = T(std::stoull(item));
        if (v < lo || v > hi)
            throw Error(ExitCode::usage, std::string(option) + " " + item + ": expected " + std::to_string(lo) + " to " +
                                             std::to_string(hi));
        out.push_back(v);
    }
    if (out.empty()) throw Error(ExitCode::usage, std::string(option) + ": expected at least one value");
    return out;
}

std::string ms(double seconds) {
    char buf[32];
    const double v = seconds * 1e3;
    std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : v >= 1 ? "%.2f" : "%.3f", v);
    return buf;
}

std::string rate(double per_second) {
    char buf[32];
    std::snprintf(buf, sizeof buf, per_second >= 100 ? "%.0f" : per_second >= 10 ? "%.1f" : "%.2f", per_second);
    return buf;
}

std::string percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f%%", fraction * 100);
    return buf;
}

std::string gbps(double bps) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GB/s", bps / 1e9);
    return buf;
}

std::string iso_date() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// A prompt of random ids, the same for every configuration: the speed of a pass does not
// depend on which ids they are, and random ids make no special case of any.
std::vector<int32_t> bench_prompt(const ModelConfig& c, size_t n) {
    std::vector<int32_t> ids(n);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (auto& id : ids) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        id = int32_t(x % c.vocab_size);
    }
    return ids;
}

Sample run_once(Engine& engine, const std::vector<int32_t>& prompt, size_t gen) {
    SamplingParams greedy;
    Sampler sampler(greedy);
    std::vector<int32_t> history = prompt;
    Sample s;
    engine.reset();
    const auto t0 = Clock::now();
    int32_t next = engine.step(prompt.data(), prompt.size(), sampler, history, nullptr);
    s.prefill_s = seconds_since(t0);
    const StreamStats before = engine.stream_stats();
    const auto t1 = Clock::now();
    for (size_t g = 0; g < gen; ++g) {
        throw_if_interrupted();
        history.push_back(next);
        next = engine.step(&history.back(), 1, sampler, history, nullptr);
    }
    s.decode_s = seconds_since(t1);
    s.decode = engine.stream_stats() - before;
    return s;
}

struct Settings {
    size_t prompt_len = 512, gen = 32, repeat = 3, warmup = 1, threads = 0;
    uint64_t ctx = 0;
    int gpu = 0;
};

uint64_t ram_budget_of(const std::string& ram) {
    if (ram == "default") return available_memory() / 4 * 3;
    const auto v = parse_size(ram);
    if (!v) throw Error(ExitCode::usage, "--ram-budget " + ram + ": expected default or a size such as 8G");
    return *v;
}

// --backend cuda needs GPU --gpu, usable by this binary.
void check_gpu(int gpu) {
#ifdef RABBIT_HAVE_CUDA
    const CudaDevice& d = probe_cuda_device(gpu);
    if (d.usable) return;
    throw Error(ExitCode::usage, "--backend cuda: no usable GPU " + std::to_string(gpu) + " (" +
                                     (d.name.empty() ? d.problem : d.name + ": " + d.problem) + ")");
#else
    (void)gpu;
    throw Error(ExitCode::usage, "--backend cuda: this rabbit was built without the CUDA backend");
#endif
}

std::unique_ptr<Engine> make_engine(const SplitModel& model, const BenchConfig& b, const Settings& s, ConfigResult& r) {
    r.ram_budget = ram_budget_of(b.ram);
    const uint64_t ctx = s.ctx ? s.ctx : std::min<uint64_t>(s.prompt_len + s.gen + 1, model.config().max_position_embeddings);
    r.ctx = ctx;
    if (!b.cuda) {
        EngineOptions eo;
        eo.threads = s.threads;
        eo.ram_budget = r.ram_budget;
        eo.ctx = ctx;
        eo.batch = b.batch;
        auto e = std::make_unique<CpuEngine>(model, eo);
        r.resident_bytes = e->units().resident_bytes();
        r.threads = e->threads();
        return e;
    }
#ifdef RABBIT_HAVE_CUDA
    CudaEngineOptions co;
    co.device = s.gpu;
    co.ram_budget = r.ram_budget;
    co.ctx = ctx;
    co.ring_slots = b.slots;
    co.batch = b.batch;
    if (b.vram == "none") {
        co.max_resident = 0;
    } else if (b.vram == "half") {
        co.max_resident = weight_bytes_per_token(plan_units(model.manifest().units), model.roles().tied) / 2;
    } else if (b.vram != "all") {
        co.vram_budget = *parse_size(b.vram);
    }
    auto e = std::make_unique<CudaEngine>(model, co);
    r.vram_budget = e->stats().budget;
    r.resident_bytes = e->plan().resident_bytes;
    return e;
#else
    throw Error(ExitCode::usage, "--backend cuda: this rabbit was built without the CUDA backend");
#endif
}

// Where the streamed weights of a run came from.
std::string weights_from(const RunFigures& f, double cached) {
    if (f.file_bytes == 0) return f.link_bytes > 0 ? "pinned RAM" : "none";
    if (cached >= 0.99) return "page cache";
    return "drive, " + std::to_string(int(std::lround(cached * 100))) + "% cached";
}

void measure_config(const SplitModel& model, const BenchConfig& b, const Settings& s, const Rates& rates,
                    const std::vector<std::string>& files, ConfigResult& r) {
    const bool own_peak = reset_peak_rss();
    const auto t0 = Clock::now();
    std::unique_ptr<Engine> engine = make_engine(model, b, s, r);
    r.load_s = seconds_since(t0);
    const std::vector<int32_t> prompt = bench_prompt(model.config(), s.prompt_len);
    for (size_t w = 0; w < s.warmup; ++w) run_once(*engine, prompt, s.gen);
    r.cached = page_cache_fraction(files);
    for (size_t k = 0; k < s.repeat; ++k) {
        const Sample x = run_once(*engine, prompt, s.gen);
        const double g = double(s.gen);
        RunFigures f;
        f.prefill_tps = double(s.prompt_len) / std::max(x.prefill_s, 1e-12);
        f.decode_tps = g / std::max(x.decode_s, 1e-12);
        f.token = {x.decode_s / g, x.decode.disk_s / g, x.decode.host_copy_s / g, x.decode.h2d_s / g, x.decode.wait_s / g};
        f.file_bytes = double(x.decode.file_bytes) / g;
        f.link_bytes = double(x.decode.link_bytes) / g;
        // The drive bounds the share of the streamed bytes the page cache did not hold, at the
        // cold rate; what the page cache held costs mapping, not a transfer. The link bounds
        // everything copied to the device.
        const double from_drive = f.file_bytes * (1.0 - r.cached);
        f.bound = streaming_bound(from_drive, rates.cold_valid ? rates.cold->bytes_per_second() : 0, f.link_bytes,
                                  rates.pinned_bps);
        // The CPU engine has no loader: it reads the weights itself, so nothing overlaps its
        // reads but the kernel's read-ahead, which no clock here sees.
        if (b.cuda) f.overlap = overlap_efficiency(f.token);
        r.runs.push_back(f);
    }
    // One run's figures, all of them, so that they add up: the run of median decode time.
    std::vector<size_t> order(r.runs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return r.runs[x].token.wall < r.runs[y].token.wall; });
    r.median = order[(order.size() - 1) / 2];
    r.from = weights_from(r.m(), r.cached);
    r.peak_host = peak_rss();
    if (!own_peak) spdlog::debug("the peak memory is the process's (the kernel did not let it be reset)");
#ifdef RABBIT_HAVE_CUDA
    if (b.cuda) {
        const CudaEngineStats st = static_cast<CudaEngine&>(*engine).stats();
        r.peak_gpu = std::max(st.peak_device_bytes, st.device_used_growth);
    }
#endif
}

std::string config_label(const BenchConfig& b) {
    if (!b.cuda) return "cpu, RAM " + b.ram + ", batch " + std::to_string(b.batch);
    return "cuda, " + std::to_string(b.slots) + " slots, VRAM " + b.vram + ", RAM " + b.ram + ", batch " +
           std::to_string(b.batch);
}

void print_table(const std::vector<ConfigResult>& results) {
    std::printf("| backend | slots | VRAM | RAM | batch | load s | prefill tok/s | decode tok/s | ms/token | weights from | "
                "disk | copy | h2d | compute | wait | overlap | bound ms | of bound | GPU peak | host peak |\n");
    std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : results) {
        const BenchConfig& b = r.config;
        const std::string dash = "-";
        std::printf("| %s | %s | %s | %s | %zu ", b.cuda ? "cuda" : "cpu", b.cuda ? std::to_string(b.slots).c_str() : "-",
                    b.cuda ? b.vram.c_str() : "-", b.ram.c_str(), b.batch);
        if (!r.ok()) {
            std::printf("| failed: %s |\n", r.error.c_str());
            continue;
        }
        const RunFigures& f = r.m();
        const TokenSplit& t = f.token;
        const bool streams = f.file_bytes > 0 || f.link_bytes > 0;
        std::printf("| %.2f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.load_s,
                    rate(r.prefill_tps()).c_str(), rate(f.decode_tps).c_str(), ms(t.wall).c_str(), r.from.c_str(),
                    f.file_bytes > 0 ? ms(t.disk).c_str() : dash.c_str(),
                    b.cuda && f.file_bytes > 0 ? ms(t.host_copy).c_str() : dash.c_str(),
                    b.cuda && f.link_bytes > 0 ? ms(t.h2d).c_str() : dash.c_str(), ms(t.compute()).c_str(),
                    streams ? ms(t.wait).c_str() : dash.c_str(), f.overlap ? percent(*f.overlap).c_str() : dash.c_str(),
                    f.bound ? ms(*f.bound).c_str() : dash.c_str(),
                    f.bound ? percent(*f.bound / std::max(t.wall, 1e-12)).c_str() : dash.c_str(),
                    b.cuda ? format_bytes(r.peak_gpu).c_str() : dash.c_str(), format_bytes(r.peak_host).c_str());
    }
}

void token_json(JsonWriter& j, const RunFigures& f) {
    j.begin_object();
    j.member("wall", f.token.wall).member("disk", f.token.disk).member("host_copy", f.token.host_copy);
    j.member("h2d", f.token.h2d).member("compute", f.token.compute()).member("wait", f.token.wait);
    j.end_object();
}

template <typename T>
void optional_member(JsonWriter& j, const char* key, const std::optional<T>& v) {
    j.key(key);
    v ? j.value(*v) : j.null();
}

struct Describe {
    std::string gpu;      // name, compute capability, memory; empty without a GPU configuration
    std::string versions; // CUDA driver and runtime
};

void write_json(const std::string& path, const SplitModel& model, const Settings& s, const Rates& rates,
                const std::vector<ConfigResult>& results, const Describe& d) {
    const ModelConfig& c = model.config();
    const MachineInfo m = machine_info();
    uint64_t weights = 0;
    for (const auto& u : model.manifest().units) weights += u.layout.data_size;
    JsonWriter j;
    j.begin_object();
    j.member("rabbit", std::string(RABBIT_VERSION)).member("git", std::string(RABBIT_GIT_REV));
    j.member("date", iso_date());
    j.key("machine").begin_object();
    j.member("cpu", m.cpu).member("cpus", uint64_t(m.cpus)).member("memory_bytes", m.memory).member("kernel", m.kernel);
    j.key("gpu");
    d.gpu.empty() ? j.null() : j.value(d.gpu);
    j.key("cuda");
    d.versions.empty() ? j.null() : j.value(d.versions);
    j.end_object();
    j.key("model").begin_object();
    j.member("dir", model.dir()).member("arch", c.architecture).member("layers", uint64_t(c.num_layers));
    j.member("dtype", model.manifest().dtype).member("weight_bytes", weights);
    j.end_object();
    j.key("settings").begin_object();
    j.member("prompt_len", uint64_t(s.prompt_len)).member("gen", uint64_t(s.gen)).member("repeat", uint64_t(s.repeat));
    j.member("warmup", uint64_t(s.warmup));
    j.end_object();
    j.key("bandwidth").begin_object();
    auto read = [&](const char* name, const std::optional<ReadBandwidth>& r) {
        j.key(name);
        if (!r) {
            j.null();
            return;
        }
        j.begin_object();
        j.member("bytes", r->bytes).member("seconds", r->seconds).member("bytes_per_second", r->bytes_per_second());
        j.member("cached_before", r->cached_before);
        j.end_object();
    };
    read("read_cold", rates.cold);
    j.member("read_cold_from_drive", rates.cold_valid);
    read("read_warm", rates.warm);
    j.key("h2d_pinned_bytes_per_second");
    rates.pinned_bps > 0 ? j.value(rates.pinned_bps) : j.null();
    j.key("h2d_pageable_bytes_per_second");
    rates.pageable_bps > 0 ? j.value(rates.pageable_bps) : j.null();
    j.end_object();
    j.key("configs").begin_array();
    for (const auto& r : results) {
        const BenchConfig& b = r.config;
        j.begin_object();
        j.member("backend", std::string(b.cuda ? "cuda" : "cpu"));
        j.key("ring_slots");
        b.cuda ? j.value(uint64_t(b.slots)) : j.null();
        j.key("vram");
        b.cuda ? j.value(b.vram) : j.null();
        j.member("ram", b.ram).member("batch", uint64_t(b.batch));
        j.member("ok", r.ok());
        if (!r.ok()) {
            j.member("error", r.error).member("exit_code", int64_t(r.code));
            j.end_object();
            continue;
        }
        const RunFigures& f = r.m();
        j.member("load_s", r.load_s).member("ram_budget_bytes", r.ram_budget).member("resident_bytes", r.resident_bytes);
        j.key("vram_budget_bytes");
        b.cuda ? j.value(r.vram_budget) : j.null();
        j.key("threads");
        b.cuda ? j.null() : j.value(uint64_t(r.threads));
        j.member("ctx", r.ctx);
        // The median run's figures (the run of median decode time), then every run's.
        j.member("prefill_tok_s", r.prefill_tps()).member("decode_tok_s", f.decode_tps);
        j.key("token_s");
        token_json(j, f);
        j.member("file_bytes_per_token", f.file_bytes).member("link_bytes_per_token", f.link_bytes);
        j.member("page_cache_fraction", r.cached).member("weights_from", r.from);
        optional_member(j, "bound_s", f.bound);
        j.key("bound_fraction");
        f.bound ? j.value(*f.bound / std::max(f.token.wall, 1e-12)) : j.null();
        optional_member(j, "overlap_efficiency", f.overlap);
        j.member("peak_host_bytes", r.peak_host);
        j.key("peak_gpu_bytes");
        b.cuda ? j.value(r.peak_gpu) : j.null();
        j.key("runs").begin_array();
        for (const RunFigures& x : r.runs) {
            j.begin_object();
            j.member("prefill_tok_s", x.prefill_tps).member("decode_tok_s", x.decode_tps);
            j.key("token_s");
            token_json(j, x);
            j.member("file_bytes_per_token", x.file_bytes).member("link_bytes_per_token", x.link_bytes);
            optional_member(j, "bound_s", x.bound);
            optional_member(j, "overlap_efficiency", x.overlap);
            j.end_object();
        }
        j.end_array();
        j.end_object();
    }
    j.end_array();
    j.end_object();
    const std::string text = j.str() + "\n";
    if (path == "-") {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    } else {
        write_file_atomic(path, text);
    }
}

} // namespace

Command add_bench_command(CLI::App& app, const GlobalOptions& global) {
    struct Options {
        std::string dir, backends, slots = "2", vram = "none,half,all", ram = "default", batch = "512", json, read_bytes = "1G";
        Settings s;
    };
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("bench", "Measure throughput against the hardware bound, configurations side by side");
    sub->add_option("-m,--model", o->dir, "A split model, or a Hugging Face directory (split into the cache on first use)")
        ->required();
    sub->add_option("--backend", o->backends, "cpu, cuda or both, comma-separated (default: cuda when a usable GPU is present, "
                                              "else cpu)");
    sub->add_option("--ring-slots", o->slots, "GPU: ring slots to compare, e.g. 2,3 (default 2)");
    sub->add_option("--vram", o->vram,
                    "GPU: weights kept in VRAM, compared: none, half, all (as the budget allows) or budgets such as 4G "
                    "(default none,half,all)");
    sub->add_option("--ram-budget", o->ram, "RAM budgets to compare: default (3/4 of the available memory) or sizes, e.g. 0,8G");
    sub->add_option("--batch", o->batch, "Most prompt tokens through the layers at once, compared (default 512)");
    sub->add_option("--prompt-len", o->s.prompt_len, "Prompt tokens (default 512)")->check(CLI::Range(size_t(1), size_t(1) << 20));
    sub->add_option("--gen", o->s.gen, "Decoded tokens per run (default 32)")->check(CLI::Range(size_t(1), size_t(1) << 20));
    sub->add_option("--repeat", o->s.repeat, "Measured runs per configuration; the run of median decode time is reported "
                                             "(default 3)")
        ->check(CLI::Range(size_t(1), size_t(1000)));
    sub->add_option("--warmup", o->s.warmup, "Runs before the measured ones, not counted (default 1)")
        ->check(CLI::Range(size_t(0), size_t(100)));
    sub->add_option("--threads", o->s.threads, "CPU rows: threads (default: the processors this process may use)");
    sub->add_option("--ctx", o->s.ctx, "Context length (default: prompt and generated tokens)");
    sub->add_option("--gpu", o->s.gpu, "Which GPU (default: the first usable one)")->check(CLI::Range(0, 255));
    sub->add_option("--read-bytes", o->read_bytes, "Bytes of the shard files read to time the disk (0: skip; default 1G)")
        ->check(size_validator());
    sub->add_option("--json", o->json, "Also write the results as JSON to FILE (- for stdout, instead of the table)");

    auto run = [o, sub, &global]() {
        if (!o->json.empty() && o->json != "-") check_writable_path(o->json);
        Settings& s = o->s;
        // The matrix, checked before any work.
        std::vector<std::string> backends = split_list(o->backends);
        if (backends.empty()) backends.push_back(choose_device("").cuda ? "cuda" : "cpu");
        for (const auto& b : backends)
            if (b != "cpu" && b != "cuda") throw Error(ExitCode::usage, "--backend " + b + ": expected cpu or cuda");
        const bool any_cuda = std::find(backends.begin(), backends.end(), "cuda") != backends.end();
        if (any_cuda) {
#ifdef RABBIT_HAVE_CUDA
            std::string problem;
            if (sub->count("--gpu") == 0)
                if (const auto d = first_usable_cuda_device(&problem)) s.gpu = d->index;
#endif
            check_gpu(s.gpu);
        }
        const bool any_cpu = std::find(backends.begin(), backends.end(), "cpu") != backends.end();
        if (!any_cuda && (sub->count("--vram") || sub->count("--ring-slots") || sub->count("--gpu")))
            spdlog::warn("--vram, --ring-slots and --gpu apply to the cuda backend, which this run does not measure");
        if (!any_cpu && sub->count("--threads")) spdlog::warn("--threads applies to the cpu backend, which this run does not measure");
        const auto slots = number_list<uint32_t>(o->slots, "--ring-slots", 1, 16);
        const auto batches = number_list<size_t>(o->batch, "--batch", 1, size_t(1) << 20);
        const auto vrams = split_list(o->vram);
        const auto rams = split_list(o->ram);
        if (vrams.empty() || rams.empty()) throw Error(ExitCode::usage, "--vram and --ram-budget need at least one value");
        for (const auto& v : vrams) {
            if (v != "none" && v != "half" && v != "all" && !parse_size(v))
                throw Error(ExitCode::usage, "--vram " + v + ": expected none, half, all or a size such as 4G");
            if (parse_size(v) && *parse_size(v) == 0)
                throw Error(ExitCode::usage, "--vram " + v + ": a budget of 0 holds nothing; none keeps no weights in VRAM");
        }
        for (const auto& r : rams) ram_budget_of(r);

        std::vector<BenchConfig> configs;
        for (const auto& b : backends)
            for (const auto& ram : rams)
                for (size_t batch : batches) {
                    if (b == "cpu") {
                        configs.push_back({false, 0, "-", ram, batch});
                        continue;
                    }
                    for (uint32_t n : slots)
                        for (const auto& v : vrams) configs.push_back({true, n, v, ram, batch});
                }

        const std::string dir = split_dir_for(o->dir, global);
        SplitModel model = SplitModel::open(dir);
        if (s.prompt_len + s.gen > model.config().max_position_embeddings)
            throw Error(ExitCode::usage, "--prompt-len and --gen: " + std::to_string(s.prompt_len + s.gen) +
                                             " positions, more than the model's " +
                                             std::to_string(model.config().max_position_embeddings) + "; lower them");
        // The files that stream.
        std::vector<std::string> files;
        for (size_t i = 0; i < model.manifest().units.size(); ++i)
            if (model.streams_per_token(i)) files.push_back(model.unit_path(model.manifest().units[i]));

        const MachineInfo m = machine_info();
        Describe about;
        Rates rates;
        const uint64_t read_bytes = *parse_size(o->read_bytes);
        if (read_bytes > 0) {
            spdlog::info("reading up to {} of {} cold, then warm", format_bytes(read_bytes), dir);
            ThreadPool readers(4); // as many as the CUDA loader's
            rates.cold = measure_file_read(files, read_bytes, true, &readers);
            rates.cold_valid = rates.cold->cached_before < 0.1;
            std::vector<ReadBandwidth> warm;
            for (int k = 0; k < 3; ++k) warm.push_back(measure_file_read(files, read_bytes, false, &readers));
            std::sort(warm.begin(), warm.end(),
                      [](const ReadBandwidth& a, const ReadBandwidth& b) { return a.bytes_per_second() < b.bytes_per_second(); });
            rates.warm = warm[1];
        }
#ifdef RABBIT_HAVE_CUDA
        if (any_cuda) {
            const CudaDevice& d = probe_cuda_device(s.gpu);
            about.gpu = d.name + " (sm_" + std::to_string(d.cc_major) + std::to_string(d.cc_minor) + ", " +
                        format_bytes(d.total_bytes) + ")";
            about.versions = cuda_versions();
            const LinkBandwidth l = measure_link(s.gpu, 256ull << 20, 5);
            rates.pinned_bps = l.pinned_bps;
            rates.pageable_bps = l.pageable_bps;
            rates.link_bytes = l.bytes;
        }
#endif
        const bool table = o->json != "-";
        if (table) {
            uint64_t weights = 0;
            for (const auto& u : model.manifest().units) weights += u.layout.data_size;
            std::printf("model: %s (%s, %u layers, %s of %s weights)\n", dir.c_str(), model.config().architecture.c_str(),
                        unsigned(model.config().num_layers), format_bytes(weights).c_str(), model.manifest().dtype.c_str());
            std::printf("machine: %s, %u CPUs, %s memory, Linux %s%s%s%s%s; rabbit %s (%s)\n", m.cpu.c_str(), m.cpus,
                        format_bytes(m.memory).c_str(), m.kernel.c_str(), about.gpu.empty() ? "" : "; GPU: ",
                        about.gpu.c_str(), about.versions.empty() ? "" : ", CUDA ", about.versions.c_str(), RABBIT_VERSION,
                        RABBIT_GIT_REV);
            if (rates.cold) {
                std::printf("shard read (4 threads, as the loader reads): cold %s (%s, %s cached before%s), warm %s\n",
                            gbps(rates.cold->bytes_per_second()).c_str(), format_bytes(rates.cold->bytes).c_str(),
                            percent(rates.cold->cached_before).c_str(),
                            rates.cold_valid ? "" : ": not the drive's rate, so no bound uses it",
                            gbps(rates.warm->bytes_per_second()).c_str());
            }
            if (rates.pinned_bps > 0)
                std::printf("host to device: pinned %s, pageable %s (%s copies)\n", gbps(rates.pinned_bps).c_str(),
                            gbps(rates.pageable_bps).c_str(), format_bytes(rates.link_bytes).c_str());
            std::printf("runs: %zu-token prompt, %zu decoded tokens; the run of median decode time of %zu, after %zu "
                        "warm-up\n\n",
                        s.prompt_len, s.gen, s.repeat, s.warmup);
            std::fflush(stdout);
        }

        std::vector<ConfigResult> results;
        auto finish = [&] {
            if (table) print_table(results);
            if (!o->json.empty()) write_json(o->json, model, s, rates, results, about);
        };
        for (const BenchConfig& b : configs) {
            ConfigResult r;
            r.config = b;
            spdlog::info("{}", config_label(b));
            try {
                measure_config(model, b, s, rates, files, r);
                spdlog::info("  prefill {} tok/s, decode {} tok/s", rate(r.prefill_tps()), rate(r.m().decode_tps));
            } catch (const Error& e) {
                if (e.code() == ExitCode::interrupted || e.code() == ExitCode::internal) {
                    finish(); // what finished is not lost
                    throw;
                }
                r.error = e.what();
                r.code = e.code();
                spdlog::warn("{}: {}", config_label(b), e.what());
            } catch (...) {
                finish();
                throw;
            }
            results.push_back(std::move(r));
        }
        finish();
        for (const auto& r : results)
            if (!r.ok()) return int(r.code);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
