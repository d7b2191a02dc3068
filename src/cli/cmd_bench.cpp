// SPDX-License-Identifier: Apache-2.0
// rabbit bench -m DIR: throughput against the hardware bound, configurations side by side.
// First the machine's own rates (the shard files read cold and warm, the host-to-device link
// from pinned and pageable memory); then, for every configuration asked for (backend, ring
// slots, VRAM, RAM budget, batch), one engine: a warm-up run, then --repeat runs of a prompt
// of --prompt-len tokens and --gen greedy decode steps, with the medians reported: tokens per
// second, each decoded token's time split by stage, the streaming bound and the share of it
// reached, the overlap, and peak memory. A table on stdout, and JSON with --json.
#include "bench/measure.h"
#include "cli/bench_parallel.h"
#include "cli/bench_report.h"
#include "cli/commands.h"
#include "cli/draft_engine.h"
#include "cli/engine_choice.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "cli/trace_option.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "common/json_writer.h"
#include "common/system.h"
#include "common/thread_pool.h"
#include "common/timing.h"
#include "common/trace.h"
#include "common/units.h"
#include "backend/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "format/split_model.h"
#include "tokenizer/tokenizer.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/device.h"
#include "backend/cuda/link.h"
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>

namespace rabbit {

namespace {

struct Sample {
    double prefill_s = 0, decode_s = 0;
    StreamStats decode; // over the decode steps
    SpecStats spec;     // with a draft
};

// A configuration's drafter, and what it needs: the target's tokenizer, a draft model's
// split and engine (resident, placed as `rabbit run --draft` places it: cli/draft_engine.h).
struct BenchDraft {
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<SplitModel> split; // a draft model: its engine made beside the target's
    MadeEngine made;
    std::unique_ptr<Drafter> drafter;
};

BenchDraft bench_draft(const SplitModel& model, const BenchConfig& b) {
    BenchDraft d;
    if (b.draft == "none") return d;
    d.tok = load_tokenizer(model.dir());
    if (b.draft == "ngram") {
        d.drafter = std::make_unique<NgramDrafter>();
        return d;
    }
    const std::string dir = b.draft == "self" ? model.dir() : b.draft_dir;
    if (b.draft != "self") check_same_vocabulary(*d.tok, model.dir(), *load_tokenizer(dir), dir);
    d.split = std::make_unique<SplitModel>(SplitModel::open(dir));
    return d;
}

// A run with a draft: generate()'s loop, greedy, never stopping early.
Sample run_once_draft(Engine& engine, BenchDraft& d, const std::vector<int32_t>& prompt, const Settings& s) {
    GenerateOptions g;
    g.max_tokens = s.gen + 1; // the first from the prompt's pass
    g.drafter = d.drafter.get();
    g.draft_max = s.draft_max ? s.draft_max : 8;
    g.draft_budget = s.draft_max ? 0 : s.draft_budget;
    engine.reset();
    const GenerateResult r = generate(engine, *d.tok, prompt, g, [](const std::string&) {});
    Sample x;
    x.prefill_s = r.prefill_seconds;
    x.decode_s = r.decode_seconds;
    x.decode = engine.stream_stats() - r.at_decode;
    x.spec = r.spec;
    return x;
}

// The fill's seed: every run's synthetic cache the same.
constexpr uint64_t k_fill_seed = 1;

// A prompt's pass, then `gen` decode steps; or, with `fill`, the KV cache filled with that
// many synthetic positions and the decode steps from there, the first from prompt[0].
Sample run_once(Engine& engine, const std::vector<int32_t>& prompt, size_t gen, size_t fill) {
    SamplingParams greedy;
    Sampler sampler(greedy);
    std::vector<int32_t> history = fill ? std::vector<int32_t>{} : prompt;
    Sample s;
    engine.reset();
    const auto t0 = Clock::now();
    int32_t next = prompt[0];
    if (fill) {
        trace::Span span(trace::Track::tokens, trace::enabled() ? "fill (" + std::to_string(fill) + " positions)" : "");
        engine.fill_cache(fill, k_fill_seed);
    } else {
        trace::Span span(trace::Track::tokens, trace::enabled() ? "prompt (" + std::to_string(prompt.size()) + " tokens)" : "");
        next = engine.step(prompt.data(), prompt.size(), sampler, history, nullptr);
    }
    s.prefill_s = seconds_since(t0);
    const StreamStats before = engine.stream_stats();
    const auto t1 = Clock::now();
    for (size_t g = 0; g < gen; ++g) {
        throw_if_interrupted();
        history.push_back(next);
        trace::Span span(trace::Track::tokens, trace::enabled() ? "token " + std::to_string(g + 1) : "");
        next = engine.step(&history.back(), 1, sampler, history, nullptr);
    }
    s.decode_s = seconds_since(t1);
    s.decode = engine.stream_stats() - before;
    return s;
}

// --ram-budget's items: default, or a size (checked as the options were read).
uint64_t ram_budget_of(const std::string& ram) { return ram == "default" ? default_ram_budget() : *parse_size(ram); }

} // namespace

namespace {

EngineRequest bench_request(const SplitModel& model, const BenchConfig& b, const Settings& s, ConfigResult& r,
                            size_t sequences) {
    EngineRequest req;
    req.sequences = sequences;
    req.device = {b.cuda, s.gpu};
    req.ram_budget = r.ram_budget = ram_budget_of(b.ram);
    req.ctx = r.ctx = s.ctx ? s.ctx : std::min<uint64_t>(s.start() + s.gen + 1, model.config().max_context());
    req.batch = b.batch;
    req.threads = s.threads;
    req.act_quant = act_quant_of(s.act_quant);
    if (!s.kv_dtype.empty()) req.kv_dtype = parse_kv_dtype(s.kv_dtype);
    req.ring_slots = b.slots;
    if (b.vram == "none") req.max_resident = 0;
    else if (b.vram == "half")
        req.max_resident = weight_bytes_per_token(plan_units(model.manifest().units), model.roles().tied) / 2;
    else if (b.vram != "all") req.vram_budget = *parse_size(b.vram);
    return req;
}

void note_engine(const MadeEngine& made, ConfigResult& r) {
    if (made.cpu) {
        r.resident_bytes = made.cpu->units().resident_bytes();
        r.threads = made.cpu->threads();
    }
#ifdef RABBIT_HAVE_CUDA
    if (made.cuda) {
        r.vram_budget = made.cuda->stats().budget;
        r.resident_bytes = made.cuda->plan().resident_bytes;
    }
#endif
}

// The target's engine and the draft model's beside it, the drafter made on the latter.
std::unique_ptr<Engine> bench_engines(const SplitModel& model, const BenchConfig& b, const Settings& s, ConfigResult& r,
                                      BenchDraft& d) {
    PlacedEngines both =
        make_engines_with_draft(model, bench_request(model, b, s, r, 1), *d.split, draft_device_of(s.draft_device));
    note_engine(both.target, r);
    d.made = std::move(both.draft);
    d.drafter = std::make_unique<ModelDrafter>(*d.made.engine, SamplingParams{});
    r.draft_on = d.made.cuda ? "GPU" : "CPU";
#ifdef RABBIT_HAVE_CUDA
    if (d.made.cuda) r.draft_vram = d.made.cuda->resident_share();
#endif
    spdlog::info("  draft model {}: {}", d.split->dir(), draft_placement(d.made));
    return std::move(both.target.engine);
}

} // namespace

std::unique_ptr<Engine> bench_engine(const SplitModel& model, const BenchConfig& b, const Settings& s, ConfigResult& r,
                                     size_t sequences) {
    MadeEngine made = make_engine(model, bench_request(model, b, s, r, sequences));
    note_engine(made, r);
    return std::move(made.engine);
}

namespace {

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
    BenchDraft draft = bench_draft(model, b);
    std::unique_ptr<Engine> engine = draft.split ? bench_engines(model, b, s, r, draft) : bench_engine(model, b, s, r);
    r.load_s = seconds_since(t0);
    const std::vector<int32_t> prompt = bench_prompt(model.config(), s.fill_ctx ? 1 : s.prompt_len);
    auto once = [&] {
        return draft.drafter ? run_once_draft(*engine, draft, prompt, s) : run_once(*engine, prompt, s.gen, s.fill_ctx);
    };
    r.filled = s.fill_ctx;
    for (size_t w = 0; w < s.warmup; ++w) once();
    r.cached = page_cache_fraction(files);
    for (size_t k = 0; k < s.repeat; ++k) {
        const Sample x = once();
        const double g = double(s.gen);
        RunFigures f;
        if (s.fill_ctx) f.fill_s = std::max(x.prefill_s, 1e-12);
        else f.prefill_tps = double(s.prompt_len) / std::max(x.prefill_s, 1e-12);
        f.decode_tps = g / std::max(x.decode_s, 1e-12);
        f.token = {x.decode_s / g, x.decode.disk_s / g, x.decode.host_copy_s / g, x.decode.h2d_s / g, x.decode.wait_s / g};
        f.file_bytes = double(x.decode.file_bytes) / g;
        f.link_bytes = double(x.decode.link_bytes) / g;
        f.experts = double(x.decode.experts_run) / g;
        f.expert_hits = double(x.decode.expert_hits) / g;
        // The drive bounds the share of the streamed bytes the page cache did not hold, at the
        // cold rate; what the page cache held costs mapping, not a transfer. The link bounds
        // everything copied to the device.
        const double from_drive = f.file_bytes * (1.0 - r.cached);
        f.bound = streaming_bound(from_drive, rates.cold_valid ? rates.cold->bytes_per_second() : 0, f.link_bytes,
                                  rates.pinned_bps);
        // The CPU engine has no loader: it reads the weights itself, so nothing overlaps its
        // reads but the kernel's read-ahead, which no clock here sees.
        if (b.cuda) f.overlap = overlap_efficiency(f.token);
        if (const SpecStats& st = x.spec; st.passes) {
            f.tokens_per_pass = st.tokens_per_pass();
            f.draft_s = st.draft_s / double(st.passes);
            f.verify_s = st.verify_s / double(st.passes);
        }
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

struct BenchOptions {
    std::string dir, json, read_bytes = "1G", trace;
    std::vector<std::string> backends, vram = {"none", "half", "all"}, ram = {"default"};
    std::vector<uint32_t> slots = {2};
    std::vector<size_t> batch = {512};
    std::vector<size_t> parallel; // --parallel: batched generation's throughput instead
    std::vector<std::string> drafts = {"none"};
    Settings s;
};

std::string backend_problem(const std::string& b) { return b == "cpu" || b == "cuda" ? "" : "expected cpu or cuda"; }

std::string vram_problem(const std::string& v) {
    if (v == "none" || v == "half" || v == "all") return {};
    if (!v.empty() && v[0] == '-') return "a negative size; expected none, half, all or a size such as 4G";
    const auto size = parse_size(v);
    if (!size) return "expected none, half, all or a size such as 4G";
    if (*size == 0) return "a budget of 0 holds nothing; none keeps no weights in VRAM";
    return {};
}

std::string ram_problem(const std::string& r) {
    if (r == "default") return {};
    if (!r.empty() && r[0] == '-') return "a negative size; expected default or a size such as 8G";
    return parse_size(r) ? "" : "expected default or a size such as 8G";
}

void add_bench_options(CLI::App* sub, BenchOptions& o) {
    Settings& s = o.s;
    sub->add_option("-m,--model", o.dir, "A split model, a Hugging Face directory, a .gguf file or a hub id ORG/NAME[@REV][:QUANT] (split into the cache on first use)")
        ->required();
    check_each(sub->add_option("--backend", o.backends, "cpu, cuda or both, comma-separated (default: cuda when a usable "
                                                        "GPU is present, else cpu)")
                   ->delimiter(','),
               backend_problem);
    positive(sub->add_option("--ring-slots", o.slots, "GPU: ring slots to compare, e.g. 2,3 (default 2)")->delimiter(','), 16);
    check_each(sub->add_option("--vram", o.vram,
                               "GPU: weights kept in VRAM, compared: none, half, all (as the budget allows) or budgets "
                               "such as 4G (default none,half,all)")
                   ->delimiter(','),
               vram_problem);
    check_each(sub->add_option("--ram-budget", o.ram, "RAM budgets to compare: default (3/4 of the available memory) or "
                                                      "sizes, e.g. 0,8G")
                   ->delimiter(','),
               ram_problem);
    positive(sub->add_option("--batch", o.batch, "Most prompt tokens through the layers at once, compared (default 512)")
                 ->delimiter(','),
             double(size_t(1) << 20));
    positive(sub->add_option("--prompt-len", s.prompt_len, "Prompt tokens (default 512)"), double(size_t(1) << 20));
    positive(sub->add_option("--gen", s.gen, "Decoded tokens per run (default 32)"), double(size_t(1) << 20));
    positive(sub->add_option("--repeat", s.repeat, "Measured runs per configuration; the run of median decode time is "
                                                   "reported (default 3)"),
             1000);
    zero_or_positive(sub->add_option("--warmup", s.warmup, "Runs before the measured ones, not counted (default 1)"),
                     "no warm-up", 100);
    zero_or_positive(sub->add_option("--threads", s.threads, "CPU rows: threads (default or 0: the processors this "
                                                             "process may use)"),
                     "every processor");
    add_act_quant_option(sub, s.act_quant);
    sub->add_option("--kv-dtype", s.kv_dtype,
                    "The KV cache's type: f32, bf16, f16 or q8_0 (default: f32 on the CPU, the compute type on the GPU)")
        ->check(CLI::IsMember({"f32", "bf16", "f16", "q8_0"}));
    positive(sub->add_option("--fill-ctx", s.fill_ctx,
                             "Time decode at a long context without its prefill: fill the KV cache's first N positions "
                             "with synthetic keys and values (seeded, in --kv-dtype), then decode --gen tokens from "
                             "position N, every layer streamed as usual. For timing only: the decoded text is "
                             "meaningless. CPU engine; instead of --prompt-len"),
             double(size_t(1) << 30));
    zero_or_positive(sub->add_option("--ctx", s.ctx, "Context length (default or 0: prompt and generated tokens)"),
                     "prompt and generated tokens");
    non_negative(sub->add_option("--gpu", s.gpu, "Which GPU (default: the first usable one)"), 255);
    size_option(sub->add_option("--read-bytes", o.read_bytes, "Bytes of the shard files read to time the disk (0: skip; "
                                                              "default 1G)"),
                "skip");
    positive(sub->add_option("--parallel", o.parallel, "Sequences stepped together, compared, e.g. 1,8,32: throughput "
                                                       "and per-sequence latency of batched generation")
                 ->delimiter(','),
             4096);
    sub->add_option("--draft", o.drafts,
                    "Speculative decoding to compare: none, ngram, self (the model as its own draft) or a draft model, "
                    "comma-separated (default none); the prompt is random ids, so ngram finds little")
        ->delimiter(',');
    positive(sub->add_option("--draft-budget", o.s.draft_budget, "With a draft: trees of at most this many tokens (default 16)"),
             double(k_tree_rows - 1));
    positive(sub->add_option("--draft-max", o.s.draft_max, "With a draft: chains of at most this many tokens, not trees"), 64);
    add_draft_device_option(sub, o.s.draft_device);
    sub->add_option("--json", o.json, "Also write the results as JSON to FILE (- for stdout, instead of the table)");
    add_trace_option(sub, o.trace);
}

// --fill-ctx's refusals, before any work: what it does not go with, a context or a memory
// too small for the filled positions and the decode steps.
void check_fill(const SplitModel& model, const BenchOptions& o, const CLI::App* sub, const std::vector<BenchConfig>& configs) {
    const Settings& s = o.s;
    if (!s.fill_ctx) return;
    const std::string fill = "--fill-ctx " + std::to_string(s.fill_ctx);
    if (sub->count("--prompt-len"))
        throw Error(ExitCode::usage, fill + ": the decode starts from the filled positions and no prompt runs; drop --prompt-len");
    if (!o.parallel.empty() || o.drafts.size() != 1 || o.drafts[0] != "none")
        throw Error(ExitCode::usage, fill + ": measures one sequence's plain decode; drop --parallel and --draft");
    if (std::any_of(configs.begin(), configs.end(), [](const BenchConfig& b) { return b.cuda; }))
        throw Error(ExitCode::usage, fill + ": the CPU engine only (the CUDA engine cannot fill its KV cache); use --backend cpu");
    const ModelConfig& c = model.config();
    const uint64_t positions = s.fill_ctx + s.gen;
    if (s.ctx && positions > s.ctx)
        throw Error(ExitCode::usage, fill + " and --gen " + std::to_string(s.gen) + ": " + std::to_string(positions) +
                                         " positions, more than --ctx " + std::to_string(s.ctx) + "; lower them or raise --ctx");
    const DType kv = s.kv_dtype.empty() ? DType::f32 : parse_kv_dtype(s.kv_dtype);
    const uint64_t ctx = s.ctx ? s.ctx : positions + 1, bytes = kv_bytes_per_position(c, kv) * ctx;
    const uint64_t room = kv_cache_room();
    if (bytes > room)
        throw Error(ExitCode::resources, fill + ": a KV cache of " + format_bytes(bytes) + " (" + dtype_name(kv) + ", " +
                                             std::to_string(ctx) + " positions) is more than half the memory available, " +
                                             format_bytes(room) + "; lower --fill-ctx or use a smaller --kv-dtype");
}

// The configurations to measure, every combination of the lists; the GPU checked first.
std::vector<BenchConfig> bench_matrix(BenchOptions& o, const CLI::App* sub) {
    std::vector<std::string> backends = o.backends;
    if (backends.empty()) backends.push_back(choose_device("").cuda ? "cuda" : "cpu");
    const bool any_cuda = std::find(backends.begin(), backends.end(), "cuda") != backends.end();
    const bool any_cpu = std::find(backends.begin(), backends.end(), "cpu") != backends.end();
    if (any_cuda) {
        if (sub->count("--gpu") == 0)
            if (const auto first = first_usable_gpu()) o.s.gpu = *first;
        check_gpu("--backend cuda", o.s.gpu, "");
    }
    if (!any_cuda && (sub->count("--vram") || sub->count("--ring-slots") || sub->count("--gpu")))
        spdlog::warn("--vram, --ring-slots and --gpu apply to the cuda backend, which this run does not measure");
    if (!any_cpu && sub->count("--threads")) spdlog::warn("--threads applies to the cpu backend, which this run does not measure");
    if (o.slots.empty() || o.batch.empty() || o.vram.empty() || o.ram.empty())
        throw Error(ExitCode::usage, "--ring-slots, --batch, --vram and --ram-budget need at least one value");
    if (o.drafts.empty()) throw Error(ExitCode::usage, "--draft needs at least one value");
    std::vector<BenchConfig> configs;
    for (const auto& b : backends)
        for (const auto& ram : o.ram)
            for (size_t batch : o.batch)
                for (const auto& draft : o.drafts) {
                    if (b == "cpu") {
                        configs.push_back({false, 0, "-", ram, batch, draft, ""});
                        continue;
                    }
                    for (uint32_t n : o.slots)
                        for (const auto& v : o.vram) configs.push_back({true, n, v, ram, batch, draft, ""});
                }
    return configs;
}

// The machine's own rates: the streamed files read cold and warm (unless read_bytes is 0), the
// host-to-device link when a configuration is the GPU's; and what the GPU is.
Rates measure_rates(const SplitModel& model, const std::vector<std::string>& files, uint64_t read_bytes, bool cuda, int gpu,
                    Describe& about) {
    Rates rates;
    if (read_bytes > 0) {
        spdlog::info("reading up to {} of {} cold, then warm", format_bytes(read_bytes), model.dir());
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
    if (cuda) {
        const CudaDevice& d = probe_cuda_device(gpu);
        about.gpu = fmt::format("{} (sm_{}{}, {})", d.name, d.cc_major, d.cc_minor, format_bytes(d.total_bytes));
        about.versions = cuda_versions();
        const LinkBandwidth l = measure_link(gpu, 256ull << 20, 5);
        rates.pinned_bps = l.pinned_bps;
        rates.pageable_bps = l.pageable_bps;
        rates.link_bytes = l.bytes;
    }
#else
    (void)cuda, (void)gpu, (void)about;
#endif
    return rates;
}

// Every configuration in turn; one that fails is a row saying why, and the exit code is the
// last failure's. What finished is reported even when an interrupt or a bug ends the run.
int run_matrix(const SplitModel& model, const std::vector<BenchConfig>& configs, const BenchOptions& o, const Rates& rates,
               const Describe& about, const std::vector<std::string>& files) {
    const bool table = o.json != "-";
    std::vector<ConfigResult> results;
    auto finish = [&] {
        if (table) print_table(results);
        if (!o.json.empty()) write_json(o.json, model, o.s, rates, results, about);
    };
    for (const BenchConfig& b : configs) {
        ConfigResult r;
        r.config = b;
        spdlog::info("{}", config_label(b));
        try {
            measure_config(model, b, o.s, rates, files, r);
            if (r.filled) spdlog::info("  {} positions filled in {:.2f} s, decode {} tok/s", r.filled, r.m().fill_s, rate(r.m().decode_tps));
            else spdlog::info("  prefill {} tok/s, decode {} tok/s", rate(r.prefill_tps()), rate(r.m().decode_tps));
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
}

} // namespace

Command add_bench_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<BenchOptions>();
    CLI::App* sub = app.add_subcommand("bench", "Measure throughput against the hardware bound, configurations side by side");
    add_bench_options(sub, *o);

    auto run = [o, sub, &global]() {
        if (!o->json.empty() && o->json != "-") check_writable_path(o->json);
        if (!o->trace.empty()) check_writable_path(o->trace);
        const Settings& s = o->s;
        std::vector<BenchConfig> configs = bench_matrix(*o, sub); // checked before any work
        for (BenchConfig& b : configs)
            if (b.draft != "none" && b.draft != "ngram" && b.draft != "self") {
                try {
                    b.draft_dir = split_dir_for(b.draft, global);
                } catch (const Error& e) {
                    throw Error(e.code(), std::string("--draft: ") + e.what());
                }
            }
        const bool any_cuda = std::any_of(configs.begin(), configs.end(), [](const BenchConfig& b) { return b.cuda; });
        const std::string dir = split_dir_for(o->dir, global);
        SplitModel model = SplitModel::open(dir);
        if (s.start() + s.gen > model.config().max_context())
            throw Error(ExitCode::usage, std::string(s.fill_ctx ? "--fill-ctx" : "--prompt-len") + " and --gen: " +
                                             std::to_string(s.start() + s.gen) + " positions, more than the model's " +
                                             std::to_string(model.config().max_context()) + "; lower them");
        check_fill(model, *o, sub, configs);
        // The files that stream.
        std::vector<std::string> files;
        for (size_t i = 0; i < model.manifest().units.size(); ++i)
            if (model.streams_per_token(i)) files.push_back(model.unit_path(model.manifest().units[i]));
        if (!o->parallel.empty() && (o->drafts.size() != 1 || o->drafts[0] != "none"))
            throw Error(ExitCode::usage, "--parallel and --draft are measured apart; give one of them");
        if (!o->parallel.empty()) return run_parallel_bench(model, configs, s, o->parallel, o->json);
        Describe about;
        const Rates rates = measure_rates(model, files, *parse_size(o->read_bytes), any_cuda, s.gpu, about);
        if (o->json != "-") print_header(model, s, rates, about);
        start_trace(o->trace); // the runs, not the disk and link measurements before them
        const int rc = run_matrix(model, configs, *o, rates, about, files);
        finish_trace(o->trace); // each configuration's engine is gone by now
        return rc;
    };
    return {sub, run};
}

} // namespace rabbit
