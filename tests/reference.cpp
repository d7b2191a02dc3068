// SPDX-License-Identifier: Apache-2.0
#include "reference.h"

#include "common/dtype.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace rabbit::ref {

namespace {

// x[i] = weight[i] * x[i] / sqrt(mean(x^2) + eps) over one row of n.
void rmsnorm_row(double* x, const float* weight, size_t n, double eps) {
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
    const double inv = 1.0 / std::sqrt(ss / double(n) + eps);
    for (size_t i = 0; i < n; ++i) x[i] = double(weight[i]) * (x[i] * inv);
}

} // namespace

std::vector<double> rmsnorm(const std::vector<float>& x, const std::vector<float>& weight, size_t n, double eps) {
    std::vector<double> out(x.begin(), x.end());
    for (size_t r = 0; r < x.size() / n; ++r) rmsnorm_row(out.data() + r * n, weight.data(), n, eps);
    return out;
}

std::vector<float> residual_add(const std::vector<float>& x, const std::vector<float>& delta,
                                const std::vector<float>& delta_scale, const std::vector<float>& bias, size_t n) {
    std::vector<float> out = x;
    for (size_t i = 0; i < x.size(); ++i) {
        float d = delta[i];
        if (!delta_scale.empty()) d *= delta_scale[i / n];
        if (!bias.empty()) d += bias[i % n];
        out[i] = x[i] + d;
    }
    return out;
}

std::vector<double> swiglu(const std::vector<float>& gate_up, size_t inter) {
    const size_t tokens = gate_up.size() / (2 * inter);
    std::vector<double> out(tokens * inter);
    for (size_t t = 0; t < tokens; ++t)
        for (size_t i = 0; i < inter; ++i) {
            const double g = gate_up[t * 2 * inter + i], u = gate_up[t * 2 * inter + inter + i];
            out[t * inter + i] = g / (1.0 + std::exp(-g)) * u;
        }
    return out;
}

void rope(double* x, const float* cos, const float* sin, size_t head_dim) {
    const size_t half = head_dim / 2;
    for (size_t i = 0; i < half; ++i) {
        const double a = x[i], b = x[i + half], c = cos[i], s = sin[i];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

std::vector<double> softmax(const std::vector<float>& x) {
    double max = -INFINITY, sum = 0;
    for (float v : x) max = std::max(max, double(v));
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) sum += y[i] = std::exp(double(x[i]) - max);
    for (double& v : y) v /= sum;
    return y;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
    return s;
}

QkvRope qkv_rope(const std::vector<float>& qkv, const std::vector<float>& bias, const std::vector<float>& q_norm,
                 const std::vector<float>& k_norm, const std::vector<float>& cos, const std::vector<float>& sin,
                 double eps, int tokens, int heads, int kv_heads, int head_dim) {
    const size_t D = size_t(head_dim), half = D / 2, slots = size_t(heads + 2 * kv_heads), row = slots * D;
    QkvRope r;
    r.q.resize(size_t(tokens) * heads * D);
    r.k.resize(size_t(tokens) * kv_heads * D);
    r.v.resize(r.k.size());
    std::vector<double> x(D);
    for (size_t t = 0; t < size_t(tokens); ++t)
        for (size_t slot = 0; slot < slots; ++slot) {
            for (size_t d = 0; d < D; ++d) {
                const size_t i = slot * D + d;
                x[d] = double(qkv[t * row + i]) + (bias.empty() ? 0.0 : double(bias[i]));
            }
            const bool is_q = slot < size_t(heads), is_v = slot >= size_t(heads + kv_heads);
            if (!is_v) {
                const std::vector<float>& norm = is_q ? q_norm : k_norm;
                if (!norm.empty()) rmsnorm_row(x.data(), norm.data(), D, eps);
                rope(x.data(), cos.data() + t * half, sin.data() + t * half, D);
            }
            double* dst = is_q ? &r.q[(t * heads + slot) * D]
                          : is_v ? &r.v[(t * kv_heads + slot - heads - kv_heads) * D]
                                 : &r.k[(t * kv_heads + slot - heads) * D];
            std::copy(x.begin(), x.end(), dst);
        }
    return r;
}

std::vector<double> attention(const std::vector<float>& q, int64_t q_stride, const std::vector<float>& k,
                              const std::vector<float>& v, const AttentionShape& s) {
    const int D = s.head_dim, group = s.heads / s.kv_heads;
    std::vector<double> out(size_t(s.tokens) * s.heads * D, 0.0), p;
    for (int t = 0; t < s.tokens; ++t) {
        const int64_t last = s.pos + t, first = s.window > 0 ? std::max<int64_t>(0, last + 1 - s.window) : 0;
        for (int h = 0; h < s.heads; ++h) {
            const int64_t g = h / group;
            const float* qh = q.data() + t * q_stride + int64_t(h) * D;
            p.assign(size_t(last - first + 1), 0.0);
            double mx = -INFINITY, sum = 0;
            for (int64_t j = first; j <= last; ++j) {
                const float* kj = k.data() + (g * s.cache_len + j) * D;
                double d = 0;
                for (int i = 0; i < D; ++i) d += double(qh[i]) * kj[i];
                mx = std::max(mx, p[size_t(j - first)] = d * s.scale);
            }
            for (double& x : p) sum += x = std::exp(x - mx);
            double* o = out.data() + (size_t(t) * s.heads + h) * D;
            for (int64_t j = first; j <= last; ++j) {
                const float* vj = v.data() + (g * s.cache_len + j) * D;
                const double w = p[size_t(j - first)] / sum;
                for (int i = 0; i < D; ++i) o[i] += w * vj[i];
            }
        }
    }
    return out;
}

std::vector<double> attention_scores(const std::vector<float>& q, const std::vector<float>& keys, size_t head_dim,
                                     size_t first, size_t end, double scale) {
    std::vector<double> s(end - first);
    for (size_t j = first; j < end; ++j) {
        double d = 0;
        for (size_t i = 0; i < head_dim; ++i) d += double(q[i]) * keys[j * head_dim + i];
        s[j - first] = scale * d;
    }
    return s;
}

std::vector<double> attention_values(const std::vector<float>& p, const std::vector<float>& values,
                                     size_t head_dim, size_t first, size_t end) {
    std::vector<double> out(head_dim, 0.0);
    for (size_t j = first; j < end; ++j)
        for (size_t i = 0; i < head_dim; ++i) out[i] += double(p[j]) * values[j * head_dim + i];
    return out;
}

std::vector<double> matmul(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& bias,
                           size_t rows, size_t cols) {
    const size_t tokens = x.size() / cols;
    std::vector<double> y(tokens * rows);
    for (size_t t = 0; t < tokens; ++t)
        for (size_t r = 0; r < rows; ++r) {
            double acc = bias.empty() ? 0.0 : double(bias[r]);
            for (size_t k = 0; k < cols; ++k) acc += double(x[t * cols + k]) * w[r * cols + k];
            y[t * rows + r] = acc;
        }
    return y;
}

std::vector<float> embed(const std::vector<float>& table, const std::vector<int32_t>& ids, size_t hidden) {
    std::vector<float> out(ids.size() * hidden);
    for (size_t t = 0; t < ids.size(); ++t)
        std::copy_n(table.begin() + long(size_t(ids[t]) * hidden), hidden, out.begin() + long(t * hidden));
    return out;
}

std::vector<uint16_t> bf16_to_f16(const std::vector<uint16_t>& bits) {
    std::vector<uint16_t> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) out[i] = f32_to_f16(bf16_to_f32(bits[i]));
    return out;
}

std::vector<float> penalize_and_scale(const std::vector<float>& logits, const std::vector<int32_t>& ids,
                                      float penalty, float temperature) {
    std::vector<float> out = logits;
    for (int32_t id : ids) {
        float& l = out[size_t(id)];
        l = l > 0 ? l / penalty : l * penalty;
    }
    for (float& l : out) l /= temperature;
    return out;
}

int32_t argmax(const std::vector<float>& logits) {
    size_t best = 0;
    for (size_t i = 1; i < logits.size(); ++i)
        if (logits[i] > logits[best]) best = i;
    return int32_t(best);
}

std::vector<int32_t> topk(const std::vector<float>& logits, size_t k) {
    std::vector<int32_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return logits[size_t(a)] > logits[size_t(b)]; });
    order.resize(k);
    return order;
}

} // namespace rabbit::ref
