// SPDX-License-Identifier: Apache-2.0
// rabbit pull ORG/NAME[@REV][:QUANT]: a model's files from the hub into the Hugging Face
// cache (hub/pull.h), where `-m ORG/NAME`, huggingface_hub and transformers find them; with
// --split, split as the shards arrive (cli/hub_model.h).
#include "cli/commands.h"
#include "cli/hub_model.h"
#include "cli/pull_progress.h"
#include "cli/progress.h"
#include "common/error.h"
#include "hub/pull.h"

#include <spdlog/fmt/fmt.h>

#include <memory>

namespace rabbit {

namespace {

struct PullOptions {
    std::string repo;
    std::vector<std::string> include;
    bool split = false;
};

} // namespace

Command add_pull_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<PullOptions>();
    CLI::App* sub = app.add_subcommand("pull", "Download a model from the Hugging Face hub into its cache (resumable, checksummed); "
                                               "HF_TOKEN for gated repos, HF_ENDPOINT for a mirror, HF_HUB_CACHE for the cache");
    sub->add_option("REPO", o->repo, "ORG/NAME, optionally @REVISION (branch, tag or commit) and :QUANT (a GGUF repo's quant tag)")
        ->required();
    sub->add_option("--include", o->include, "Only the files this glob matches (repeatable), e.g. '*.json'");
    sub->add_flag("--split", o->split,
                  "Split each safetensors shard as it arrives and drop its download once its units are verified: "
                  "the checkpoint is never stored whole");
    auto run = [o, &global]() {
        const std::optional<HubId> id = parse_hub_id(o->repo);
        if (!id) throw Error(ExitCode::usage, "pull " + o->repo + ": expected a hub id ORG/NAME[@REVISION][:QUANT]");
        if (o->split && !o->include.empty()) throw Error(ExitCode::usage, "pull: --split takes the whole model, not --include");
        if (o->split) {
            fmt::print("{}\n", pull_split(*id, global));
            return 0;
        }
        const HubConfig cfg = hub_config_from_env();
        const bool tty = stderr_is_terminal();
        ConsolePullProgress progress(!global.quiet && tty, !global.quiet && !tty);
        PullRequest req;
        req.id = *id;
        req.include = o->include;
        PullResult r;
        try {
            r = pull(cfg, req, progress);
        } catch (...) {
            progress.abandon();
            throw;
        }
        fmt::print("{}\n", r.model_path);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
