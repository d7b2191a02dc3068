// SPDX-License-Identifier: Apache-2.0
// The op table's CUDA runners: each puts a case's inputs on the device, launches the kernel
// the engine launches (launch_checked), reads its outputs, times it in the timing mode
// (time_kernel), and returns the outputs for the table to compare with the reference. What only the kernel can
// get wrong (writing outside its output, reading what it must not) is required here.
#include "ops.h"

#ifdef RABBIT_HAVE_CUDA
#include "attention.cuh"
#include "backend/cuda/gemm.h"
#include "convert.cuh"
#include "embed.cuh"
#include "rmsnorm.cuh"
#include "rope.cuh"
#include "sample.cuh"
#include "swiglu.cuh"

#include <cublas_v2.h>

#include <cmath>
#include <cstring>
#include <memory>

namespace rabbit::test {

Outputs cuda_rmsnorm(const RmsNormCase& c, const RmsNormData& d) {
    const Elem out_type = elem_of(c.out);
    const size_t count = size_t(c.rows) * c.n;
    DevBuf dx = to_device(d.x), dd = to_device(d.delta), ds = to_device(d.delta_scale), db = to_device(d.bias);
    DevBuf dw = to_device(d.weight), dout(count * elem_size(out_type));
    dout.fill(0xff);
    RmsNormParams p;
    p.x = dx.get<float>();
    p.delta = c.residual != Residual::none ? dd.get<float>() : nullptr;
    p.delta_scale = c.residual == Residual::delta_scaled ? ds.get<float>() : nullptr;
    p.bias = c.residual == Residual::delta_bias || c.residual == Residual::delta_scaled ? db.get<float>() : nullptr;
    p.weight = dw.get<float>();
    p.eps = 1e-6f;
    p.rows = c.rows;
    p.n = c.n;
    p.out = dout.get();
    p.out_type = out_type;
    const auto launch = [&] { return launch_rmsnorm(p, nullptr); };
    launch_checked(launch);
    // The residual stream, written back when there is a delta, untouched otherwise.
    const Outputs out = {got("out", download_as_f32(dout, count, out_type)), got("residual", to_host<float>(dx, count))};
    time_kernel(launch);
    return out;
}

Outputs cuda_qkv_rope(const QkvRopeCase& c, const QkvRopeData& d) {
    const Elem cache_type = elem_of(c.cache);
    const int D = c.head_dim, row = (c.heads + 2 * c.kv_heads) * D;
    const int64_t pos = k_qkv_pos, cache_len = pos + c.tokens + k_qkv_cache_spare;
    DevBuf dqkv = to_device(d.qkv), dbias = to_device(d.bias), dqn = to_device(d.q_norm), dkn = to_device(d.k_norm);
    DevBuf dcos = to_device(d.cos), dsin = to_device(d.sin);
    const size_t cache_elems = size_t(c.kv_heads) * cache_len * D, es = elem_size(cache_type);
    DevBuf dk(cache_elems * es), dv(cache_elems * es);
    dk.fill(0xff);
    dv.fill(0xff);
    QkvRopeParams p;
    p.qkv = dqkv.get<float>();
    p.bias = c.bias ? dbias.get<float>() : nullptr;
    p.q_norm = c.norm ? dqn.get<float>() : nullptr;
    p.k_norm = c.norm ? dkn.get<float>() : nullptr;
    p.cos = dcos.get<float>();
    p.sin = dsin.get<float>();
    p.eps = 1e-6f;
    p.tokens = c.tokens;
    p.heads = c.heads;
    p.kv_heads = c.kv_heads;
    p.head_dim = D;
    p.k_cache = dk.get();
    p.v_cache = dv.get();
    p.cache_type = cache_type;
    p.cache_len = cache_len;
    p.pos = pos;
    const auto launch = [&] { return launch_qkv_rope(p, nullptr); };
    launch_checked(launch);

    const std::vector<float> got_qkv = to_host<float>(dqkv, d.qkv.size());
    std::vector<float> q;
    for (int t = 0; t < c.tokens; ++t)
        q.insert(q.end(), got_qkv.begin() + long(t) * row, got_qkv.begin() + long(t) * row + c.heads * D);
    Outputs out = {got("q", q)};
    // The new positions hold the keys and values, token by token; every other position is untouched.
    for (int which = 0; which < 2; ++which) {
        const std::vector<uint8_t> bytes = to_host<uint8_t>(which == 0 ? dk : dv, cache_elems * es);
        const std::vector<float> all = decode(bytes, cache_type);
        std::vector<float> fresh(size_t(c.tokens) * c.kv_heads * D);
        size_t untouched_bad = 0;
        for (int g = 0; g < c.kv_heads; ++g)
            for (int64_t j = 0; j < cache_len; ++j)
                for (int i = 0; i < D; ++i) {
                    const size_t at = (size_t(g) * cache_len + j) * D + i;
                    if (j >= pos && j < pos + c.tokens)
                        fresh[(size_t(j - pos) * c.kv_heads + g) * D + i] = all[at];
                    else
                        for (size_t b = 0; b < es; ++b) untouched_bad += bytes[at * es + b] != 0xff;
                }
        INFO((which == 0 ? "k" : "v") << " cache");
        REQUIRE(untouched_bad == 0);
        out.push_back(got(which == 0 ? "k cache" : "v cache", fresh));
    }
    time_kernel(launch);
    return out;
}

Outputs cuda_attention(const AttentionCase& c, const AttentionData& d) {
    const Elem cache_type = elem_of(c.cache), out_type = elem_of(c.out);
    const std::vector<uint8_t> kb = encode(d.k, cache_type), vb = encode(d.v, cache_type);
    DevBuf dqkv = to_device(d.qkv);
    const size_t out_elems = size_t(c.tokens) * c.heads * c.head_dim;
    DevBuf dout(out_elems * elem_size(out_type));
    dout.fill(0xff); // NaN: every element must be written
    DevBuf ws(k_attention_workspace);
    ws.fill(0xff);
    std::unique_ptr<DevBuf> dk, dv;
    std::unique_ptr<MappedBuf> hk, hv;
    AttentionParams p;
    if (c.mapped) {
        hk = std::make_unique<MappedBuf>(kb.size());
        hv = std::make_unique<MappedBuf>(vb.size());
        std::memcpy(hk->host(), kb.data(), kb.size());
        std::memcpy(hv->host(), vb.data(), vb.size());
        p.k_cache = hk->dev();
        p.v_cache = hv->dev();
    } else {
        dk = std::make_unique<DevBuf>(kb.data(), kb.size());
        dv = std::make_unique<DevBuf>(vb.data(), vb.size());
        p.k_cache = dk->get();
        p.v_cache = dv->get();
    }
    p.q = dqkv.get<float>();
    p.q_stride = d.q_stride;
    p.cache_type = cache_type;
    p.cache_len = d.cache_len;
    p.out = dout.get();
    p.out_type = out_type;
    p.tokens = c.tokens;
    p.heads = c.heads;
    p.kv_heads = c.kv_heads;
    p.head_dim = c.head_dim;
    p.pos = c.pos;
    p.window = c.window;
    p.scale = d.scale;
    p.workspace = ws.get();
    p.sm_count = c.sm_count < 0 ? sm_count() : c.sm_count;
    p.smem_optin = attention_ready();
    const auto launch = [&] { return launch_attention(p, nullptr); };
    launch_checked(launch);
    const Outputs out = {got("out", download_as_f32(dout, out_elems, out_type))};
    time_kernel(launch);
    return out;
}

Outputs cuda_swiglu(const SwigluCase& c, const SwigluData& d) {
    const Elem out_type = elem_of(c.out);
    const size_t count = size_t(c.tokens) * c.inter;
    DevBuf dgu = to_device(d.gate_up), dout(count * elem_size(out_type)), dscale(size_t(c.tokens) * sizeof(float));
    dout.fill(0xff);
    SwigluParams p;
    p.gate_up = dgu.get<float>();
    p.tokens = c.tokens;
    p.inter = c.inter;
    p.out = dout.get();
    p.out_type = out_type;
    p.row_scale = c.row_scale ? dscale.get<float>() : nullptr;
    const auto launch = [&] { return launch_swiglu(p, nullptr); };
    launch_checked(launch);
    Outputs out = {got("out", download_as_f32(dout, count, out_type))};
    if (c.row_scale) out.push_back(got("row scale", to_host<float>(dscale, size_t(c.tokens))));
    time_kernel(launch);
    return out;
}

Outputs cuda_embed(const EmbedCase& c, const EmbedData& d) {
    DevBuf dtable = to_device(d.table), dids = to_device(d.ids), dout(size_t(c.tokens) * c.hidden * sizeof(float));
    EmbedParams p;
    p.table = dtable.get();
    p.table_type = elem_of(c.table);
    p.vocab = k_embed_vocab;
    p.hidden = c.hidden;
    p.ids = dids.get<int32_t>();
    p.tokens = c.tokens;
    p.out = dout.get<float>();
    const auto launch = [&] { return launch_embed(p, nullptr); };
    launch_checked(launch);
    const Outputs out = {got("out", to_host<float>(dout, size_t(c.tokens) * c.hidden))};
    time_kernel(launch);
    return out;
}

// y = x W^T through cuBLAS with the transposes and leading dimensions gemm() passes; y's
// columns past `rows` are untouched.
Outputs cuda_gemm(const GemmCase& c, const GemmData& d) {
    static cublasHandle_t blas = [] { // one handle for the process, as an engine has one
        cublasHandle_t h = nullptr;
        REQUIRE(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
        return h;
    }();
    const int64_t ldy = c.rows + c.ldy_pad;
    const std::vector<uint8_t> x = encode(d.x, elem_of(c.x));
    DevBuf dw = to_device(d.w), dx = to_device(x), dy(size_t(c.tokens * ldy) * sizeof(float));
    dy.fill(0xff);
    GemmParams g;
    g.w = dw.get();
    g.w_type = elem_of(c.w);
    g.rows = c.rows;
    g.cols = c.cols;
    g.x = dx.get();
    g.x_type = elem_of(c.x);
    g.tokens = c.tokens;
    g.y = dy.get<float>();
    g.ldy = ldy;
    const auto launch = [&] {
        gemm(blas, g);
        return cudaGetLastError();
    };
    launch_checked(launch);
    const std::vector<float> y = to_host<float>(dy, size_t(c.tokens * ldy));
    std::vector<float> out;
    size_t touched = 0;
    for (int64_t t = 0; t < c.tokens; ++t) {
        out.insert(out.end(), y.begin() + t * ldy, y.begin() + t * ldy + c.rows);
        for (int64_t r = c.rows; r < ldy; ++r) touched += !std::isnan(y[size_t(t * ldy + r)]);
    }
    REQUIRE(touched == 0);
    time_kernel(launch);
    return {got("y", out)};
}

Outputs cuda_bf16_to_f16(const ConvertCase& c, const ConvertData& d) {
    DevBuf buf = to_device(d.bits);
    uint16_t* data = buf.get<uint16_t>() + c.offset;
    const auto launch = [&] { return launch_bf16_to_f16(data, c.count, nullptr); };
    launch_checked(launch);
    const std::vector<uint16_t> bits = to_host<uint16_t>(buf, d.bits.size());
    std::vector<float> f16;
    size_t guards_bad = 0;
    for (size_t i = 0; i < bits.size(); ++i) {
        if (i < size_t(c.offset) || i >= size_t(c.offset + c.count)) guards_bad += bits[i] != k_guard;
        else f16.push_back(f16_to_f32(bits[i]));
    }
    REQUIRE(guards_bad == 0);
    time_kernel(launch);
    return {got("f16", f16)};
}

Outputs cuda_penalty(const PenaltyCase& c, const PenaltyData& d) {
    DevBuf dl = to_device(d.logits), di = to_device(d.ids);
    const auto launch = [&] {
        const cudaError_t e = launch_penalize(dl.get<float>(), c.n, di.get<int32_t>(), int(d.ids.size()), c.penalty, nullptr);
        return e != cudaSuccess ? e : launch_temperature(dl.get<float>(), c.n, c.temperature, nullptr);
    };
    launch_checked(launch);
    const Outputs out = {got("logits", to_host<float>(dl, size_t(c.n)))};
    time_kernel(launch);
    return out;
}

Outputs cuda_argmax(const ArgmaxCase& c, const LogitsData& d) {
    DevBuf dl = to_device(d.logits), dout(sizeof(int32_t)), ws(sample_workspace_bytes(c.n));
    const auto launch = [&] { return launch_argmax(dl.get<float>(), c.n, dout.get<int32_t>(), ws.get(), nullptr); };
    launch_checked(launch);
    const Outputs out = {got("id", as_floats(to_host<int32_t>(dout, 1)))};
    time_kernel(launch);
    return out;
}

Outputs cuda_topk(const TopkCase& c, const LogitsData& d) {
    DevBuf dl = to_device(d.logits), dv(size_t(c.k) * sizeof(float)), di(size_t(c.k) * sizeof(int32_t));
    DevBuf ws(sample_workspace_bytes(c.n));
    const auto launch = [&] {
        return launch_topk(dl.get<float>(), c.n, c.k, dv.get<float>(), di.get<int32_t>(), ws.get(), nullptr);
    };
    launch_checked(launch);
    const Outputs out = {got("ids", as_floats(to_host<int32_t>(di, size_t(c.k)))), got("values", to_host<float>(dv, size_t(c.k)))};
    time_kernel(launch);
    return out;
}

} // namespace rabbit::test

#endif // RABBIT_HAVE_CUDA
