// SPDX-License-Identifier: Apache-2.0
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace rabbit {

int32_t argmax(const std::vector<float>& v) {
    return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); // first of equal maxima
}

int32_t Sampler::sample(std::vector<float>& logits, const std::vector<int32_t>& history) {
    const float neg_inf = -std::numeric_limits<float>::infinity();
    if (p_.repetition_penalty != 1.0f) {
        std::unordered_set<int32_t> seen(history.begin(), history.end());
        for (int32_t id : seen) {
            if (id < 0 || size_t(id) >= logits.size()) continue;
            float& l = logits[size_t(id)];
            l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
        }
    }
    if (p_.temperature <= 0.0f) return argmax(logits);
    for (auto& l : logits) l /= p_.temperature;

    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
    size_t keep = order.size();
    if (p_.top_k > 0) keep = std::min(keep, size_t(p_.top_k));
    // Probabilities over what is kept so far (softmax of the filtered logits).
    auto probs_of = [&](size_t n) {
        std::vector<double> p(n);
        const double max = logits[size_t(order[0])];
        double sum = 0;
        for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(double(logits[size_t(order[i])]) - max);
        for (auto& x : p) x /= sum;
        return p;
    };
    if (p_.top_p < 1.0f) {
        // Keep the smallest prefix whose probability reaches top_p (at least one token).
        std::vector<double> p = probs_of(keep);
        double cum = 0;
        size_t n = 0;
        while (n < keep) {
            cum += p[n++];
            if (cum >= double(p_.top_p)) break;
        }
        keep = std::max<size_t>(1, n);
    }
    if (p_.min_p > 0.0f) {
        std::vector<double> p = probs_of(keep);
        const double threshold = double(p_.min_p) * p[0];
        size_t n = 0;
        while (n < keep && p[n] >= threshold) ++n;
        keep = std::max<size_t>(1, n);
    }
    for (size_t i = keep; i < order.size(); ++i) logits[size_t(order[i])] = neg_inf;
    std::vector<double> p = probs_of(keep);
    std::discrete_distribution<size_t> pick(p.begin(), p.end());
    return order[pick(rng_)];
}

} // namespace rabbit
