// SPDX-License-Identifier: Apache-2.0
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace rabbit {

int32_t argmax(const std::vector<float>& v) {
    return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); // first of equal maxima
}

std::vector<int32_t> penalised_ids(const std::vector<int32_t>& history, size_t vocab) {
    std::vector<int32_t> ids;
    for (int32_t id : history)
        if (id >= 0 && size_t(id) < vocab) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

double TokenDistribution::of(int32_t id) const {
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == id) return p[i];
    return 0;
}

void Sampler::penalize(std::vector<float>& logits, const std::vector<int32_t>& history) const {
    if (p_.repetition_penalty == 1.0f) return;
    for (int32_t id : penalised_ids(history, logits.size())) {
        float& l = logits[size_t(id)];
        l = l > 0 ? l / p_.repetition_penalty : l * p_.repetition_penalty;
    }
}

int32_t Sampler::sample(std::vector<float>& logits, const std::vector<int32_t>& history) {
    penalize(logits, history);
    if (p_.temperature <= 0.0f) return argmax(logits);
    for (auto& l : logits) l /= p_.temperature;
    return sample_scaled(logits);
}

TokenDistribution Sampler::distribution(std::vector<float>& logits, const std::vector<int32_t>& history) const {
    penalize(logits, history);
    for (auto& l : logits) l /= p_.temperature;
    return scaled_distribution(logits);
}

int32_t Sampler::sample_scaled(const std::vector<float>& logits) { return draw(scaled_distribution(logits)); }

TokenDistribution Sampler::scaled_distribution(const std::vector<float>& logits) const {
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    // Only the first top_k are looked at: a partial sort is enough, stable by id among equals.
    auto before = [&](int32_t a, int32_t b) {
        return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b);
    };
    if (p_.top_k > 0 && size_t(p_.top_k) < order.size()) {
        std::partial_sort(order.begin(), order.begin() + p_.top_k, order.end(), before);
        order.resize(size_t(p_.top_k));
    } else {
        std::sort(order.begin(), order.end(), before);
    }
    std::vector<float> values(order.size());
    for (size_t i = 0; i < order.size(); ++i) values[i] = logits[size_t(order[i])];
    return kept(values, order);
}

int32_t Sampler::sample_sorted(const std::vector<float>& values, const std::vector<int32_t>& ids) {
    return draw(kept(values, ids));
}

int32_t Sampler::draw(const TokenDistribution& d) {
    std::discrete_distribution<size_t> pick(d.p.begin(), d.p.end());
    return d.ids[pick(rng_)];
}

double Sampler::uniform() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

TokenDistribution Sampler::kept(const std::vector<float>& values, const std::vector<int32_t>& ids) const {
    size_t keep = values.size();
    if (p_.top_k > 0) keep = std::min(keep, size_t(p_.top_k));
    // Probabilities over what is kept so far (softmax of the filtered logits).
    auto probs_of = [&](size_t n) {
        std::vector<double> p(n);
        const double max = values[0];
        double sum = 0;
        for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(double(values[i]) - max);
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
    return {std::vector<int32_t>(ids.begin(), ids.begin() + long(keep)), probs_of(keep)};
}

} // namespace rabbit
