// SPDX-License-Identifier: Apache-2.0
// What `rabbit run` and `rabbit chat` share: the model, chat template, sampling and engine
// options, and the engine and generation settings made from them.
#pragma once

#include "cli/commands.h"
#include "cli/engine_choice.h"
#include "engine/generate.h"
#include "format/split_model.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct RunOptions {
    std::string dir, prompt, system, ram_budget, dump_logits, device, vram_budget, kv_cache = "auto", act_quant = "f32",
        trace;
    std::string chat_format;
    std::string kv_dtype, kv_attend = "auto"; // --kv-dtype (empty: the engine's default), --kv-attend
    std::string vram_expert_cache;            // --vram-expert-cache (empty: what the VRAM budget leaves over)
    std::string attention = "auto";           // --attention: auto, rabbit or cudnn
    uint32_t ring_slots = 2;
    bool raw = false, special = false, verify = false, ignore_eos = false;
    size_t max_tokens = 256, threads = 0;
    uint64_t ctx = 0;
    std::optional<float> temp, top_p, min_p, repeat_penalty;
    size_t batch = 512;
    std::optional<int> top_k;
    uint64_t seed = 0;
    std::vector<std::string> stops;
    std::string draft;     // --draft: "ngram" or a model
    size_t draft_max = 0;  // > 0: chains of at most this many
    size_t draft_budget = 0; // trees of at most this many tokens (0: 16); the default, without --draft-max
    bool draft_fixed = false;
    std::string draft_device = "auto"; // --draft-device: auto, cpu, cuda
    std::string prompts;   // --prompts FILE: batched generation
    size_t parallel = 1;   // --parallel: sequences in flight at once
    bool ordered = false;  // --ordered: objects in the file's order
};

// -m, the chat template's (--system, --chat-format, --think, --no-think), sampling, stops and
// the engine's options (device, budgets, threads, context, --trace...).
void add_session_options(CLI::App* sub, RunOptions& o);
// --chat-format and --think/--no-think as the template renderer takes them.
ChatOptions chat_options(const RunOptions& o, const CLI::App* sub);
// Stops and sampling: the options over generation_config.json's settings.
GenerateOptions generate_options(const RunOptions& o, const SplitModel& model);
struct DraftChoice;
// The engine for --device, with what it says of itself now; `report_memory` says what it
// used once the run is over.
// sequences: KV caches for that many sequences at once (--prompts' --parallel).
// draft: a draft model's split (start_draft), whose engine and drafter are made here beside the
// target's, placed by --draft-device (cli/draft_engine.h).
MadeEngine start_engine(const RunOptions& o, const CLI::App* sub, const SplitModel& model,
                        std::function<void()>& report_memory, size_t sequences = 1, DraftChoice* draft = nullptr);

// --draft and its settings, for speculative decoding (engine/speculative.h); no drafter
// without --draft. A draft model runs with its weights resident: in VRAM beside a target on
// the GPU when both fit, else on the CPU engine in RAM (--draft-device).
struct DraftChoice {
    struct Model; // the draft model's split and engine
    std::unique_ptr<Model> model;
    std::unique_ptr<Drafter> drafter; // a draft model's: made by start_engine
    size_t max = 0;    // chains: the most tokens a pass (GenerateOptions::draft_max)
    size_t budget = 0; // trees: the most tokens a pass, 0 for chains (GenerateOptions::draft_budget)
    std::string shape; // "trees of up to 16 tokens"
    // The drafter and its shape into g (nothing without --draft).
    void apply(GenerateOptions& g, const RunOptions& o) const;
    DraftChoice();
    DraftChoice(DraftChoice&&) noexcept;
    DraftChoice& operator=(DraftChoice&&) noexcept;
    ~DraftChoice();
};
// --draft, --draft-max, --draft-budget, --draft-fixed, --draft-device (run and chat).
void add_draft_options(CLI::App* sub, RunOptions& o);
// The draft options without --draft (--draft-device without a draft model), or chains and
// trees asked for at once: usage errors.
void check_draft_options(const RunOptions& o, const CLI::App* sub);
// The drafter for ngram; for a draft model its split, checked to share the target's
// vocabulary (start_engine makes its engine and drafter).
DraftChoice start_draft(const RunOptions& o, const SplitModel& target, const Tokenizer& tok, const GlobalOptions& global);

} // namespace rabbit
