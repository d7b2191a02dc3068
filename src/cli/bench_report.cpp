// SPDX-License-Identifier: Apache-2.0
#include "cli/bench_report.h"

#include "engine/kv_cache.h"
#include "engine/weights.h"

#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/system.h"
#include "common/units.h"
#include "format/split_model.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#ifndef RABBIT_GIT_REV
#define RABBIT_GIT_REV "unknown"
#endif

namespace rabbit {

namespace {

std::string ms(double seconds) {
    const double v = seconds * 1e3;
    return v >= 100 ? fmt::format("{:.0f}", v) : v >= 10 ? fmt::format("{:.1f}", v) : v >= 1 ? fmt::format("{:.2f}", v)
                                                                                           : fmt::format("{:.3f}", v);
}

std::string percent(double fraction) { return fmt::format("{:.0f}%", fraction * 100); }

std::string gbps(double bps) { return fmt::format("{:.2f} GB/s", bps / 1e9); }

std::string iso_date() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

uint64_t weight_bytes(const SplitModel& model) {
    uint64_t n = 0;
    for (const auto& u : model.manifest().units) n += u.layout.data_size;
    return n;
}

// The weights a decoded token reads (model/layout's streams_per_token): for a quantized split,
// its quantized bytes.
uint64_t bytes_per_token(const SplitModel& model) {
    uint64_t n = 0;
    const auto& units = model.manifest().units;
    for (size_t i = 0; i < units.size(); ++i)
        if (model.streams_per_token(i)) n += units[i].layout.data_size;
    return n;
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



void machine_json(JsonWriter& j, const Describe& d) {
    const MachineInfo m = machine_info();
    j.key("machine").begin_object();
    j.member("cpu", m.cpu).member("cpus", uint64_t(m.cpus)).member("memory_bytes", m.memory).member("kernel", m.kernel);
    j.key("gpu");
    d.gpu.empty() ? j.null() : j.value(d.gpu);
    j.key("cuda");
    d.versions.empty() ? j.null() : j.value(d.versions);
    j.end_object();
}

void read_json(JsonWriter& j, const char* name, const std::optional<ReadBandwidth>& r) {
    j.key(name);
    if (!r) {
        j.null();
        return;
    }
    j.begin_object();
    j.member("bytes", r->bytes).member("seconds", r->seconds).member("bytes_per_second", r->bytes_per_second());
    j.member("cached_before", r->cached_before);
    j.end_object();
}

void bandwidth_json(JsonWriter& j, const Rates& rates) {
    j.key("bandwidth").begin_object();
    read_json(j, "read_cold", rates.cold);
    j.member("read_cold_from_drive", rates.cold_valid);
    read_json(j, "read_warm", rates.warm);
    j.key("h2d_pinned_bytes_per_second");
    rates.pinned_bps > 0 ? j.value(rates.pinned_bps) : j.null();
    j.key("h2d_pageable_bytes_per_second");
    rates.pageable_bps > 0 ? j.value(rates.pageable_bps) : j.null();
    j.end_object();
}

// A filled cache's run has no prefill rate, but the fill's time.
void prefill_json(JsonWriter& j, const RunFigures& x) {
    j.key("prefill_tok_s");
    x.fill_s > 0 ? j.null() : j.value(x.prefill_tps);
    if (x.fill_s > 0) j.member("fill_s", x.fill_s);
}

void run_json(JsonWriter& j, const RunFigures& x) {
    j.begin_object();
    prefill_json(j, x);
    j.member("decode_tok_s", x.decode_tps);
    j.key("token_s");
    token_json(j, x);
    j.member("file_bytes_per_token", x.file_bytes).member("link_bytes_per_token", x.link_bytes);
    optional_member(j, "bound_s", x.bound);
    optional_member(j, "overlap_efficiency", x.overlap);
    if (x.tokens_per_pass > 0)
        j.member("tokens_per_pass", x.tokens_per_pass).member("draft_s_per_pass", x.draft_s).member("verify_s_per_pass", x.verify_s);
    j.end_object();
}

void config_json(JsonWriter& j, const ConfigResult& r) {
    const BenchConfig& b = r.config;
    j.begin_object();
    j.member("backend", std::string(b.cuda ? "cuda" : "cpu"));
    j.key("ring_slots");
    b.cuda ? j.value(uint64_t(b.slots)) : j.null();
    j.key("vram");
    b.cuda ? j.value(b.vram) : j.null();
    j.member("ram", b.ram).member("batch", uint64_t(b.batch)).member("draft", b.draft);
    j.member("ok", r.ok());
    if (!r.ok()) {
        j.member("error", r.error).member("exit_code", int64_t(r.code));
        j.end_object();
        return;
    }
    const RunFigures& f = r.m();
    j.member("load_s", r.load_s).member("ram_budget_bytes", r.ram_budget).member("resident_bytes", r.resident_bytes);
    if (!r.draft_on.empty()) j.member("draft_device", r.draft_on).member("draft_vram_bytes", r.draft_vram);
    j.key("vram_budget_bytes");
    b.cuda ? j.value(r.vram_budget) : j.null();
    j.key("threads");
    b.cuda ? j.null() : j.value(uint64_t(r.threads));
    j.member("ctx", r.ctx).member("context_filled", r.filled);
    // The median run's figures (the run of median decode time), then every run's.
    j.key("prefill_tok_s");
    r.filled ? j.null() : j.value(r.prefill_tps());
    if (r.filled) j.member("fill_s", f.fill_s);
    j.member("decode_tok_s", f.decode_tps);
    j.key("token_s");
    token_json(j, f);
    j.member("file_bytes_per_token", f.file_bytes).member("link_bytes_per_token", f.link_bytes);
    if (f.experts > 0)
        j.member("experts_per_token", f.experts).member("expert_hit_rate", f.expert_hits / f.experts);
    j.member("page_cache_fraction", r.cached).member("weights_from", r.from);
    optional_member(j, "bound_s", f.bound);
    j.key("bound_fraction");
    f.bound ? j.value(*f.bound / std::max(f.token.wall, 1e-12)) : j.null();
    optional_member(j, "overlap_efficiency", f.overlap);
    if (f.tokens_per_pass > 0)
        j.member("tokens_per_pass", f.tokens_per_pass).member("draft_s_per_pass", f.draft_s).member("verify_s_per_pass", f.verify_s);
    j.member("peak_host_bytes", r.peak_host);
    j.key("peak_gpu_bytes");
    b.cuda ? j.value(r.peak_gpu) : j.null();
    j.key("runs").begin_array();
    for (const RunFigures& x : r.runs) run_json(j, x);
    j.end_array();
    j.end_object();
}

} // namespace

std::string rate(double per_second) {
    return per_second >= 100 ? fmt::format("{:.0f}", per_second)
                             : per_second >= 10 ? fmt::format("{:.1f}", per_second) : fmt::format("{:.2f}", per_second);
}

std::string config_label(const BenchConfig& b) {
    const std::string draft = b.draft == "none" ? "" : ", draft " + b.draft;
    if (!b.cuda) return "cpu, RAM " + b.ram + ", batch " + std::to_string(b.batch) + draft;
    return "cuda, " + std::to_string(b.slots) + " slots, VRAM " + b.vram + ", RAM " + b.ram + ", batch " +
           std::to_string(b.batch) + draft;
}

void print_header(const SplitModel& model, const Settings& s, const Rates& rates, const Describe& about) {
    const MachineInfo m = machine_info();
    fmt::print("model: {} ({}, {} layers, {} of {} weights, {} read per decoded token)\n", model.dir(),
               model.config().architecture, unsigned(model.config().num_layers), format_bytes(weight_bytes(model)),
               model.manifest().dtype, format_bytes(bytes_per_token(model)));
    fmt::print("machine: {}, {} CPUs, {} memory, Linux {}{}{}{}{}; rabbit {} ({})\n", m.cpu, m.cpus, format_bytes(m.memory),
               m.kernel, about.gpu.empty() ? "" : "; GPU: ", about.gpu, about.versions.empty() ? "" : ", CUDA ",
               about.versions, RABBIT_VERSION, RABBIT_GIT_REV);
    if (model.config().is_moe()) {
        // The two bounds of a MoE model: every byte (dense), or the routed experts' only (active).
        const TokenBytes tb = token_bytes(model.manifest());
        const double cold = rates.cold && rates.cold_valid ? rates.cold->bytes_per_second() : 0;
        fmt::print("experts: {} routed of {} per MoE layer; a decoded token reads {} of matrices (active), every expert "
                   "{} (dense){}\n",
                   model.config().experts_per_tok, model.config().num_experts, format_bytes(tb.active()),
                   format_bytes(tb.whole()),
                   cold > 0 ? fmt::format("; at the cold rate {:.2f} tok/s active bound, {:.2f} dense", cold / double(tb.active()),
                                          cold / double(tb.whole()))
                            : std::string());
    }
    if (rates.cold) {
        fmt::print("shard read (4 threads, as the loader reads): cold {} ({}, {} cached before{}), warm {}\n",
                   gbps(rates.cold->bytes_per_second()), format_bytes(rates.cold->bytes), percent(rates.cold->cached_before),
                   rates.cold_valid ? "" : ": not the drive's rate, so no bound uses it", gbps(rates.warm->bytes_per_second()));
    }
    if (rates.pinned_bps > 0)
        fmt::print("host to device: pinned {}, pageable {} ({} copies)\n", gbps(rates.pinned_bps), gbps(rates.pageable_bps),
                   format_bytes(rates.link_bytes));
    if (s.fill_ctx || !s.kv_dtype.empty()) {
        const DType kv = s.kv_dtype.empty() ? DType::f32 : parse_kv_dtype(s.kv_dtype);
        const uint64_t per = kv_bytes_per_position(model.config(), kv);
        fmt::print("KV cache: {}, {} per position (every layer); a decode step at position {} reads {} of it\n",
                   dtype_name(kv), format_bytes(per), s.start(), format_bytes(per * s.start()));
    }
    if (s.fill_ctx)
        fmt::print("runs: the KV cache filled with {} synthetic positions, not prefilled (for timing only: the decoded "
                   "text is meaningless), then {} decoded tokens; the run of median decode time of {}, after {} warm-up\n\n",
                   s.fill_ctx, s.gen, s.repeat, s.warmup);
    else
        fmt::print("runs: {}-token prompt, {} decoded tokens; the run of median decode time of {}, after {} warm-up\n\n",
                   s.prompt_len, s.gen, s.repeat, s.warmup);
    std::fflush(stdout);
}

void print_table(const std::vector<ConfigResult>& results) {
    fmt::print("| backend | slots | VRAM | RAM | batch | load s | prefill tok/s | decode tok/s | ms/token | weights from | "
               "disk | copy | h2d | compute | wait | overlap | bound ms | of bound | GPU peak | host peak |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& r : results) {
        const BenchConfig& b = r.config;
        const std::string dash = "-";
        fmt::print("| {} | {} | {} | {} | {} ", b.cuda ? "cuda" : "cpu", b.cuda ? std::to_string(b.slots) : dash,
                   b.cuda ? b.vram : dash, b.ram, b.batch);
        if (!r.ok()) {
            fmt::print("| failed: {} |\n", r.error);
            continue;
        }
        const RunFigures& f = r.m();
        const TokenSplit& t = f.token;
        const bool streams = f.file_bytes > 0 || f.link_bytes > 0;
        const std::string prefill = r.filled ? "filled " + std::to_string(r.filled) : rate(r.prefill_tps());
        fmt::print("| {:.2f} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", r.load_s,
                   prefill, rate(f.decode_tps), ms(t.wall), r.from, f.file_bytes > 0 ? ms(t.disk) : dash,
                   b.cuda && f.file_bytes > 0 ? ms(t.host_copy) : dash, b.cuda && f.link_bytes > 0 ? ms(t.h2d) : dash,
                   ms(t.compute()), streams ? ms(t.wait) : dash, f.overlap ? percent(*f.overlap) : dash,
                   f.bound ? ms(*f.bound) : dash, f.bound ? percent(*f.bound / std::max(t.wall, 1e-12)) : dash,
                   b.cuda ? format_bytes(r.peak_gpu) : dash, format_bytes(r.peak_host));
    }
    // MoE models: what the expert cache saved, below the table so that its columns stay as they are.
    for (const auto& r : results)
        if (r.ok() && r.m().experts > 0)
            fmt::print("experts ({}): {:.1f} run per decoded token, {} of them from the expert cache\n", config_label(r.config),
                       r.m().experts, percent(r.m().expert_hits / r.m().experts));
    // Speculative decoding's figures, for the configurations with a draft (the table above
    // counts decoded tokens, not passes).
    if (std::none_of(results.begin(), results.end(), [](const ConfigResult& r) { return r.config.draft != "none"; })) return;
    fmt::print("\n| configuration | draft | tokens per pass | draft ms/pass | verify ms/pass | decode tok/s | draft on |\n");
    fmt::print("|---|---|---|---|---|---|---|\n");
    for (const auto& r : results) {
        if (r.config.draft == "none" || !r.ok()) continue;
        const RunFigures& f = r.m();
        // A draft model's place, and on the GPU its share of the VRAM budget (the target's plan had the rest).
        const std::string on = r.draft_on.empty() ? "-"
                               : r.draft_vram ? r.draft_on + ", " + format_bytes(r.draft_vram) + " of " + format_bytes(r.vram_budget)
                                              : r.draft_on;
        fmt::print("| {} | {} | {:.2f} | {} | {} | {} | {} |\n", config_label(r.config), r.config.draft, f.tokens_per_pass,
                   ms(f.draft_s), ms(f.verify_s), rate(f.decode_tps), on);
    }
}

void write_json(const std::string& path, const SplitModel& model, const Settings& s, const Rates& rates,
                const std::vector<ConfigResult>& results, const Describe& d) {
    const ModelConfig& c = model.config();
    JsonWriter j;
    j.begin_object();
    j.member("rabbit", std::string(RABBIT_VERSION)).member("git", std::string(RABBIT_GIT_REV));
    j.member("date", iso_date());
    machine_json(j, d);
    j.key("model").begin_object();
    j.member("dir", model.dir()).member("arch", c.architecture).member("layers", uint64_t(c.num_layers));
    j.member("dtype", model.manifest().dtype).member("weight_bytes", weight_bytes(model));
    j.member("bytes_per_token", bytes_per_token(model));
    j.end_object();
    j.key("settings").begin_object();
    j.member("prompt_len", uint64_t(s.prompt_len)).member("gen", uint64_t(s.gen)).member("repeat", uint64_t(s.repeat));
    j.member("warmup", uint64_t(s.warmup)).member("fill_ctx", uint64_t(s.fill_ctx));
    j.key("kv_dtype");
    s.kv_dtype.empty() ? j.null() : j.value(s.kv_dtype);
    j.end_object();
    bandwidth_json(j, rates);
    j.key("configs").begin_array();
    for (const auto& r : results) config_json(j, r);
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

} // namespace rabbit
