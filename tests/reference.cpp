// SPDX-License-Identifier: Apache-2.0
#include "reference.h"

#include "common/dtype.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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

namespace rabbit::ref {

namespace {

float half(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

// One block of a 32-element type: d at 0, then (q4_1, q5_1) m, then (q5_*) qh, then qs.
void dequantize_legacy(int type, const uint8_t* p, float* out) {
    const float d = half(p);
    if (type == 8) { // Q8_0
        for (int j = 0; j < 32; ++j) out[j] = d * float(int8_t(p[2 + j]));
        return;
    }
    const bool has_min = type == 3 || type == 7, five = type == 6 || type == 7;
    const float m = has_min ? half(p + 2) : 0.0f;
    const uint8_t* qh = p + (has_min ? 4 : 2);
    const uint8_t* qs = qh + (five ? 4 : 0);
    uint32_t h = 0;
    if (five) std::memcpy(&h, qh, 4);
    for (int j = 0; j < 32; ++j) {
        int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
        if (five) q |= int((h >> j) & 1) << 4;
        if (has_min) out[j] = d * float(q) + m;
        else out[j] = d * float(q - (five ? 16 : 8));
    }
}

// The k-quants' 6-bit scale and min of group g from the 12 bytes (q4_k, q5_k).
void scale_min(const uint8_t* s, int g, int& sc, int& mn) {
    if (g < 4) {
        sc = s[g] & 63, mn = s[g + 4] & 63;
    } else {
        sc = (s[g + 4] & 15) | ((s[g - 4] >> 6) << 4);
        mn = (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
    }
}

void dequantize_k(int type, const uint8_t* p, float* out) {
    for (int e = 0; e < 256; ++e) {
        const int half_i = e / 128, in_half = e % 128, l = e % 32, plane = in_half / 32;
        if (type == 10) { // Q2_K: scales[16], qs[64], d, dmin
            const float d = half(p + 80), dmin = half(p + 82);
            const uint8_t sc = p[e / 16];
            const int q = (p[16 + 32 * half_i + l] >> (2 * plane)) & 3;
            out[e] = d * float(sc & 15) * float(q) - dmin * float(sc >> 4);
        } else if (type == 11) { // Q3_K: hmask[32], qs[64], scales[12], d
            const float d = half(p + 108);
            const uint8_t* s = p + 96;
            const int g = e / 16;
            const int low = g < 8 ? s[g] & 15 : s[g - 8] >> 4, high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
            const int q = ((p[32 + 32 * half_i + l] >> (2 * plane)) & 3) - (((p[l] >> (e / 32)) & 1) ? 0 : 4);
            out[e] = d * float((low | high << 4) - 32) * float(q);
        } else if (type == 12 || type == 13) { // Q4_K / Q5_K: d, dmin, scales[12], (qh[32],) qs
            const float d = half(p), dmin = half(p + 2);
            int sc, mn;
            scale_min(p + 4, e / 32, sc, mn);
            const uint8_t* qs = p + (type == 12 ? 16 : 48);
            int q = (qs[32 * (e / 64) + l] >> (4 * ((e / 32) & 1))) & 15;
            if (type == 13) q |= ((p[16 + l] >> (e / 32)) & 1) << 4;
            out[e] = d * float(sc) * float(q) - dmin * float(mn);
        } else { // Q6_K: ql[128], qh[64], scales[16] (signed), d
            const float d = half(p + 208);
            const int low = (p[64 * half_i + in_half % 64] >> (4 * (in_half / 64))) & 15;
            const int high = (p[128 + 32 * half_i + l] >> (2 * plane)) & 3;
            out[e] = d * float(int8_t(p[192 + e / 16])) * float((low | high << 4) - 32);
        }
    }
}

} // namespace

std::vector<float> dequantize(int type, const uint8_t* blocks, size_t n) {
    const bool k = type >= 10;
    const size_t bs = k ? 256 : 32;
    const size_t bb = type == 8 ? 34 : type == 2 ? 18 : type == 3 ? 20 : type == 6 ? 22 : type == 7 ? 24
                    : type == 10 ? 84 : type == 11 ? 110 : type == 12 ? 144 : type == 13 ? 176 : 210;
    std::vector<float> out(n);
    for (size_t b = 0; b < n / bs; ++b) {
        if (k) dequantize_k(type, blocks + b * bb, out.data() + b * bs);
        else dequantize_legacy(type, blocks + b * bb, out.data() + b * bs);
    }
    return out;
}

Q8Act quantize_q8(const std::vector<float>& x, size_t block) {
    Q8Act a;
    a.block = block;
    a.q.resize(x.size());
    for (size_t b = 0; b < x.size() / block; ++b) {
        float amax = 0.0f;
        for (size_t i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[b * block + i]));
        const float d = amax >= 1e-30f ? amax / 127.0f : 0.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        for (size_t i = 0; i < block; ++i) a.q[b * block + i] = int8_t(std::nearbyint(x[b * block + i] * id));
        a.d.push_back(d);
    }
    return a;
}

std::vector<double> matmul_q8(const Q8Act& x, const std::vector<float>& w, const std::vector<float>& bias,
                              size_t rows, size_t cols, std::vector<double>* mag) {
    const size_t tokens = x.q.size() / cols, nb = cols / x.block;
    std::vector<double> y(tokens * rows), m(tokens * rows);
    for (size_t t = 0; t < tokens; ++t)
        for (size_t r = 0; r < rows; ++r) {
            double acc = bias.empty() ? 0.0 : double(bias[r]), abs = bias.empty() ? 0.0 : std::fabs(bias[r]);
            for (size_t b = 0; b < nb; ++b) {
                double s = 0, sa = 0;
                for (size_t i = b * x.block; i < (b + 1) * x.block; ++i) {
                    s += double(w[r * cols + i]) * x.q[t * cols + i];
                    sa += std::fabs(double(w[r * cols + i]) * x.q[t * cols + i]);
                }
                acc += double(x.d[t * nb + b]) * s;
                abs += double(x.d[t * nb + b]) * sa;
            }
            y[t * rows + r] = acc;
            m[t * rows + r] = abs;
        }
    if (mag) *mag = std::move(m);
    return y;
}

} // namespace rabbit::ref
