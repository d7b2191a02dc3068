// SPDX-License-Identifier: Apache-2.0
#include "cli/run_setup.h"

#include "backend/cpu/cpu_engine.h"
#include "backend/cpu/kernels.h"
#include "cli/draft_engine.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "cli/plan_report.h"
#include "cli/trace_option.h"
#include "common/error.h"
#include "engine/memory_plan.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/system.h"
#include "common/units.h"
#include "engine/speculative.h"
#include "engine/weights.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

namespace rabbit {

namespace {

// generation_config.json's sampling settings, as transformers' generate() reads them.
SamplingParams generation_defaults(const std::string& dir) {
    SamplingParams p;
    const std::string path = join_path(dir, "generation_config.json");
    if (!path_exists(path)) return p;
    JsonDocument doc(read_text_file(path), path);
    auto o = doc.root_object();
    auto number = [&](const char* key, double fallback) {
        auto e = json_field(o, key);
        return e && !e->is_null() ? json_to_double(*e, path, key) : fallback;
    };
    auto sample = json_field(o, "do_sample");
    const bool do_sample = sample && !sample->is_null() && json_to_bool(*sample, path, "do_sample");
    p.repetition_penalty = float(number("repetition_penalty", 1.0));
    if (do_sample) {
        p.temperature = float(number("temperature", 1.0));
        p.top_k = int(number("top_k", 50));
        p.top_p = float(number("top_p", 1.0));
        p.min_p = float(number("min_p", 0.0));
    }
    return p;
}

// Says how much of the model stays in memory, and what every token reads from the files.
void report_residency(const SplitModel& model, const MmapUnitSource& units, uint64_t budget) {
    const auto& all = model.manifest().units;
    uint64_t streamed = 0;
    size_t kept = 0;
    TokenBytes moe; // a MoE layer streams its dense part and k experts, less what the expert cache holds
    for (size_t i = 0; i < all.size(); ++i) {
        kept += units.resident(i);
        if (units.resident(i) || !model.streams_per_token(i)) continue;
        if (model.config().is_moe()) add_token_bytes(moe, model.config(), all[i].kind, all[i].layout);
        else streamed += all[i].layout.data_size;
    }
    if (model.config().is_moe()) streamed = moe.active();
    if (streamed == 0)
        spdlog::debug("RAM budget {}: the model stays in memory ({})", format_bytes(budget),
                      format_bytes(units.resident_bytes()));
    else
        spdlog::info("RAM budget {}: {} of {} units ({}) stay in memory; {} is read from {} for every token{}",
                     format_bytes(budget), kept, all.size(), format_bytes(units.resident_bytes()), format_bytes(streamed),
                     model.dir(), model.config().is_moe() ? " (its routed experts; less those the expert cache holds)" : "");
}

} // namespace

void add_session_options(CLI::App* sub, RunOptions& o) {
    sub->add_option("-m,--model", o.dir, "A split model, a Hugging Face directory, a .gguf file or a hub id ORG/NAME[@REV][:QUANT] (split into the cache on first use)")
        ->required();
    sub->add_option("--system", o.system, "A system prompt for the chat template");
    sub->add_option("--chat-format", o.chat_format,
                    "Write the chat prompt in this family's format instead of rendering the model's own template")
        ->check(CLI::IsMember({"chatml", "llama3", "llama2", "mistral"}));
    sub->add_flag("--think", "Render the template with enable_thinking=true (Qwen3)");
    sub->add_flag("--no-think", "Render the template with enable_thinking=false (Qwen3: no thinking section)")
        ->excludes("--think");
    zero_or_positive(sub->add_option("-n,--max-tokens", o.max_tokens,
                                     "Stop after this many new tokens; 0: the prompt alone (default 256)"),
                     "the prompt alone");
    fraction(sub->add_option("--temp", o.temp,
                             "Sampling temperature; 0 is greedy (default: generation_config.json's, else greedy)"),
             100, "greedy");
    zero_or_positive(sub->add_option("--top-k", o.top_k, "Sample from the k most likely tokens (0: off)"), "off");
    fraction(sub->add_option("--top-p", o.top_p,
                             "Sample from the smallest set of tokens whose probability reaches p (1: off)"),
             1, "the most likely token only");
    fraction(sub->add_option("--min-p", o.min_p, "Drop tokens less likely than p times the most likely one (0: off)"), 1,
             "off");
    positive_real(sub->add_option("--repeat-penalty", o.repeat_penalty, "Penalty for tokens already in the context (1: off)"),
                  "off");
    non_negative(sub->add_option("--seed", o.seed, "Random seed for sampling"));
    sub->add_option("--stop", o.stops, "Stop before this text (repeatable)");
    zero_or_positive(sub->add_option("--ctx", o.ctx, "Context length (default or 0: the model's maximum; memory grows as "
                                                     "it fills)"),
                     "the model's maximum");
    zero_or_positive(sub->add_option("--threads", o.threads, "CPU threads (default or 0: the processors this process may "
                                                             "use)"),
                     "every processor");
    add_act_quant_option(sub, o.act_quant);
    positive(sub->add_option("--batch", o.batch, "Most prompt tokens run through the layers at once (default 512)"),
             double(size_t(1) << 20));
    size_option(sub->add_option("--ram-budget", o.ram_budget,
                                "Keep up to this many bytes of weights in memory across tokens, e.g. 8G; 0 reads every "
                                "unit from the files for every token (default: 3/4 of the memory available at start)"),
                "every unit read from the files for every token");
    sub->add_option("--device", o.device,
                    "cpu, cuda or cuda:N (default: cuda when a usable GPU is present, else cpu with a notice)");
    size_option(sub->add_option("--vram-budget", o.vram_budget,
                                "GPU memory to use, e.g. 4G (default: the device's free memory less a margin)"),
                "");
    positive(sub->add_option("--ring-slots", o.ring_slots, "Pinned slots in the streaming ring (default 2)"), 16);
    size_option(sub->add_option("--vram-expert-cache", o.vram_expert_cache,
                                "GPU, a MoE model whose layers stream: keep up to this many bytes of recently used "
                                "experts in VRAM, e.g. 2G; 0 turns it off (default: what --vram-budget leaves over)"),
                "off");
    sub->add_option("--kv-cache", o.kv_cache, "Where the GPU engine keeps the KV cache: auto, gpu or host (default auto)")
        ->check(CLI::IsMember({"auto", "gpu", "host"}));
    sub->add_option("--kv-dtype", o.kv_dtype,
                    "The KV cache's type: f32, bf16, f16 or q8_0 (default: f32 on the CPU, the compute type on the GPU)")
        ->check(CLI::IsMember({"f32", "bf16", "f16", "q8_0"}));
    sub->add_option("--kv-attend", o.kv_attend,
                    "GPU with the KV cache in host memory: decode attention on the cpu (on the cache) or the gpu "
                    "(reading it over the link); auto chooses from measured rates (default auto)")
        ->check(CLI::IsMember({"auto", "cpu", "gpu"}));
    sub->add_option("--attention", o.attention,
                    "GPU prefill attention: cudnn (cuDNN's fused attention, sm_80+, bf16/f16), rabbit (rabbit's "
                    "kernel) or auto (cuDNN for long parts where it can run; default auto)")
        ->check(CLI::IsMember({"auto", "rabbit", "cudnn"}));
    sub->add_flag("--verify", o.verify, "Check every unit file's checksum before running");
    sub->add_flag("--special", o.special, "Print special tokens too");
    add_trace_option(sub, o.trace);
}

ChatOptions chat_options(const RunOptions& o, const CLI::App* sub) {
    ChatOptions options;
    if (!o.chat_format.empty()) options.format = parse_chat_format(o.chat_format);
    if (sub->count("--think") || sub->count("--no-think")) options.enable_thinking = sub->count("--think") > 0;
    return options;
}

GenerateOptions generate_options(const RunOptions& o, const SplitModel& model) {
    GenerateOptions g;
    g.max_tokens = o.max_tokens;
    g.stop_strings = o.stops;
    g.print_special = o.special;
    if (!o.ignore_eos)
        for (int64_t id : model.config().eos_token_ids) g.stop_ids.push_back(int32_t(id));
    g.sampling = generation_defaults(model.dir());
    if (o.temp) g.sampling.temperature = *o.temp;
    if (o.top_k) g.sampling.top_k = *o.top_k;
    if (o.top_p) g.sampling.top_p = *o.top_p;
    if (o.min_p) g.sampling.min_p = *o.min_p;
    if (o.repeat_penalty) g.sampling.repetition_penalty = *o.repeat_penalty;
    // A temperature so small that logits / temperature overflows is greedy decoding.
    if (g.sampling.temperature > 0 && g.sampling.temperature < 1e-4f) g.sampling.temperature = 0;
    // --temp on a model whose generation_config does not sample: transformers' defaults
    // for sampling apply (top_k 50).
    if (o.temp && *o.temp > 0 && !o.top_k && g.sampling.top_k == 0) g.sampling.top_k = 50;
    g.sampling.seed = o.seed;
    g.keep_logits = !o.dump_logits.empty();
    return g;
}

struct DraftChoice::Model {
    SplitModel split;
    MadeEngine made;
};

namespace {

EngineRequest engine_request(const RunOptions& o, const CLI::App* sub, size_t sequences) {
    EngineRequest req;
    req.sequences = sequences;
    req.device = choose_device(o.device);
    req.ram_budget = o.ram_budget.empty() ? default_ram_budget() : *parse_size(o.ram_budget);
    req.ctx = o.ctx;
    req.batch = o.batch;
    req.threads = o.threads;
    req.act_quant = act_quant_of(o.act_quant);
    req.vram_budget = o.vram_budget.empty() ? 0 : *parse_size(o.vram_budget);
    req.ring_slots = o.ring_slots;
    if (!o.vram_expert_cache.empty()) req.expert_cache = *parse_size(o.vram_expert_cache);
    req.kv = o.kv_cache == "gpu" ? KvPlace::gpu : o.kv_cache == "host" ? KvPlace::host : KvPlace::automatic;
    if (!o.kv_dtype.empty()) req.kv_dtype = parse_kv_dtype(o.kv_dtype);
    req.kv_attend = o.kv_attend == "cpu" ? KvAttend::cpu : o.kv_attend == "gpu" ? KvAttend::gpu : KvAttend::automatic;
    req.attention = o.attention == "rabbit"  ? PrefillAttention::rabbit
                    : o.attention == "cudnn" ? PrefillAttention::cudnn
                                             : PrefillAttention::automatic;
    if (!req.device.cuda && (!o.vram_budget.empty() || sub->count("--ring-slots") || sub->count("--kv-cache") ||
                             sub->count("--vram-expert-cache") || sub->count("--attention")))
        spdlog::warn("--vram-budget, --ring-slots, --kv-cache, --vram-expert-cache and --attention apply to the GPU; "
                     "running on the CPU");
    return req;
}

} // namespace

MadeEngine start_engine(const RunOptions& o, const CLI::App* sub, const SplitModel& model,
                        std::function<void()>& report_memory, size_t sequences, DraftChoice* draft) {
    const EngineRequest req = engine_request(o, sub, sequences);
    MadeEngine made;
    if (draft && draft->model) {
        PlacedEngines both = make_engines_with_draft(model, req, draft->model->split, draft_device_of(o.draft_device));
        made = std::move(both.target);
        draft->model->made = std::move(both.draft);
        draft->drafter = std::make_unique<ModelDrafter>(*draft->model->made.engine, generate_options(o, model).sampling);
        spdlog::info("draft model {}: {}, {}", draft->model->split.dir(), draft_placement(draft->model->made), draft->shape);
    } else {
        made = make_engine(model, req);
    }
    report_memory = [] {};
    if (CpuEngine* cpu = made.cpu) {
        report_residency(model, cpu->units(), req.ram_budget);
        spdlog::debug("CPU engine: {} threads, {} kernels, context {} positions, KV cache {}", cpu->threads(),
                      isa_name(cpu_isa()), cpu->context(), dtype_name(cpu->kv_dtype()));
    }
#ifdef RABBIT_HAVE_CUDA
    if (CudaEngine* cuda = made.cuda) {
        const CudaEngineStats st = cuda->stats();
        spdlog::info("{}: VRAM budget {}, context {} positions", st.device, format_bytes(st.budget), cuda->context());
        for (const auto& [key, text] : plan_lines(cuda->plan(), cuda->plan_input())) spdlog::debug("{}:{}", key, text);
        if (const CudaEngine* d = draft && draft->model ? draft->model->made.cuda : nullptr)
            for (const auto& [key, text] : plan_lines(d->plan(), d->plan_input())) spdlog::debug("  draft's {}:{}", key.substr(2), text);
        report_memory = [cuda] {
            const CudaEngineStats s = cuda->stats();
            spdlog::info("GPU memory: peak {} of the {} budget (device use grew by {}); {} pinned; ring: {} pieces, "
                         "{} copied, {:.2f}s waiting for weights{}",
                         format_bytes(s.peak_device_bytes), format_bytes(s.budget), format_bytes(s.device_used_growth),
                         format_bytes(s.pinned_bytes), s.ring.pieces, format_bytes(s.ring.bytes), s.ring.consumer_wait_s,
                         s.expert_cache_bytes ? fmt::format("; expert cache {} holding {} experts",
                                                            format_bytes(s.expert_cache_bytes), s.expert_cache_held)
                                              : std::string());
        };
    }
#endif
    return made;
}

DraftChoice::DraftChoice() = default;
DraftChoice::DraftChoice(DraftChoice&&) noexcept = default;
DraftChoice& DraftChoice::operator=(DraftChoice&&) noexcept = default;
DraftChoice::~DraftChoice() = default;

void add_draft_options(CLI::App* sub, RunOptions& o) {
    sub->add_option("--draft", o.draft,
                    "Speculative decoding: 'ngram' (proposals from the context, prompt lookup) or a small model with the "
                    "same tokenizer (a split, Hugging Face directory or .gguf; run on the CPU, resident)");
    positive(sub->add_option("--draft-max", o.draft_max, "Draft chains of at most this many tokens a pass, instead of trees"),
             64);
    positive(sub->add_option("--draft-budget", o.draft_budget,
                             "Draft trees of at most this many tokens a pass, grown by cumulative draft probability "
                             "(default 16)"),
             double(k_tree_rows - 1));
    sub->add_flag("--draft-fixed", o.draft_fixed,
                  "Always draft --draft-max (or --draft-budget) tokens, instead of choosing from the measured costs and "
                  "acceptance");
    add_draft_device_option(sub, o.draft_device);
}

void check_draft_options(const RunOptions& o, const CLI::App* sub) {
    if (o.draft.empty() && (sub->count("--draft-max") || sub->count("--draft-budget") || o.draft_fixed))
        throw Error(ExitCode::usage, "--draft-max, --draft-budget and --draft-fixed go with --draft");
    if (sub->count("--draft-max") && sub->count("--draft-budget"))
        throw Error(ExitCode::usage, "--draft-max (chains) and --draft-budget (trees) do not go together");
    if (sub->count("--draft-device") && (o.draft.empty() || o.draft == "ngram"))
        throw Error(ExitCode::usage, "--draft-device goes with a draft model (--draft DIR)");
}

void DraftChoice::apply(GenerateOptions& g, const RunOptions& o) const {
    g.drafter = drafter.get();
    g.draft_max = max;
    g.draft_budget = budget;
    g.draft_adaptive = !o.draft_fixed;
}

DraftChoice start_draft(const RunOptions& o, const SplitModel& target, const Tokenizer& tok, const GlobalOptions& global) {
    DraftChoice d;
    if (o.draft.empty()) return d;
    // Chains with --draft-max; else trees.
    d.max = o.draft_max ? o.draft_max : 8;
    d.budget = o.draft_max ? 0 : o.draft_budget ? o.draft_budget : 16;
    d.shape = d.budget ? fmt::format("trees of up to {} tokens", d.budget) : fmt::format("chains of up to {} tokens", d.max);
    if (o.draft == "ngram") {
        d.drafter = std::make_unique<NgramDrafter>();
        spdlog::info("ngram drafts: {}", d.shape);
        return d;
    }
    std::string dir;
    try {
        dir = split_dir_for(o.draft, global);
    } catch (const Error& e) {
        throw Error(e.code(), std::string("--draft: ") + e.what());
    }
    std::unique_ptr<Tokenizer> draft_tok = load_tokenizer(dir);
    check_same_vocabulary(tok, target.dir(), *draft_tok, dir);
    d.model = std::make_unique<DraftChoice::Model>(DraftChoice::Model{SplitModel::open(dir), {}});
    return d;
}

} // namespace rabbit
