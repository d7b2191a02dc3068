// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's choice between rabbit's attention kernel and cuDNN's fused attention
// (backend/cuda/attention_choice.h), per sequence's run of a pass: cuDNN's handle made once at
// init, where the device and the compute type allow it; each long prefill part's Q rounded to the
// compute type and handed to cuDNN, which reads the cache where it lies and writes attn's rows.
#include "backend/cuda/cuda_engine_impl.h"

#include "convert.cuh"
#include "workspace.h"

#include "backend/cuda/check.h"
#include "common/error.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace rabbit {

AttentionChoiceInput CudaEngine::Impl::attention_choice(const SlotRun& run) const {
    AttentionChoiceInput in;
    in.mode = opt.attention;
    in.cudnn_built = CudnnAttention::built();
    in.cudnn_usable = cudnn != nullptr;
    in.sm_major = prop.major;
    in.q16 = act != Elem::f32;
    in.cache_is_compute = kv_elem == act;
    in.tokens = int64_t(run.n);
    in.head_dim = int(c.head_dim);
    in.tree = tree_pass;
    in.window = c.sliding_window > 0 && run.pos + run.n > c.sliding_window;
    in.host_cache = seq[run.slot].host_k != nullptr;
    return in;
}

void CudaEngine::Impl::start_cudnn() {
    // Before the runtime's memory is measured: the handle's device memory is counted with
    // cuBLAS's (measure_runtime_overhead). Only where some part could use it.
    AttentionChoiceInput in;
    in.mode = opt.attention;
    in.cudnn_built = CudnnAttention::built();
    in.cudnn_usable = true;
    in.sm_major = prop.major;
    in.q16 = act != Elem::f32;
    in.cache_is_compute = kv_elem == act;
    in.tokens = k_cudnn_min_tokens;
    in.head_dim = int(c.head_dim);
    const std::string why = cudnn_refusal(in);
    if (!why.empty()) {
        if (opt.attention == PrefillAttention::cudnn) throw Error(ExitCode::unsupported, "--attention cudnn: " + why);
        spdlog::debug("attention: rabbit's kernel for every part ({})", why);
        return;
    }
    try {
        cudnn = std::make_unique<CudnnAttention>();
    } catch (const Error& e) {
        if (opt.attention == PrefillAttention::cudnn) throw;
        spdlog::debug("attention: rabbit's kernel for every part ({})", e.what());
        return;
    }
    spdlog::debug("attention: cuDNN's fused attention for prefill parts of {} tokens or more{}, rabbit's kernel "
                  "for the rest",
                  opt.attention == PrefillAttention::cudnn ? int64_t(1) : k_cudnn_min_tokens,
                  opt.attention == PrefillAttention::cudnn ? " (--attention cudnn)" : "");
}

bool CudaEngine::Impl::cudnn_attention(const SlotRun& run, const AttentionParams& a) {
    if (!cudnn || choose_prefill_attention(attention_choice(run)) != AttentionImpl::cudnn) return false;
    // Q as cuDNN takes it, [tokens, heads, head_dim] in the compute type, in `act` (the SwiGLU
    // output, unused from the qkv product until this layer's MLP): no buffer of its own.
    const size_t q_bytes = run.n * c.q_dim() * elem_size(act);
    if (q_bytes > plan.fixed.size(Fixed::act)) {
        note_attention(fmt::format("rabbit's kernel: a part's Q ({} bytes) is larger than the act buffer", q_bytes));
        return false;
    }
    RowsToElemParams r;
    r.src = a.q;
    r.src_stride = a.q_stride;
    r.dst = fixed(Fixed::act);
    r.dst_type = act;
    r.rows = int64_t(run.n);
    r.cols = int64_t(c.q_dim());
    CudnnSdpaArgs s;
    s.q = r.dst;
    s.k_cache = a.k_cache;
    s.v_cache = a.v_cache;
    s.out = a.out;
    s.elem = act;
    s.tokens = a.tokens;
    s.kv_len = a.pos + a.tokens;
    s.cache_len = a.cache_len;
    s.heads = a.heads;
    s.kv_heads = a.kv_heads;
    s.head_dim = a.head_dim;
    s.scale = a.scale;
    // The attention workspace: rabbit's kernel, which uses it otherwise, does not run beside.
    s.workspace = a.workspace;
    s.workspace_bytes = k_attention_workspace;
    RABBIT_CUDA_CHECK(launch_rows_to_elem(r, compute));
    if (!cudnn->run(s, compute)) {
        // Our kernel reads the f32 q, so the rounded copy is simply left unused.
        note_attention("rabbit's kernel: cuDNN has no engine for the shape: " + cudnn->refusal());
        return false;
    }
    ++cudnn_parts;
    note_attention("cuDNN's fused attention");
    return true;
}

void CudaEngine::Impl::note_attention(const std::string& what) {
    // Once per change, so that -v says which attention a prompt's parts took without a line per layer.
    if (what == attention_noted) return;
    attention_noted = what;
    spdlog::debug("prefill attention: {}", what);
}

} // namespace rabbit
