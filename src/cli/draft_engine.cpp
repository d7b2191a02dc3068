// SPDX-License-Identifier: Apache-2.0
#include "cli/draft_engine.h"

#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/units.h"
#include "format/split_model.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#endif

namespace rabbit {

namespace {

uint64_t weight_bytes(const SplitModel& m) {
    uint64_t n = 0;
    for (const auto& u : m.manifest().units) n += u.layout.data_size;
    return n;
}

// The draft on the CPU engine, every unit resident in RAM (it runs for every drafted token),
// at the target's context or its own maximum.
MadeEngine cpu_draft(const SplitModel& draft, const EngineRequest& target, uint64_t target_ctx) {
    EngineRequest req;
    req.ram_budget = weight_bytes(draft);
    req.ctx = std::min<uint64_t>(target_ctx, draft.config().max_context());
    req.batch = target.batch;
    req.threads = target.threads;
    req.act_quant = target.act_quant;
    return make_engine(draft, req);
}

PlacedEngines on_cpu(const SplitModel& target, const EngineRequest& request, const SplitModel& draft) {
    PlacedEngines e;
    e.target = make_engine(target, request);
    e.draft = cpu_draft(draft, request, e.target.engine->context());
    return e;
}

} // namespace

DraftDevice draft_device_of(const std::string& name) {
    return name == "cpu" ? DraftDevice::cpu : name == "cuda" ? DraftDevice::cuda : DraftDevice::automatic;
}

void add_draft_device_option(CLI::App* sub, std::string& name) {
    sub->add_option("--draft-device", name,
                    "Where a draft model runs: cuda (resident in VRAM beside a target on the GPU, its share taken off "
                    "--vram-budget), cpu (resident in RAM), or auto: cuda when the target runs on the GPU and both fit, "
                    "else cpu (default auto)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
}

PlacedEngines make_engines_with_draft(const SplitModel& target, const EngineRequest& request, const SplitModel& draft,
                                      DraftDevice where) {
    if (where == DraftDevice::cuda && !request.device.cuda)
        throw Error(ExitCode::usage, "--draft-device cuda goes with a target on the GPU (--device cuda)");
    if (!request.device.cuda || where == DraftDevice::cpu) return on_cpu(target, request, draft);
#ifdef RABBIT_HAVE_CUDA
    const bool forced = where == DraftDevice::cuda;
    auto fall_back = [&](const Error& why) {
        spdlog::warn("--draft {}: not on the GPU ({}); running it on the CPU, resident in RAM (--draft-device cuda "
                     "refuses instead)",
                     draft.dir(), why.what());
    };
    // The draft first: the target then finds the free memory without it, and the budget's
    // share that is the draft's is known before the target plans.
    EngineRequest dreq;
    dreq.device = request.device;
    dreq.vram_budget = request.vram_budget;
    dreq.ctx = std::min<uint64_t>(request.ctx ? request.ctx : target.config().max_context(), draft.config().max_context());
    dreq.batch = request.batch;
    dreq.all_resident = true;
    PlacedEngines e;
    try {
        e.draft = make_engine(draft, dreq);
    } catch (const Error& x) {
        if (x.code() != ExitCode::resources) throw;
        if (forced) throw Error(x.code(), std::string("--draft-device cuda: ") + x.what());
        fall_back(x);
        return on_cpu(target, request, draft);
    }
    EngineRequest treq = request;
    treq.draft_bytes = e.draft.cuda->resident_share();
    try {
        e.target = make_engine(target, treq);
    } catch (const Error& x) {
        if (x.code() != ExitCode::resources) throw;
        if (forced) throw Error(x.code(), std::string("--draft-device cuda: ") + x.what());
        e.draft = MadeEngine{}; // its VRAM back before the target plans again
        fall_back(x);
        return on_cpu(target, request, draft);
    }
    return e;
#else
    return on_cpu(target, request, draft);
#endif
}

std::string draft_placement(const MadeEngine& draft) {
#ifdef RABBIT_HAVE_CUDA
    if (const CudaEngine* cuda = draft.cuda) {
        const MemoryPlan& p = cuda->plan();
        return fmt::format("on the GPU, {} of VRAM (weights {}, KV cache {} for {} positions)",
                           format_bytes(cuda->resident_share()), format_bytes(p.resident_bytes),
                           format_bytes(p.kv_cache_bytes), cuda->context());
    }
#endif
    return fmt::format("on the CPU, {} resident in RAM", format_bytes(draft.cpu ? draft.cpu->units().resident_bytes() : 0));
}

} // namespace rabbit
