// SPDX-License-Identifier: Apache-2.0
#include "engine/moe.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rabbit {

void route_tokens(const float* logits, size_t n, size_t experts, size_t k, bool renormalise, int32_t* chosen,
                  float* weights) {
    RABBIT_CHECK(k >= 1 && k <= experts, "route_tokens: k outside 1..experts");
    std::vector<float> p(experts);
    std::vector<int32_t> order(experts);
    for (size_t t = 0; t < n; ++t) {
        const float* z = logits + t * experts;
        const float top = *std::max_element(z, z + experts);
        float sum = 0;
        for (size_t e = 0; e < experts; ++e) sum += p[e] = std::exp(z[e] - top);
        for (size_t e = 0; e < experts; ++e) p[e] /= sum;
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + long(k), order.end(),
                          [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
        float kept = 0;
        for (size_t j = 0; j < k; ++j) kept += p[order[j]];
        for (size_t j = 0; j < k; ++j) {
            chosen[t * k + j] = order[j];
            weights[t * k + j] = renormalise ? p[order[j]] / kept : p[order[j]];
        }
    }
}

ExpertBatches group_by_expert(const int32_t* chosen, const float* weights, size_t n, size_t k, size_t experts) {
    std::vector<size_t> count(experts, 0);
    for (size_t i = 0; i < n * k; ++i) {
        RABBIT_CHECK(chosen[i] >= 0 && size_t(chosen[i]) < experts, "group_by_expert: expert index out of range");
        ++count[size_t(chosen[i])];
    }
    ExpertBatches b;
    b.begin.push_back(0);
    std::vector<size_t> at(experts, 0);
    for (size_t e = 0; e < experts; ++e) {
        if (!count[e]) continue;
        at[e] = b.begin.back();
        b.experts.push_back(uint32_t(e));
        b.begin.push_back(b.begin.back() + count[e]);
    }
    b.token.resize(n * k);
    b.weight.resize(n * k);
    // Tokens in ascending order within an expert, as transformers' index_add_ takes them.
    for (size_t t = 0; t < n; ++t)
        for (size_t j = 0; j < k; ++j) {
            const size_t slot = at[size_t(chosen[t * k + j])]++;
            b.token[slot] = uint32_t(t);
            b.weight[slot] = weights[t * k + j];
        }
    return b;
}

} // namespace rabbit
