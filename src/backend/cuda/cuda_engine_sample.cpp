// SPDX-License-Identifier: Apache-2.0
// Choosing the next token on the GPU (CudaEngine::step): the repetition penalty, then one id
// copied back (greedy), or k candidates (top-k); the whole vocabulary only for top-p or min-p
// without top-k.
#include "backend/cuda/cuda_engine_impl.h"

#include "sample.cuh"

#include "backend/cuda/check.h"
#include "common/error.h"

#include <algorithm>
#include <cstring>

namespace rabbit {

void CudaEngine::Impl::penalize(const std::vector<int32_t>& history, float penalty) {
    const int64_t vocab = c.vocab_size;
    const std::vector<int32_t> ids = penalised_ids(history, size_t(vocab));
    RABBIT_CHECK(ids.size() <= ctx, "more distinct ids in the context than positions");
    if (ids.empty()) return;
    std::memcpy(h_penal.get(), ids.data(), 4 * ids.size());
    RABBIT_CUDA_CHECK(
        cudaMemcpyAsync(fixed(Fixed::penalty_ids), h_penal.get(), 4 * ids.size(), cudaMemcpyHostToDevice, compute));
    RABBIT_CUDA_CHECK(launch_penalize(fixed<float>(Fixed::logits), vocab, fixed<int32_t>(Fixed::penalty_ids),
                                      int(ids.size()), penalty, compute));
}

int32_t CudaEngine::Impl::pick_greedy() {
    // h_result holds the top-k values, then the ids (top-k's, or the one argmax picked).
    int32_t* result_ids = reinterpret_cast<int32_t*>(h_result.as<uint8_t>() + plan.fixed.size(Fixed::topk_values));
    RABBIT_CUDA_CHECK(launch_argmax(fixed<float>(Fixed::logits), int64_t(c.vocab_size), fixed<int32_t>(Fixed::picked),
                                    fixed(Fixed::sample_workspace), compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(result_ids, fixed(Fixed::picked), 4, cudaMemcpyDeviceToHost, compute));
    wait_compute();
    return result_ids[0];
}

int32_t CudaEngine::Impl::pick_top_k(Sampler& sampler, int k) {
    float* vals = h_result.as<float>();
    int32_t* ids = reinterpret_cast<int32_t*>(h_result.as<uint8_t>() + plan.fixed.size(Fixed::topk_values));
    RABBIT_CUDA_CHECK(launch_topk(fixed<float>(Fixed::logits), int64_t(c.vocab_size), k, fixed<float>(Fixed::topk_values),
                                  fixed<int32_t>(Fixed::topk_ids), fixed(Fixed::sample_workspace), compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(vals, fixed(Fixed::topk_values), 4 * size_t(k), cudaMemcpyDeviceToHost, compute));
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(ids, fixed(Fixed::topk_ids), 4 * size_t(k), cudaMemcpyDeviceToHost, compute));
    wait_compute();
    return sampler.sample_sorted(std::vector<float>(vals, vals + k), std::vector<int32_t>(ids, ids + k));
}

int32_t CudaEngine::Impl::pick_from_all(Sampler& sampler) {
    const size_t vocab = c.vocab_size;
    flush_logits();
    RABBIT_CUDA_CHECK(cudaMemcpyAsync(h_logits.get(), fixed(Fixed::logits), 4 * vocab, cudaMemcpyDeviceToHost, compute));
    wait_compute();
    const float* row = h_logits.as<float>();
    return sampler.sample_scaled(std::vector<float>(row, row + vocab));
}

int32_t CudaEngine::step(const int32_t* tokens, size_t n, Sampler& sampler, const std::vector<int32_t>& history,
                         std::vector<float>* all_logits) {
    if (all_logits) return Engine::step(tokens, n, sampler, history, all_logits);
    Impl& e = *impl_;
    RABBIT_CHECK(n > 0, "step with no tokens");
    e.forward_passes({SlotTokens{0, tokens, n, 1}}, nullptr, [this](size_t first, size_t total) { begin_part(first, total); });
    e.track_memory();

    const SamplingParams& sp = sampler.params();
    if (sp.repetition_penalty != 1.0f) e.penalize(history, sp.repetition_penalty);
    if (sp.temperature <= 0.0f) return e.pick_greedy();
    const int64_t vocab = e.c.vocab_size;
    RABBIT_CUDA_CHECK(launch_temperature(e.fixed<float>(Fixed::logits), vocab, sp.temperature, e.compute));
    if (sp.top_k > 0 && sp.top_k <= k_topk_max) return e.pick_top_k(sampler, int(std::min<int64_t>(sp.top_k, vocab)));
    return e.pick_from_all(sampler);
}

} // namespace rabbit
