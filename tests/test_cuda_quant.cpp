// SPDX-License-Identifier: Apache-2.0
// The quantized-weight kernels (kernels/quant.cu) and the product dispatch of the CUDA engine
// (backend/cuda/gemm.cpp's weight_product) against plain loops: the blocks dequantized on the
// host with common/quant.h, then an f32 product accumulated in double. Every GGUF type, 1..8
// tokens (the decode kernel) and prefill sizes (tiles dequantized for cuBLAS), odd row counts,
// a ldy wider than the rows, every activation type. Tagged [gpu][quant].
#include "engine_helpers.h"
#include "genmodel.h"
#include "gpu.h"
#include "helpers.h"
#include "engine/memory_plan.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "quant.cuh"

#include "backend/cpu/cpu_engine.h"
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/gemm.h"
#include "common/hash.h"
#include "common/quant.h"
#include "format/manifest.h"
#include "format/split_model.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#ifdef RABBIT_CUDA_EMULATOR
#include "cuda_emu.h"
#endif

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#endif

using namespace rabbit;
using namespace rabbit::test;

TEST_CASE("the plan reserves the dequantization workspace for quantized weights only", "[plan][quant]") {
    MemoryPlanInput in;
    in.config = preset_spec("tiny-qwen3").config;
    in.units = {{"embed", UnitKind::embed, 1 << 20}, {"layer.0", UnitKind::layer, 1 << 20},
                {"layer.1", UnitKind::layer, 1 << 20}, {"norm", UnitKind::final_norm, 4096},
                {"lm_head", UnitKind::lm_head, 1 << 20}};
    in.config.num_layers = 2;
    in.budget = 1ull << 30;
    in.ctx = 256;
    const MemoryPlan plain = plan_memory(in);
    REQUIRE(plain.fixed.size(Fixed::dequant_workspace) == 0);
    for (int how = 0; how < 2; ++how) {
        MemoryPlanInput q = in;
        if (how == 0) q.dequant = true;              // the CUDA engine's flag
        else q.weight_dtype = DType::q4_k;           // rabbit inspect's manifest dtype
        const MemoryPlan p = plan_memory(q);
        const uint64_t ws = p.fixed.size(Fixed::dequant_workspace);
        REQUIRE(ws >= (16u << 20)); // kernels/workspace.h's k_dequant_workspace
        REQUIRE(p.workspace_bytes == plain.workspace_bytes + ws);
        REQUIRE(p.fixed.total == plain.fixed.total + ws);
        REQUIRE(p.kv_cache_bytes == plain.kv_cache_bytes); // the compute type is 16-bit either way
        REQUIRE(p.fixed.at(Fixed::dequant_workspace) % k_fixed_align == 0);
    }
}

#ifdef RABBIT_HAVE_CUDA
namespace {

const DType k_quant_types[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1,
                               DType::q2_k, DType::q3_k, DType::q4_k, DType::q5_k, DType::q6_k};
const Elem k_acts[] = {Elem::f32, Elem::f16, Elem::bf16};

// Where each type keeps its f16 scales (d, and m or dmin), in bytes from the block's start.
std::vector<size_t> scale_offsets(DType t) {
    switch (t) {
    case DType::q4_1: case DType::q5_1: case DType::q4_k: case DType::q5_k: return {0, 2};
    case DType::q2_k: return {80, 82};
    case DType::q3_k: return {108};
    case DType::q6_k: return {208};
    default: return {0};
    }
}

// rows x cols of type t: random bytes (every bit pattern of the quants is a valid block), with
// scales of a weight's size (f16, 0.002 .. 0.03, either sign), so that no value is huge.
std::vector<uint8_t> random_blocks(DType t, size_t rows, size_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> b(rows * dtype_row_bytes(t, cols));
    for (uint8_t& v : b) v = uint8_t(rng());
    std::uniform_real_distribution<float> mag(0.002f, 0.03f);
    const size_t bb = dtype_block_bytes(t);
    for (size_t off = 0; off < b.size(); off += bb)
        for (size_t s : scale_offsets(t)) {
            const float v = (rng() & 1 ? -1.0f : 1.0f) * mag(rng);
            convert_elements(&v, DType::f32, b.data() + off + s, DType::f16, 1);
        }
    return b;
}

std::vector<float> dequantized_rows(DType t, const std::vector<uint8_t>& blocks, size_t rows, size_t cols) {
    std::vector<float> w(rows * cols);
    for (size_t r = 0; r < rows; ++r) dequantize(t, blocks.data() + r * dtype_row_bytes(t, cols), w.data() + r * cols, cols);
    return w;
}

// x [tokens, cols] as stored in `act`, and the values the kernels see.
struct Acts {
    std::vector<uint8_t> bytes;
    std::vector<float> values;
};
Acts random_acts(size_t tokens, size_t cols, Elem act, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    std::vector<float> v(tokens * cols);
    for (float& x : v) x = n(rng);
    Acts a;
    a.bytes = encode(v, act);
    a.values = decode(a.bytes, act);
    return a;
}

// The plain loop: y [tokens, ldy] (columns [0, rows); the rest left as `fill`).
std::vector<double> reference_product(const std::vector<float>& w, const std::vector<float>& x, size_t rows, size_t cols,
                                      size_t tokens, size_t ldy, double fill) {
    std::vector<double> y(tokens * ldy, fill);
    for (size_t t = 0; t < tokens; ++t)
        for (size_t r = 0; r < rows; ++r) {
            double s = 0;
            for (size_t c = 0; c < cols; ++c) s += double(w[r * cols + c]) * double(x[t * cols + c]);
            y[t * ldy + r] = s;
        }
    return y;
}

// y's columns past the rows keep their NaN fill: compare only what the product writes.
std::vector<float> written(const std::vector<float>& y, size_t rows, size_t tokens, size_t ldy) {
    std::vector<float> out;
    for (size_t t = 0; t < tokens; ++t) out.insert(out.end(), y.begin() + long(t * ldy), y.begin() + long(t * ldy + rows));
    return out;
}
std::vector<double> written(const std::vector<double>& y, size_t rows, size_t tokens, size_t ldy) {
    std::vector<double> out;
    for (size_t t = 0; t < tokens; ++t) out.insert(out.end(), y.begin() + long(t * ldy), y.begin() + long(t * ldy + rows));
    return out;
}

// The product with weights rounded to `act` (prefill's tiles) errs by that rounding: 2^-8
// relative per weight in bf16, 2^-11 in f16; the decode kernel's, in f32, by f32 sums only.
Tol product_tol(Elem act, bool tiles) {
    if (!tiles || act == Elem::f32) return Tol{1e-4, 1e-4, true};
    return act == Elem::bf16 ? Tol{2e-2, 2e-2, true} : Tol{4e-3, 4e-3, true};
}

// An f32 split made again, tensor by tensor: each matrix quantized to pick(unit, tensor, cols)
// (null: kept); or, with `reference`, the same values dequantized back to f32 (what the CPU engine runs on:
// exactly the weights the quantized split holds).
using TypePick = std::function<std::optional<DType>(const std::string& tensor, uint64_t cols)>;

void requantized_split(const SplitModel& src, const std::string& out, const TypePick& pick, bool reference) {
    std::filesystem::create_directories(out);
    Manifest man = src.manifest();
    for (ManifestUnit& u : man.units) {
        const std::string file = read_file(src.unit_path(u));
        std::vector<UnitTensor> tensors;
        std::vector<std::vector<uint8_t>> data;
        auto add = [&](const std::string& name, const float* w, uint64_t rows, uint64_t cols, bool matrix) {
            const std::optional<DType> q = matrix ? pick(name, cols) : std::nullopt;
            std::vector<uint8_t> bytes(rows * cols * 4);
            std::memcpy(bytes.data(), w, bytes.size());
            if (q) {
                std::vector<uint8_t> blocks(rows * dtype_row_bytes(*q, cols));
                for (uint64_t r = 0; r < rows; ++r)
                    quantize(*q, w + r * cols, blocks.data() + r * dtype_row_bytes(*q, cols), cols);
                if (reference) dequantize(*q, blocks.data(), reinterpret_cast<float*>(bytes.data()), rows * cols);
                else bytes = blocks;
            }
            UnitTensor t;
            t.name = name;
            t.dtype = q && !reference ? *q : DType::f32;
            t.shape = matrix ? std::vector<uint64_t>{rows, cols} : std::vector<uint64_t>{cols};
            tensors.push_back(t);
            data.push_back(std::move(bytes));
        };
        for (const UnitTensor& t : u.layout.tensors) {
            REQUIRE(t.dtype == DType::f32);
            const float* w = reinterpret_cast<const float*>(file.data() + u.layout.data_offset + t.offset);
            if (t.shape.size() != 2) {
                add(t.name, w, 1, t.shape[0], false);
                continue;
            }
            const uint64_t cols = t.shape[1];
            add(t.name, w, t.shape[0], cols, true);
        }
        u.layout = layout_unit(u.layout.name, tensors);
        std::string bytes = encode_unit_header(u.layout);
        bytes.resize(u.layout.file_size(), '\0');
        for (size_t i = 0; i < tensors.size(); ++i)
            std::memcpy(&bytes[u.layout.data_offset + u.layout.tensors[i].offset], data[i].data(), data[i].size());
        u.xxh3 = hash_bytes(bytes.data(), bytes.size());
        write_file(out + "/" + u.file, bytes);
    }
    for (const std::string& f : man.files) std::filesystem::copy_file(src.dir() + "/" + f, out + "/" + f);
    man.dtype = reference ? "f32" : "mixed";
    write_file(out + "/" + k_manifest_file, man.to_json());
}

#ifdef RABBIT_CUDA_EMULATOR
// The emulated device reports itself as sm_`arch` (0: as it is) while this lives.
struct EmuArch {
    cuda_emu::Settings saved = cuda_emu::settings();
    explicit EmuArch(int arch) {
        cuda_emu::Settings s = saved;
        if (arch) s.arch = arch;
        cuda_emu::set_settings(s);
    }
    ~EmuArch() { cuda_emu::set_settings(saved); }
};
#endif

} // namespace

TEST_CASE("quantized matvec: every type, 1..8 tokens, odd rows, wide ldy, every activation type", "[gpu][quant]") {
    if (!gpu_available()) return;
    // 1280 columns: more than one chunk of shared x for 3 or more tokens, 5 k-quant blocks.
    const struct { size_t rows, cols; } shapes[] = {{37, 1280}, {5, 256}};
    uint32_t seed = 1;
    for (DType t : k_quant_types)
        for (const auto& sh : shapes) {
            const std::vector<uint8_t> blocks = random_blocks(t, sh.rows, sh.cols, seed++);
            const std::vector<float> w = dequantized_rows(t, blocks, sh.rows, sh.cols);
            const DevBuf dw = to_device(blocks);
            for (Elem act : k_acts)
                for (size_t m = 1; m <= size_t(k_matvec_max_tokens); ++m) {
                    INFO(dtype_name(t) << " " << sh.rows << "x" << sh.cols << ", act " << dtype_name(dtype_of(act))
                                       << ", " << m << " tokens");
                    const Acts x = random_acts(m, sh.cols, act, seed++);
                    const size_t ldy = sh.rows + 3;
                    const DevBuf dx = to_device(x.bytes);
                    DevBuf dy(4 * m * ldy);
                    dy.fill(0xff);
                    QuantMatvecParams p;
                    p.w = dw.get();
                    p.w_type = wtype_of(t);
                    p.rows = int64_t(sh.rows);
                    p.cols = int64_t(sh.cols);
                    p.x = dx.get();
                    p.x_type = act;
                    p.tokens = int(m);
                    p.y = dy.get<float>();
                    p.ldy = int64_t(ldy);
                    launch_checked([&] { return launch_quant_matvec(p, nullptr); });
                    const std::vector<float> y = to_host<float>(dy, m * ldy);
                    const std::vector<double> want = reference_product(w, x.values, sh.rows, sh.cols, m, ldy, 0);
                    require_close(written(y, sh.rows, m, ldy), written(want, sh.rows, m, ldy), product_tol(act, false));
                    for (size_t k = 0; k < m; ++k) REQUIRE(std::isnan(y[k * ldy + sh.rows])); // past the rows: untouched
                }
        }
}

TEST_CASE("quantized rows dequantize to f32, f16 and bf16, gathered by id or in order", "[gpu][quant]") {
    if (!gpu_available()) return;
    const size_t rows = 9, cols = 512;
    uint32_t seed = 100;
    for (DType t : k_quant_types) {
        const std::vector<uint8_t> blocks = random_blocks(t, rows, cols, seed++);
        const std::vector<float> w = dequantized_rows(t, blocks, rows, cols);
        const DevBuf dw = to_device(blocks);
        const std::vector<int32_t> ids = {8, 0, 3, 3, 7};
        const DevBuf dids = to_device(ids);
        for (Elem out : k_acts)
            for (bool gather : {false, true}) {
                INFO(dtype_name(t) << " to " << dtype_name(dtype_of(out)) << (gather ? ", gathered" : ", in order"));
                const size_t n = gather ? ids.size() : rows, ldo = cols + 32;
                DevBuf dout(elem_size(out) * n * ldo);
                DequantParams p;
                p.w = dw.get();
                p.w_type = wtype_of(t);
                p.cols = int64_t(cols);
                p.rows = int64_t(n);
                p.ids = gather ? dids.get<int32_t>() : nullptr;
                p.out = dout.get();
                p.out_type = out;
                p.ldo = int64_t(ldo);
                launch_checked([&] { return launch_dequant(p, nullptr); });
                const std::vector<float> all = download_as_f32(dout, n * ldo, out);
                std::vector<float> got;
                std::vector<double> want;
                for (size_t r = 0; r < n; ++r) {
                    const size_t src = gather ? size_t(ids[r]) : r;
                    got.insert(got.end(), all.begin() + long(r * ldo), all.begin() + long(r * ldo + cols));
                    // The value the kernel should store: the reference rounded to `out`.
                    const std::vector<float> row(w.begin() + long(src * cols), w.begin() + long((src + 1) * cols));
                    for (float v : decode(encode(row, out), out)) want.push_back(v);
                }
                // Both compute each value in f32 (the kernel maybe in another order): within an ulp.
                require_close(got, want, out == Elem::f32 ? Tol{1e-7, 1e-6} : out == Elem::f16 ? Tol{1e-6, 1e-3} : Tol{1e-6, 8e-3});
            }
    }
}

TEST_CASE("weight_product: quantized decode and tiled prefill, float weights of another type, vs plain loops", "[gpu][quant]") {
    if (!gpu_available()) return;
    cublasHandle_t blas = nullptr;
    REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    const size_t rows = 45, cols = 256;
    uint32_t seed = 200;
    std::vector<DType> types(std::begin(k_quant_types), std::end(k_quant_types));
    types.insert(types.end(), {DType::f32, DType::f16, DType::bf16});
    for (DType t : types) {
        std::vector<uint8_t> blocks;
        if (is_quant_dtype(t)) {
            blocks = random_blocks(t, rows, cols, seed++);
        } else {
            std::vector<float> v(rows * cols);
            std::mt19937 rng(seed++);
            std::normal_distribution<float> n(0.0f, 0.05f);
            for (float& x : v) x = n(rng);
            blocks.resize(rows * cols * dtype_size(t));
            convert_elements(v.data(), DType::f32, blocks.data(), t, v.size());
        }
        const std::vector<float> w = dequantized_rows(t, blocks, rows, cols);
        const DevBuf dw = to_device(blocks);
        Matrix mw{dw.get(), t, rows, cols};
        for (Elem act : k_acts)
            for (size_t m : {size_t(1), size_t(8), size_t(9), size_t(33)}) {
                // A workspace of 16 rows: the 45 rows in three tiles, the last one short.
                const size_t ldy = rows + 1;
                DevBuf ws(16 * cols * elem_size(act));
                INFO(dtype_name(t) << ", act " << dtype_name(dtype_of(act)) << ", " << m << " tokens");
                const Acts x = random_acts(m, cols, act, seed++);
                const DevBuf dx = to_device(x.bytes);
                DevBuf dy(4 * m * ldy);
                dy.fill(0xff);
                weight_product(blas, nullptr, mw, dx.get(), act, m, dy.get<float>(), ldy, {ws.get(), ws.bytes()});
                sync();
                const std::vector<float> y = to_host<float>(dy, m * ldy);
                const std::vector<double> want = reference_product(w, x.values, rows, cols, m, ldy, 0);
                const bool tiles = !(is_quant_dtype(t) && m <= 8) && dtype_of(act) != t;
                require_close(written(y, rows, m, ldy), written(want, rows, m, ldy), product_tol(act, tiles));
            }
    }
    cublasDestroy(blas);
}

TEST_CASE("quantized launchers refuse what they do not support", "[gpu][quant]") {
    if (!gpu_available()) return;
    DevBuf buf(1 << 16);
    QuantMatvecParams p;
    p.w = buf.get();
    p.w_type = WType::q4_k;
    p.rows = 4;
    p.cols = 256;
    p.x = buf.get();
    p.tokens = 1;
    p.y = buf.get<float>();
    p.ldy = 4;
    REQUIRE(launch_quant_matvec(p, nullptr) == cudaSuccess);
    p.cols = 288; // not whole super-blocks
    REQUIRE(launch_quant_matvec(p, nullptr) == cudaErrorInvalidValue);
    p.cols = 256;
    p.tokens = k_matvec_max_tokens + 1;
    REQUIRE(launch_quant_matvec(p, nullptr) == cudaErrorInvalidValue);
    p.tokens = 1;
    p.w_type = WType::bf16; // float weights go through cuBLAS or launch_dequant
    REQUIRE(launch_quant_matvec(p, nullptr) == cudaErrorInvalidValue);
    p.w_type = WType::q8_0;
    p.ldy = 3;
    REQUIRE(launch_quant_matvec(p, nullptr) == cudaErrorInvalidValue);
    DequantParams d;
    d.w = buf.get();
    d.w_type = WType::q5_0;
    d.cols = 48;
    d.rows = 1;
    d.out = buf.get();
    d.ldo = 48;
    REQUIRE(launch_dequant(d, nullptr) == cudaErrorInvalidValue);
    sync();
}

TEST_CASE("the CUDA engine on a quantized split gives the CPU's logits on the same weights dequantized", "[gpu][quant][cuda-engine]") {
    if (!gpu_available()) return;
    const std::vector<int32_t> prompt = {1, 50, 7, 300, 21, 9, 64, 3, 17}; // 9 tokens: prefill in tiles
    // The embedding in Q8_0 (as SmolLM2's), every other matrix in another type: every
    // quantize()-able type, k-quants where the width allows (whole super-blocks). (A unit with
    // q, k, v of different types is not yet a valid split on this branch: the config check
    // wants qkv.)
    const DType cycle[] = {DType::q4_0, DType::q4_k, DType::q4_1, DType::q5_k, DType::q5_0,
                           DType::q6_k, DType::q5_1, DType::q8_0};
    for (const char* preset : {"tiny-qwen2", "tiny-qwen3"}) { // tied (the table resident as lm_head), untied
        INFO(preset);
        TempDir dir;
        REQUIRE(run_program(genmodel_bin(), {"-p", preset, "--seed", "5", "--hidden", "256", "--intermediate", "512",
                                              "-o", dir / "hf"})
                    .exit_code == 0);
        const SplitModel f32 = SplitModel::open(split_into(dir / "hf", dir / "f32"));
        size_t next = 0;
        auto pick = [&](const std::string& tensor, uint64_t cols) -> std::optional<DType> {
            if (tensor == "embed") return DType::q8_0;
            for (;;) {
                const DType t = cycle[next++ % std::size(cycle)];
                if (cols % dtype_block(t) == 0) return t;
            }
        };
        requantized_split(f32, dir / "q", pick, false);
        next = 0; // the same types again
        requantized_split(f32, dir / "ref", pick, true);
        const SplitModel quant = SplitModel::open(dir / "q");
        const SplitModel ref = SplitModel::open(dir / "ref");
        CpuEngine cpu(ref, {});
        const std::vector<float> want = prompt_and_steps_logits(cpu, prompt);
        struct Case {
            const char* what;
            CudaEngineOptions o;
        };
        std::vector<Case> cases(3);
        cases[0].what = "everything resident";
        cases[1].what = "nothing resident, row blocks, one slot, prompt in parts of 4";
        cases[1].o.max_resident = 0;
        cases[1].o.max_slot = 40000; // row blocks of every matrix but the smallest
        cases[1].o.ring_slots = 1;
        cases[1].o.batch = 4;
        cases[2].what = "nothing resident, whole units in two slots";
        cases[2].o.max_resident = 0;
#ifdef RABBIT_CUDA_EMULATOR
        cases.push_back({"emulated sm_75: f16 compute", {}});
#endif
        for (const Case& cs : cases) {
            INFO(cs.what);
            std::vector<float> got;
            {
#ifdef RABBIT_CUDA_EMULATOR
                const EmuArch arch(std::string(cs.what).find("sm_75") != std::string::npos ? 75 : 0);
#endif
                CudaEngine gpu(quant, cs.o);
                REQUIRE(gpu.plan().fixed.size(Fixed::dequant_workspace) > 0);
                got = prompt_and_steps_logits(gpu, prompt);
            }
            // bf16 (f16) activations and KV cache (the CPU keeps f32), and prefill's weight
            // tiles in bf16 (f16): the tolerance of 16-bit models.
            const double w = worst_error(got, want, 3e-2 * rms(want), 3e-2);
            WARN(preset << ", " << cs.what << ": largest CUDA-CPU logit difference " << w << " of the tolerance");
            CHECK(w <= 1.0);
        }
    }
}

TEST_CASE("quantized matvec: the bandwidth it reaches on a real GPU (RABBIT_OPS_TIMING=1, never asserted)", "[gpu][quant][timing]") {
    if (!gpu_available() || !ops_timing()) return; // the emulated device's times mean nothing
    const size_t rows = 14336, cols = 4096; // a 7B-8B model's gate or up projection
    for (DType t : {DType::q4_0, DType::q4_k, DType::q6_k, DType::q8_0})
        for (int m : {1, 8}) {
            const std::vector<uint8_t> blocks = random_blocks(t, rows, cols, 7);
            const DevBuf dw = to_device(blocks);
            const Acts x = random_acts(size_t(m), cols, Elem::bf16, 8);
            const DevBuf dx = to_device(x.bytes);
            DevBuf dy(4 * size_t(m) * rows);
            QuantMatvecParams p;
            p.w = dw.get();
            p.w_type = wtype_of(t);
            p.rows = int64_t(rows);
            p.cols = int64_t(cols);
            p.x = dx.get();
            p.x_type = Elem::bf16;
            p.tokens = m;
            p.y = dy.get<float>();
            p.ldy = int64_t(rows);
            launch_checked([&] { return launch_quant_matvec(p, nullptr); });
            cudaEvent_t a = nullptr, b = nullptr;
            REQUIRE(cudaEventCreate(&a) == cudaSuccess);
            REQUIRE(cudaEventCreate(&b) == cudaSuccess);
            constexpr int reps = 20;
            REQUIRE(cudaEventRecord(a, nullptr) == cudaSuccess);
            for (int i = 0; i < reps; ++i) REQUIRE(launch_quant_matvec(p, nullptr) == cudaSuccess);
            REQUIRE(cudaEventRecord(b, nullptr) == cudaSuccess);
            sync();
            float ms = 0;
            REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
            cudaEventDestroy(a);
            cudaEventDestroy(b);
            const double s_per = ms / 1e3 / reps;
            WARN(dtype_name(t) << " " << rows << "x" << cols << ", " << m << " tokens: " << s_per * 1e6 << " us, "
                               << double(blocks.size()) / s_per / 1e9 << " GB/s of weights");
        }
}
#endif
