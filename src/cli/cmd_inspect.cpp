// SPDX-License-Identifier: Apache-2.0
// rabbit inspect DIR: what a model is, how it streams, and what a VRAM budget would hold.
#include "cli/commands.h"
#include "cli/plan_report.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/units.h"
#include "engine/memory_plan.h"
#include "format/hf_checkpoint.h"
#include "format/split_model.h"
#include "split/plan.h"

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/gemm.h"

#include <cuda_runtime.h>
#endif

#include <spdlog/spdlog.h>

#include <cstdio>
#include <memory>

namespace rabbit {

namespace {

// Device memory the CUDA runtime takes beside the plan's buffers: measured on the first usable
// GPU as the engine measures it (cuBLAS's handle and kernels), else the planner's estimate;
// and the reserve for rabbit's own kernels.
uint64_t runtime_overhead(DType weights) {
#ifdef RABBIT_HAVE_CUDA
    std::string problem;
    if (const auto d = first_usable_cuda_device(&problem); d && cudaSetDevice(d->index) == cudaSuccess) {
        const Elem type = weights == DType::f32 ? Elem::f32 : d->cc_major < 8 ? Elem::f16 : Elem::bf16;
        return measure_cublas_overhead(type) + k_kernel_code_reserve;
    }
#endif
    (void)weights;
    return k_estimated_cublas_bytes + k_kernel_code_reserve;
}


struct InspectedModel {
    std::string dir;
    bool split = false;
    std::string dtype;
    ModelConfig config;
    std::vector<PlanUnit> units;    // bytes: what streams to the GPU
    std::vector<uint64_t> file_bytes; // per unit: what lies on disk
};

InspectedModel load(const std::string& dir, DTypeChoice dtype) {
    InspectedModel m;
    m.dir = dir;
    if (is_split_dir(dir)) {
        SplitModel s = SplitModel::open(dir);
        m.split = true;
        m.dtype = s.manifest().dtype;
        m.config = s.config();
        m.units = plan_units(s.manifest().units);
        for (const auto& u : s.manifest().units) m.file_bytes.push_back(u.size());
        return m;
    }
    if (!is_directory(dir)) throw bad_input(dir, path_exists(dir) ? "is not a directory" : "no such directory");
    if (!looks_like_hf_checkpoint(dir))
        throw bad_input(dir, "holds neither manifest.json (a rabbit split) nor config.json (a Hugging Face model)");
    HfCheckpoint ck = open_hf_checkpoint(dir);
    SplitPlan plan = plan_split(ck, dtype);
    m.dtype = plan.dtype;
    m.config = plan.config;
    m.units = plan_units(plan.units);
    for (const auto& u : plan.units) m.file_bytes.push_back(u.layout.file_size());
    return m;
}

DType weight_dtype(const std::string& name) {
    auto d = dtype_from_name(name);
    return d ? *d : DType::f32; // "mixed" holds f32 somewhere: size for the wider one
}

std::string rope_text(const ModelConfig& c) {
    char theta[64], buf[160];
    std::snprintf(theta, sizeof theta, c.rope_theta < 1e15 && c.rope_theta == double(uint64_t(c.rope_theta)) ? "%.0f" : "%g",
                  c.rope_theta);
    switch (c.rope_scaling.type) {
    case RopeScaling::Type::none: std::snprintf(buf, sizeof buf, "RoPE theta %s", theta); break;
    case RopeScaling::Type::linear:
        std::snprintf(buf, sizeof buf, "RoPE theta %s, linear scaling x%g", theta, c.rope_scaling.factor);
        break;
    case RopeScaling::Type::llama3:
        std::snprintf(buf, sizeof buf, "RoPE theta %s, llama3 scaling x%g (original context %llu)", theta,
                      c.rope_scaling.factor, (unsigned long long)c.rope_scaling.original_max_position_embeddings);
        break;
    }
    return buf;
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
    s.per_token = weight_bytes_per_token(m.units, m.config.tie_word_embeddings);
    const uint64_t kv_elem = weight_dtype(m.dtype) == DType::f32 ? 4 : 2;
    s.kv_per_position = 2ull * m.config.num_layers * m.config.kv_dim() * kv_elem;
    return s;
}

} // namespace

Command add_inspect_command(CLI::App& app, const GlobalOptions&) {
    struct Options {
        std::string dir, budget, dtype = "auto";
        uint64_t ctx = 0;
        uint32_t ring_slots = 2;
        bool json = false;
    };
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand("inspect", "Describe a model (split or not): architecture, unit sizes, bytes "
                                                  "streamed per token, what a VRAM budget holds resident");
    sub->add_option("DIR", o->dir, "A split directory (manifest.json) or a Hugging Face model directory")->required();
    sub->add_option("--vram-budget", o->budget, "Plan for this much GPU memory, e.g. 4G")->check(size_validator());
    sub->add_option("--ctx", o->ctx, "Context length the KV cache is planned for (default: the model's, at most 4096)");
    sub->add_option("--ring-slots", o->ring_slots, "Slots in the streaming ring (default 2)")->check(CLI::Range(1, 16));
    sub->add_option("--dtype", o->dtype, "For an unsplit directory: the dtype it would be split with (default auto)")
        ->check(CLI::IsMember({"auto", "keep", "bf16", "f16", "f32"}));
    sub->add_flag("--json", o->json, "Print JSON instead of text");

    auto run = [o]() {
        InspectedModel m = load(o->dir, *parse_dtype_choice(o->dtype));
        const ModelConfig& c = m.config;
        const Summary s = summarize(m);
        const uint64_t ctx = o->ctx ? o->ctx : std::min<uint64_t>(c.max_position_embeddings, 4096);

        std::optional<uint64_t> budget;
        std::string budget_source;
        if (!o->budget.empty()) {
            budget = parse_size(o->budget);
            budget_source = "--vram-budget";
        }
#ifdef RABBIT_HAVE_CUDA
        else if (std::string problem; auto d = first_usable_cuda_device(&problem)) {
            if (auto dev = default_cuda_budget(*d)) {
                budget = dev->budget;
                budget_source = dev->description;
            }
        }
#endif
        std::optional<MemoryPlan> plan;
        MemoryPlanInput plan_in;
        if (budget) {
            MemoryPlanInput& in = plan_in;
            in.config = c;
            in.units = m.units;
            in.weight_dtype = weight_dtype(m.dtype);
            in.budget = *budget;
            in.ctx = ctx;
            in.ring_slots = o->ring_slots;
            in.overhead = runtime_overhead(in.weight_dtype);
            plan = plan_memory(in);
        }

        if (o->json) {
            JsonWriter w;
            w.begin_object();
            w.member("dir", m.dir);
            w.member("split", m.split);
            w.member("dtype", m.dtype);
            w.key("config");
            c.to_json(w);
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
            w.member("kv_bytes_per_position", s.kv_per_position);
            if (plan) {
                w.key("vram_plan").begin_object();
                w.member("budget", *budget);
                w.member("budget_source", budget_source);
                w.member("ctx", ctx);
                w.member("ring_slots", o->ring_slots);
                w.member("fits", plan->fits);
                w.member("minimum_budget", plan->minimum_budget);
                w.member("kv_cache_bytes", plan->kv_cache_bytes);
                w.member("kv_on_host", plan->kv_on_host);
                w.member("vector_bytes", plan->vector_bytes);
                w.member("ring_slot_bytes", plan->ring_slot_bytes);
                w.member("chunked", plan->chunked);
                w.member("activation_bytes", plan->activation_bytes);
                w.member("workspace_bytes", plan->workspace_bytes);
                w.member("ring_bytes", plan->ring_bytes);
                w.member("overhead_bytes", plan->overhead_bytes);
                w.member("device_bytes", plan->device_bytes);
                w.member("resident_bytes", plan->resident_bytes);
                w.member("resident_layers", plan->resident_layers);
                w.key("resident_units").begin_array(true);
                for (size_t i = 0; i < m.units.size(); ++i)
                    if (plan->resident[i]) w.value(m.units[i].name);
                w.end_array();
                w.member("streamed_bytes_per_token", plan->streamed_per_token);
                w.end_object();
            }
            w.end_object();
            std::printf("%s\n", w.str().c_str());
            return 0;
        }

        auto line = [](const char* key, const std::string& value) { std::printf("%-13s %s\n", key, value.c_str()); };
        line("model", m.dir + (m.split ? " (rabbit split)" : " (Hugging Face checkpoint, not split: sizes as `rabbit split` would write them)"));
        line("architecture", c.architecture);
        char buf[512];
        std::snprintf(buf, sizeof buf, "%u layers, hidden %u, %u heads / %u kv heads x head_dim %u, ffn %u, vocab %u",
                      c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size,
                      c.vocab_size);
        line("shape", buf);
        std::string features = rope_text(c);
        if (c.qkv_bias) features += ", qkv bias";
        if (c.o_bias) features += ", o bias";
        if (c.qk_norm) features += ", q/k norm";
        if (c.sliding_window) features += ", sliding window " + std::to_string(c.sliding_window);
        features += c.tie_word_embeddings ? ", lm_head tied to the embedding" : ", separate lm_head";
        line("features", features);
        line("context", std::to_string(c.max_position_embeddings) + " positions");
        line("weights", m.dtype + ", " + format_bytes(s.total_file) + " in " + std::to_string(m.units.size()) + " unit files");
        line("  embed", format_bytes(s.embed));
        if (s.layer_min == s.layer_max) line("  layers", std::to_string(c.num_layers) + " x " + format_bytes(s.layer_max));
        else line("  layers", std::to_string(c.num_layers) + " x " + format_bytes(s.layer_min) + " .. " + format_bytes(s.layer_max));
        line("  norm", format_bytes(s.norm));
        line("  lm_head", c.tie_word_embeddings ? std::string("(tied: the embedding)") : format_bytes(s.lm_head));
        line("per token", format_bytes(s.per_token) + " of weights read per decoded token (every layer, the norm, " +
                              (c.tie_word_embeddings ? "the embedding as lm_head" : "lm_head") +
                              "); the embedding lookup gathers one row on the host");
        line("KV cache", format_bytes(s.kv_per_position) + " per position; " + format_bytes(s.kv_per_position * ctx) +
                             " at " + std::to_string(ctx) + " positions");
        if (plan) {
            line("VRAM budget", format_bytes(*budget) + " (" + budget_source + "), context " + std::to_string(ctx) + ", " +
                                    std::to_string(o->ring_slots) + " ring slots");
            for (const auto& [key, text] : plan_lines(*plan, plan_in)) line(key.c_str(), text);
        }
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
