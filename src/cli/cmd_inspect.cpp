// SPDX-License-Identifier: Apache-2.0
// rabbit inspect DIR: what a model is, how it streams, and what a VRAM budget would hold.
#include "cli/commands.h"
#include "cli/engine_choice.h"
#include "cli/kv_report.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "cli/plan_report.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/system.h"
#include "common/units.h"
#include "engine/kv_cache.h"
#include "engine/memory_plan.h"
#include "engine/rope.h"
#include "engine/weights.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/hf_checkpoint.h"
#include "format/split_model.h"
#include "model/rope_scaling.h"
#include "split/plan.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

namespace rabbit {

namespace {

struct InspectedModel {
    std::string dir;
    bool split = false;
    std::string dtype;
    ModelConfig config;
    std::vector<PlanUnit> units;    // bytes: what streams to the GPU
    std::vector<uint64_t> file_bytes; // per unit: what lies on disk
    bool tied = false;                // the embedding is lm_head (UnitRoles::tied)
    std::optional<GgufSummary> gguf;  // an unsplit GGUF: what the file holds
    std::map<DType, uint64_t> matrix_bytes; // per stored matrix dtype: the bytes of its matrices
    TokenBytes token;                       // a MoE model's: what a token reads of its experts
    std::vector<std::string> fallbacks;     // an unsplit directory's quantized --dtype: matrices stored otherwise
    struct Option {                         // an unsplit directory: what each --dtype would give
        std::string choice, dtype;
        uint64_t total_file = 0, per_token = 0;
    };
    std::vector<Option> options;
};

// The bytes of each matrix dtype (vectors, always f32, are left out).
void count_matrix_bytes(const UnitLayout& layout, std::map<DType, uint64_t>& bytes) {
    for (const auto& t : layout.tensors)
        if (t.shape.size() == 2) bytes[t.dtype] += t.nbytes;
}

// What every --dtype would split the checkpoint into: a few header reads, nothing converted.
std::vector<InspectedModel::Option> dtype_options(const HfCheckpoint& ck) {
    std::vector<InspectedModel::Option> out;
    for (const std::string& name : dtype_choice_names()) {
        const DTypeChoice c = *parse_dtype_choice(name);
        SplitPlan plan;
        try {
            plan = plan_split(ck, c);
        } catch (const Error& e) { // a quantized GGUF converts to no other type
            if (e.code() != ExitCode::unsupported) throw;
            continue;
        }
        InspectedModel::Option o{name, plan.dtype, plan.total_bytes(), 0};
        o.per_token = weight_bytes_per_token(plan_units(plan.units), plan.config.tie_word_embeddings);
        out.push_back(o);
    }
    return out;
}

InspectedModel load(const std::string& dir, DTypeChoice dtype) {
    InspectedModel m;
    m.dir = dir;
    if (is_split_dir(dir)) {
        SplitModel s = SplitModel::open(dir);
        m.split = true;
        m.dtype = s.manifest().dtype;
        m.config = s.config();
        m.units = plan_units(s.manifest().units);
        m.tied = s.roles().tied;
        for (const auto& u : s.manifest().units) m.file_bytes.push_back(u.size());
        for (const auto& u : s.manifest().units) count_matrix_bytes(u.layout, m.matrix_bytes);
        m.token = token_bytes(s.manifest());
        return m;
    }
    const bool gguf = looks_like_gguf(dir);
    if (gguf) m.gguf = summarize_gguf(open_gguf_set(dir));
    if (!gguf && !is_directory(dir)) throw bad_input(dir, path_exists(dir) ? "is not a directory" : "no such directory");
    if (!gguf && !looks_like_hf_checkpoint(dir))
        throw bad_input(dir, "holds neither manifest.json (a rabbit split) nor config.json (a Hugging Face model)");
    HfCheckpoint ck = gguf ? open_gguf_checkpoint(dir, false) : open_hf_checkpoint(dir);
    SplitPlan plan = plan_split(ck, dtype);
    m.dtype = plan.dtype;
    m.config = plan.config;
    m.units = plan_units(plan.units);
    m.tied = plan.config.tie_word_embeddings; // what the split's roles().tied will be
    for (const auto& u : plan.units) m.file_bytes.push_back(u.layout.file_size());
    for (const auto& u : plan.units) count_matrix_bytes(u.layout, m.matrix_bytes);
    for (const auto& u : plan.units) add_token_bytes(m.token, m.config, u.kind, u.layout);
    m.fallbacks = plan.fallbacks;
    m.options = dtype_options(ck);
    return m;
}

// The dtype the memory plan sizes activations and the KV cache for: f32 when any matrix is
// f32, else bf16 (half-precision activations, as the engines compute on half and quantized weights).
DType weight_dtype(const InspectedModel& m) {
    if (m.matrix_bytes.count(DType::f32)) return DType::f32;
    if (m.matrix_bytes.size() == 1 && !is_quant_dtype(m.matrix_bytes.begin()->first)) return m.matrix_bytes.begin()->first;
    return DType::bf16;
}

// "q4_k 71%, q6_k 24%, q8_0 5%": a mixed split's matrices by dtype, largest share first.
std::string mix_text(const InspectedModel& m) {
    std::vector<std::pair<uint64_t, DType>> by_size;
    uint64_t total = 0;
    for (const auto& [t, n] : m.matrix_bytes) {
        by_size.push_back({n, t});
        total += n;
    }
    std::sort(by_size.rbegin(), by_size.rend());
    std::string out;
    for (const auto& [n, t] : by_size)
        out += (out.empty() ? "" : ", ") + fmt::format("{} {:.0f}%", dtype_name(t), 100.0 * double(n) / double(std::max<uint64_t>(total, 1)));
    return out;
}

std::string rope_text(const ModelConfig& c) {
    const std::string theta = c.rope_theta < 1e15 && c.rope_theta == double(uint64_t(c.rope_theta))
                                  ? fmt::format("{:.0f}", c.rope_theta)
                                  : fmt::format("{:g}", c.rope_theta);
    switch (c.rope_scaling.type) {
    case RopeScaling::Type::none: break;
    case RopeScaling::Type::linear: return fmt::format("RoPE theta {}, linear scaling x{:g}", theta, double(c.rope_scaling.factor));
    case RopeScaling::Type::llama3:
        return fmt::format("RoPE theta {}, llama3 scaling x{:g} (original context {})", theta, double(c.rope_scaling.factor),
                           c.rope_scaling.original_max_position_embeddings);
    case RopeScaling::Type::yarn:
    case RopeScaling::Type::longrope:
        return fmt::format("RoPE theta {}, {} scaling x{:g} (original context {}, attention factor {:.4g})", theta,
                           rope_type_name(c.rope_scaling.type), double(c.rope_scaling.factor),
                           c.rope_scaling.original_max_position_embeddings, rope_attention_factor(c));
    case RopeScaling::Type::dynamic:
        return fmt::format("RoPE theta {}, dynamic NTK scaling x{:g}", theta, double(c.rope_scaling.factor));
    }
    return "RoPE theta " + theta;
}

struct Summary {
    uint64_t total_file = 0, total_data = 0, layer_min = UINT64_MAX, layer_max = 0, embed = 0, norm = 0, lm_head = 0;
    uint64_t per_token = 0, kv_per_position = 0;
};

Summary summarize(const InspectedModel& m) {
    Summary s;
    for (size_t i = 0; i < m.units.size(); ++i) {
        const PlanUnit& u = m.units[i];
        s.total_file += m.file_bytes[i];
        s.total_data += u.bytes;
        switch (u.kind) {
        case UnitKind::layer:
            s.layer_min = std::min(s.layer_min, u.bytes);
            s.layer_max = std::max(s.layer_max, u.bytes);
            break;
        case UnitKind::embed: s.embed = u.bytes; break;
        case UnitKind::final_norm: s.norm = u.bytes; break;
        case UnitKind::lm_head: s.lm_head = u.bytes; break;
        }
    }
    s.per_token = weight_bytes_per_token(m.units, m.tied);
    const uint64_t kv_elem = weight_dtype(m) == DType::f32 ? 4 : 2;
    s.kv_per_position = 2ull * m.config.num_layers * m.config.kv_dim() * kv_elem;
    return s;
}

struct InspectOptions {
    std::string dir, budget, dtype = "auto", kv_dtype, ram_budget, draft;
    uint64_t ctx = 0;
    uint32_t ring_slots = 2;
    bool json = false;
};

// A plan for --vram-budget, else for the first usable GPU's default budget; none without either.
struct InspectPlan {
    uint64_t ctx = 0;
    std::optional<uint64_t> budget;
    std::string budget_source;
    MemoryPlanInput input;
    std::optional<MemoryPlan> plan;
    KvReport kv;
    std::string draft;   // --draft: the draft model's directory, resident in VRAM beside the model
    bool draft_on_cpu = false; // the two do not fit together: `run --draft` would run the draft on the CPU
};

// The KV cache's type on each engine: --kv-dtype, else f32 on the CPU and the compute type on
// the GPU (which keeps q8_0 to the CPU engine).
void report_kv(const InspectedModel& m, const InspectOptions& o, InspectPlan& p) {
    const bool asked = !o.kv_dtype.empty();
    const DType kv = asked ? parse_kv_dtype(o.kv_dtype) : DType::f32;
    const DType compute = weight_dtype(m) == DType::f32 ? DType::f32 : DType::bf16;
    const DType gpu = asked && kv != DType::q8_0 ? kv : compute;
    const uint64_t ram = o.ram_budget.empty() ? default_ram_budget() : *parse_size(o.ram_budget);
    p.kv = kv_report(m.config, p.ctx, kv, gpu, p.plan ? &p.input : nullptr, ram);
}

// The VRAM a draft model resident beside the model takes (CudaEngine::resident_share, as
// cli/draft_engine.cpp makes it): every unit resident, its KV cache on the GPU for the model's
// context or its own maximum, its own cuBLAS handle (estimated as for the model).
uint64_t draft_share(const InspectedModel& d, const MemoryPlanInput& target) {
    MemoryPlanInput in;
    in.config = d.config;
    in.units = d.units;
    in.weight_dtype = weight_dtype(d);
    const auto matrices = dtype_from_name(d.dtype);
    in.dequant = d.dtype == "mixed" || (matrices && is_quant_dtype(*matrices));
    in.budget = UINT64_MAX / 4;
    in.ctx = std::min<uint64_t>(target.ctx, d.config.max_context());
    in.kv = KvPlace::gpu;
    in.overhead = target.overhead;
    const MemoryPlan plan = plan_memory(in);
    return plan.device_bytes - plan.overhead_bytes + (in.overhead - k_kernel_code_reserve);
}

InspectPlan plan_for(const InspectedModel& m, const InspectOptions& o) {
    InspectPlan p;
    p.ctx = o.ctx ? o.ctx : std::min<uint64_t>(m.config.max_context(), 4096);
    if (!o.budget.empty()) {
        p.budget = parse_size(o.budget);
        p.budget_source = "--vram-budget";
    } else if (const auto gpu = default_gpu_budget()) {
        p.budget = gpu->budget;
        p.budget_source = gpu->source;
    }
    if (!p.budget) return p;
    MemoryPlanInput& in = p.input;
    in.config = m.config;
    in.units = m.units;
    in.weight_dtype = weight_dtype(m);
    const auto matrices = dtype_from_name(m.dtype);
    // As the CUDA engine plans a quantized or mixed split: with the dequantization workspace.
    in.dequant = m.dtype == "mixed" || (matrices && is_quant_dtype(*matrices));
    in.budget = *p.budget;
    in.ctx = p.ctx;
    in.ring_slots = o.ring_slots;
    in.expert_cache = UINT64_MAX; // as the CUDA engine plans by default: what the budget leaves over
    in.overhead = runtime_overhead(in.weight_dtype);
    if (!o.kv_dtype.empty() && parse_kv_dtype(o.kv_dtype) != DType::q8_0) in.kv_dtype = parse_kv_dtype(o.kv_dtype);
    p.plan = plan_memory(in);
    if (o.draft.empty()) return p;
    p.draft = o.draft;
    in.draft_bytes = draft_share(load(o.draft, DTypeChoice::automatic), in);
    const MemoryPlan beside = plan_memory(in);
    // As `run --draft-device auto` does: the draft on the CPU when the model's minimum does not
    // fit beside it, and the model's plan then the whole budget's.
    p.draft_on_cpu = !beside.fits;
    if (p.draft_on_cpu) in.draft_bytes = 0;
    else p.plan = beside;
    return p;
}

void plan_json(JsonWriter& w, const InspectedModel& m, const InspectPlan& p) {
    const MemoryPlan& plan = *p.plan;
    w.key("vram_plan").begin_object();
    w.member("budget", *p.budget);
    w.member("budget_source", p.budget_source);
    w.member("ctx", p.ctx);
    w.member("ring_slots", p.input.ring_slots);
    w.member("fits", plan.fits);
    w.member("minimum_budget", plan.minimum_budget);
    if (!p.draft.empty()) w.member("draft", p.draft).member("draft_bytes", plan.draft_bytes).member("draft_on_cpu", p.draft_on_cpu);
    w.member("kv_cache_bytes", plan.kv_cache_bytes);
    w.member("kv_on_host", plan.kv_on_host);
    w.member("vector_bytes", plan.vector_bytes);
    w.member("ring_slot_bytes", plan.ring_slot_bytes);
    w.member("chunked", plan.chunked);
    w.member("activation_bytes", plan.activation_bytes);
    w.member("workspace_bytes", plan.workspace_bytes);
    w.member("ring_bytes", plan.ring_bytes);
    w.member("overhead_bytes", plan.overhead_bytes);
    w.member("device_bytes", plan.device_bytes);
    w.member("resident_bytes", plan.resident_bytes);
    w.member("resident_layers", plan.resident_layers);
    w.key("resident_units").begin_array(true);
    for (size_t i = 0; i < m.units.size(); ++i)
        if (plan.resident[i]) w.value(m.units[i].name);
    w.end_array();
    w.member("streamed_bytes_per_token", plan.streamed_per_token);
    if (m.config.is_moe()) {
        w.member("streamed_moe_layers", plan.streamed_moe_layers);
        w.member("expert_cache_bytes", plan.expert_cache_bytes);
        w.member("expert_cache_experts", plan.expert_cache_experts);
    }
    w.end_object();
}

// The GGUF file itself: its architecture and how many tensors of each GGML type it holds.
void gguf_json(JsonWriter& w, const GgufSummary& g) {
    w.key("gguf").begin_object();
    w.member("architecture", g.architecture).member("name", g.name).member("version", uint64_t(g.version));
    w.member("parts", uint64_t(g.parts)).member("tensors", uint64_t(g.tensors));
    w.key("types").begin_object();
    for (const auto& [type, use] : g.types)
        w.key(type).begin_object().member("tensors", uint64_t(use.tensors)).member("bytes", use.bytes).end_object();
    w.end_object();
    w.end_object();
}

std::string gguf_text(const GgufSummary& g) {
    std::string types;
    for (const auto& [type, use] : g.types)
        types += (types.empty() ? "" : ", ") + fmt::format("{} x{} ({})", type, use.tensors, format_bytes(use.bytes));
    return fmt::format("version {}, {}{}, {} file{}, {} tensors: {}", g.version, g.architecture,
                       g.name.empty() ? "" : " '" + g.name + "'", g.parts, g.parts == 1 ? "" : "s", g.tensors, types);
}

void print_json(const InspectedModel& m, const Summary& s, const InspectPlan& p) {
    JsonWriter w;
    w.begin_object();
    w.member("dir", m.dir);
    w.member("split", m.split);
    if (m.gguf) gguf_json(w, *m.gguf);
    w.member("dtype", m.dtype);
    w.key("config");
    m.config.to_json(w);
    w.key("units").begin_array();
    for (size_t i = 0; i < m.units.size(); ++i)
        w.begin_object()
            .member("name", m.units[i].name)
            .member("kind", unit_kind_name(m.units[i].kind))
            .member("data_bytes", m.units[i].bytes)
            .member("file_bytes", m.file_bytes[i])
            .end_object();
    w.end_array();
    w.member("total_file_bytes", s.total_file);
    w.member("bytes_per_token", s.per_token);
    if (m.config.is_moe()) // per_token counts every expert; a token reads these
        w.key("moe")
            .begin_object()
            .member("experts", m.config.num_experts)
            .member("experts_per_token", m.config.experts_per_tok)
            .member("routed_bytes_per_token", m.token.active())
            .member("routed_expert_bytes_per_token", m.token.routed_experts)
            .member("expert_bytes", m.token.all_experts)
            .end_object();
    w.member("kv_bytes_per_position", s.kv_per_position);
    w.key("matrix_bytes").begin_object();
    for (const auto& [t, n] : m.matrix_bytes) w.member(dtype_name(t), n);
    w.end_object();
    if (!m.split) {
        w.key("fallbacks").begin_array();
        for (const auto& f : m.fallbacks) w.value(f);
        w.end_array();
        w.key("dtype_options").begin_array();
        for (const auto& o : m.options)
            w.begin_object()
                .member("dtype", o.choice)
                .member("stored", o.dtype)
                .member("total_file_bytes", o.total_file)
                .member("bytes_per_token", o.per_token)
                .end_object();
        w.end_array();
    }
    if (p.plan) plan_json(w, m, p);
    kv_json(w, p.kv);
    w.end_object();
    fmt::print("{}\n", w.str());
}

// An unsplit directory: the size each --dtype would give, to choose by.
void print_options(const InspectedModel& m) {
    fmt::print("\n{:<8} {:<7} {:>10} {:>10}\n", "--dtype", "stored", "total", "per token");
    for (const auto& o : m.options)
        fmt::print("{:<8} {:<7} {:>10} {:>10}\n", o.choice, o.dtype, format_bytes(o.total_file), format_bytes(o.per_token));
}

void print_text(const InspectedModel& m, const Summary& s, const InspectPlan& p) {
    const ModelConfig& c = m.config;
    auto line = [](const std::string& key, const std::string& value) { fmt::print("{:<13} {}\n", key, value); };
    const char* unsplit = m.gguf ? " (GGUF, not split: sizes as `rabbit split` would write them)"
                                 : " (Hugging Face checkpoint, not split: sizes as `rabbit split` would write them)";
    line("model", m.dir + (m.split ? " (rabbit split)" : unsplit));
    if (m.gguf) line("GGUF", gguf_text(*m.gguf));
    line("architecture", c.architecture);
    line("shape", fmt::format("{} layers, hidden {}, {} heads / {} kv heads x head_dim {}, ffn {}, vocab {}", c.num_layers,
                              c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size));
    std::string features = rope_text(c);
    if (c.qkv_bias) features += ", qkv bias";
    if (c.o_bias) features += ", o bias";
    if (c.qk_norm) features += ", q/k norm";
    if (c.sliding_window) features += ", sliding window " + std::to_string(c.sliding_window);
    features += m.tied ? ", lm_head tied to the embedding" : ", separate lm_head";
    line("features", features);
    line("context", c.max_context() == c.max_position_embeddings
                        ? std::to_string(c.max_position_embeddings) + " positions"
                        : fmt::format("{} positions ({} scaled by RoPE {})", c.max_context(), c.max_position_embeddings,
                                      rope_type_name(c.rope_scaling.type)));
    const std::string mix = m.matrix_bytes.size() > 1 ? " (" + mix_text(m) + ")" : "";
    line("weights", m.dtype + mix + ", " + format_bytes(s.total_file) + " in " + std::to_string(m.units.size()) + " unit files");
    for (const auto& f : m.fallbacks) line("  fallback", f);
    line("  embed", format_bytes(s.embed));
    if (s.layer_min == s.layer_max) line("  layers", std::to_string(c.num_layers) + " x " + format_bytes(s.layer_max));
    else line("  layers", std::to_string(c.num_layers) + " x " + format_bytes(s.layer_min) + " .. " + format_bytes(s.layer_max));
    line("  norm", format_bytes(s.norm));
    line("  lm_head", m.tied ? std::string("(tied: the embedding)") : format_bytes(s.lm_head));
    line("per token", format_bytes(s.per_token) + " of weights read per decoded token (every layer, the norm, " +
                          (m.tied ? "the embedding as lm_head" : "lm_head") +
                          "); the embedding lookup gathers one row on the host");
    if (c.is_moe()) {
        uint32_t sparse = 0;
        for (uint32_t l = 0; l < c.num_layers; ++l) sparse += c.moe_layer(l);
        line("experts", fmt::format("{} per MoE layer ({} of {} layers), {} routed per token, expert ffn {}{}{}", c.num_experts,
                                    sparse, c.num_layers, c.experts_per_tok, c.moe_intermediate_size,
                                    c.shared_expert_intermediate_size
                                        ? fmt::format(", shared expert ffn {}", c.shared_expert_intermediate_size)
                                        : std::string(),
                                    c.norm_topk_prob ? ", top-k renormalised" : ""));
        line("  routed", fmt::format("{} per decoded token: {} of routed experts + {} of attention, routers, dense layers "
                                     "and {} ({:.1f}% of the {} of matrices that every expert would be)",
                                     format_bytes(m.token.active()), format_bytes(m.token.routed_experts),
                                     format_bytes(m.token.dense), m.tied ? "the tied embedding" : "lm_head",
                                     100.0 * double(m.token.active()) / double(std::max<uint64_t>(1, m.token.whole())),
                                     format_bytes(m.token.whole())));
    }
    line("KV cache", format_bytes(s.kv_per_position) + " per position; " + format_bytes(s.kv_per_position * p.ctx) +
                         " at " + std::to_string(p.ctx) + " positions in the compute type");
    for (const auto& [key, text] : kv_lines(p.kv)) line(key, text);
    if (p.plan) {
        line("VRAM budget", format_bytes(*p.budget) + " (" + p.budget_source + "), context " + std::to_string(p.ctx) + ", " +
                                std::to_string(p.input.ring_slots) + " ring slots");
        if (p.draft_on_cpu)
            line("  draft", p.draft + " does not fit beside it: --draft-device auto runs it on the CPU (cuda: exit 6)");
        for (const auto& [key, text] : plan_lines(*p.plan, p.input)) line(key, text);
    }
    if (!m.options.empty()) print_options(m);
}

} // namespace

Command add_inspect_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<InspectOptions>();
    CLI::App* sub = app.add_subcommand("inspect", "Describe a model (split or not): architecture, unit sizes, bytes "
                                                  "streamed per token, what a VRAM budget holds resident");
    sub->add_option("DIR", o->dir, "A split directory (manifest.json), a Hugging Face model directory, a .gguf file, or a hub id ORG/NAME[@REV][:QUANT] in the Hugging Face cache")->required();
    size_option(sub->add_option("--vram-budget", o->budget, "Plan for this much GPU memory, e.g. 4G"), "");
    zero_or_positive(sub->add_option("--ctx", o->ctx, "Context length the KV cache is planned for (default or 0: the "
                                                      "model's, at most 4096)"),
                     "the model's, at most 4096");
    positive(sub->add_option("--ring-slots", o->ring_slots, "Slots in the streaming ring (default 2)"), 16);
    sub->add_option("--dtype", o->dtype, "For an unsplit directory: the dtype it would be split with (default auto)")
        ->check(CLI::IsMember(dtype_choice_names()));
    sub->add_option("--kv-dtype", o->kv_dtype, "The KV cache's type to count: f32, bf16, f16 or q8_0 (default: f32 on "
                                                "the CPU, the compute type on the GPU)")
        ->check(CLI::IsMember({"f32", "bf16", "f16", "q8_0"}));
    size_option(sub->add_option("--ram-budget", o->ram_budget, "The RAM tier the most context is counted for, e.g. "
                                                               "16G (default: 3/4 of the memory available)"),
                "");
    sub->add_flag("--json", o->json, "Print JSON instead of text");
    sub->add_option("--draft", o->draft, "Plan with this draft model resident in VRAM beside it, as run --draft places "
                                         "it (a split, Hugging Face directory or .gguf)");

    auto run = [o, &global]() {
        const InspectedModel m = load(local_model_path(o->dir, global), *parse_dtype_choice(o->dtype));
        if (!o->draft.empty()) o->draft = local_model_path(o->draft, global);
        const Summary s = summarize(m);
        InspectPlan p = plan_for(m, *o);
        report_kv(m, *o, p);
        if (o->json) print_json(m, s, p);
        else print_text(m, s, p);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
