// SPDX-License-Identifier: Apache-2.0
// Which attention a prefill part of the CUDA engine runs: rabbit's kernel (kernels/attention.cu)
// or cuDNN's fused scaled-dot-product attention (backend/cuda/cudnn_attention.h). Plain C++, no
// CUDA: the choice is a pure function of the part and the device, tested on the CPU.
#pragma once

#include <cstdint>
#include <string>

namespace rabbit {

// --attention: auto (the choice below), rabbit (our kernel always) or cudnn (cuDNN wherever it
// can run the part at all, whatever its length: for comparing the two).
enum class PrefillAttention { automatic, rabbit, cudnn };
const char* prefill_attention_name(PrefillAttention a); // "auto", "rabbit", "cudnn"

// Parts of fewer tokens keep our kernel under --attention auto. Below a few hundred query rows
// our kernel's tiles fill the GPU as well as cuDNN's, and each new (tokens, positions) shape
// costs cuDNN a graph build (the cache holds it for the layers after). A first guess, to be
// measured on a GPU (scripts/gpu_check.sh, rabbit-sdpacheck); not yet measured.
constexpr int64_t k_cudnn_min_tokens = 256;

struct AttentionChoiceInput {
    PrefillAttention mode = PrefillAttention::automatic;
    bool cudnn_built = false;   // this binary links cuDNN (a real CUDA build that found it)
    bool cudnn_usable = false;  // its handle was made on this device
    int sm_major = 0;           // the device's compute capability
    bool q16 = false;           // the compute type (attention's output) is bf16 or f16
    bool cache_is_compute = false; // the KV cache's type is the compute type (cuDNN reads Q, K, V
                                   // and writes O in one type)
    int64_t tokens = 0;         // query rows of the part (one sequence's run)
    int head_dim = 0;
    bool tree = false;          // a draft tree's mask: cuDNN's causal mask cannot say it
    bool window = false;        // a sliding window cuts the part's positions
    bool host_cache = false;    // the cache is in host memory (read over the link or on the CPU)
};

enum class AttentionImpl { rabbit, cudnn };

// cuDNN for a part when --attention allows it and every condition holds: cuDNN built and
// usable, sm_80 or newer, 16-bit compute type equal to the cache's, a head size cuDNN's flash
// attention takes (a multiple of 8, at most 128; 256 on sm_90), no tree mask, no sliding
// window, the cache in VRAM, and (auto) at least k_cudnn_min_tokens tokens. Else our kernel,
// which also does every decode step (tokens below the threshold) and all of sm_75.
AttentionImpl choose_prefill_attention(const AttentionChoiceInput& in);

// Why a part that could not take cuDNN did not ("" when it can), for -v.
std::string cudnn_refusal(const AttentionChoiceInput& in);

} // namespace rabbit
