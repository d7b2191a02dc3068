// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/attention_choice.h"

namespace rabbit {

const char* prefill_attention_name(PrefillAttention a) {
    switch (a) {
    case PrefillAttention::rabbit: return "rabbit";
    case PrefillAttention::cudnn: return "cudnn";
    case PrefillAttention::automatic: break;
    }
    return "auto";
}

std::string cudnn_refusal(const AttentionChoiceInput& in) {
    // In the order a user can act on: the build, the device, the model, the part.
    if (in.mode == PrefillAttention::rabbit) return "--attention rabbit";
    if (!in.cudnn_built) return "this rabbit was built without cuDNN";
    if (!in.cudnn_usable) return "cuDNN could not be started on this device";
    if (in.sm_major < 8) return "cuDNN's fused attention needs sm_80 or newer";
    if (!in.q16) return "the compute type is f32 (cuDNN's fused attention takes bf16 or f16)";
    if (!in.cache_is_compute) return "the KV cache's type is not the compute type";
    const int max_d = in.sm_major >= 9 ? 256 : 128;
    if (in.head_dim % 8 != 0 || in.head_dim <= 0 || in.head_dim > max_d)
        return "head_dim " + std::to_string(in.head_dim) + " is not one cuDNN's fused attention takes";
    if (in.tree) return "a draft tree's mask";
    if (in.window) return "a sliding window";
    if (in.host_cache) return "the KV cache is in host memory";
    if (in.mode == PrefillAttention::automatic && in.tokens < k_cudnn_min_tokens)
        return "a part of " + std::to_string(in.tokens) + " tokens (cuDNN from " + std::to_string(k_cudnn_min_tokens) + ")";
    return "";
}

AttentionImpl choose_prefill_attention(const AttentionChoiceInput& in) {
    return cudnn_refusal(in).empty() ? AttentionImpl::cudnn : AttentionImpl::rabbit;
}

} // namespace rabbit
