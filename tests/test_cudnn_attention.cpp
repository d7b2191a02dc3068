// SPDX-License-Identifier: Apache-2.0
// cuDNN's fused attention for long prefill parts, as far as it can be checked without a GPU:
// the choice between it and rabbit's kernel, the cache of plans by shape, the kernel that rounds
// Q for it, and the engine on the emulated device (which has no cuDNN) keeping rabbit's kernel.
// cuDNN itself runs only on a real GPU: tools/sdpacheck (scripts/gpu_check.sh).
#include "engine_helpers.h"
#include "gpu.h"
#include "helpers.h"

#include "backend/cuda/sdpa_shape.h"
#include "common/error.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/attention_choice.h"
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/cudnn_attention.h"
#include "convert.cuh"
#include "format/split_model.h"

#include <cuda_runtime.h>

#include <random>
#endif

using namespace rabbit;

TEST_CASE("the plan cache keeps the shapes used last, by every field of the shape", "[cudnn]") {
    ShapeCache<int> cache(2);
    SdpaShape a;
    a.tokens = 512;
    a.kv_len = 1024;
    a.cache_len = 4096;
    a.heads = 28;
    a.kv_heads = 4;
    a.head_dim = 128;
    a.elem = 2;
    REQUIRE(cache.find(a) == nullptr);
    cache.put(a, 1);
    REQUIRE(cache.find(a));
    CHECK(*cache.find(a) == 1);
    // Each field is part of the key: the causal offset (kv_len - tokens) and the strides too.
    for (int field = 0; field < 7; ++field) {
        SdpaShape b = a;
        int64_t* fields[] = {&b.tokens, &b.kv_len, &b.cache_len};
        if (field < 3) *fields[field] += 1;
        else if (field == 3) ++b.heads;
        else if (field == 4) ++b.kv_heads;
        else if (field == 5) b.head_dim = 64;
        else b.elem = 1;
        INFO("field " << field);
        CHECK(cache.find(b) == nullptr);
    }
    SdpaShape b = a, c = a;
    b.kv_len = 1536;
    c.kv_len = 2048;
    cache.put(b, 2);
    REQUIRE(cache.find(a)); // a is now the most recently used: b goes first
    cache.put(c, 3);
    CHECK(cache.size() == 2);
    CHECK(cache.find(b) == nullptr);
    CHECK(*cache.find(a) == 1);
    CHECK(*cache.find(c) == 3);
    cache.put(c, 4); // replaced, not added
    CHECK(cache.size() == 2);
    CHECK(*cache.find(c) == 4);
    cache.clear();
    CHECK(cache.size() == 0);
    CHECK(cache.find(a) == nullptr);
}

#ifdef RABBIT_HAVE_CUDA
namespace {

// A long bf16 prefill part on an sm_90 with cuDNN: every condition holds.
AttentionChoiceInput long_part() {
    AttentionChoiceInput in;
    in.cudnn_built = in.cudnn_usable = true;
    in.sm_major = 9;
    in.q16 = in.cache_is_compute = true;
    in.tokens = 512;
    in.head_dim = 128;
    return in;
}

} // namespace

TEST_CASE("cuDNN takes long 16-bit prefill parts on sm_80+, rabbit's kernel everything else", "[cudnn]") {
    CHECK(choose_prefill_attention(long_part()) == AttentionImpl::cudnn);
    CHECK(cudnn_refusal(long_part()).empty());
    struct Case {
        const char* what;
        void (*change)(AttentionChoiceInput&);
        const char* reason;
    };
    const Case cases[] = {
        {"--attention rabbit", [](AttentionChoiceInput& i) { i.mode = PrefillAttention::rabbit; }, "--attention rabbit"},
        {"no cuDNN in the build", [](AttentionChoiceInput& i) { i.cudnn_built = false; }, "built without cuDNN"},
        {"cuDNN did not start", [](AttentionChoiceInput& i) { i.cudnn_usable = false; }, "could not be started"},
        {"sm_75", [](AttentionChoiceInput& i) { i.sm_major = 7; }, "sm_80"},
        {"f32 compute", [](AttentionChoiceInput& i) { i.q16 = false; }, "f32"},
        {"--kv-dtype other than the compute type", [](AttentionChoiceInput& i) { i.cache_is_compute = false; },
         "not the compute type"},
        {"head_dim 80 is fine, 260 is not", [](AttentionChoiceInput& i) { i.head_dim = 260; }, "head_dim 260"},
        {"head_dim not a multiple of 8", [](AttentionChoiceInput& i) { i.head_dim = 100; }, "head_dim 100"},
        {"head_dim 256 on sm_80", [](AttentionChoiceInput& i) { i.head_dim = 256, i.sm_major = 8; }, "head_dim 256"},
        {"a draft tree", [](AttentionChoiceInput& i) { i.tree = true; }, "draft tree"},
        {"a sliding window", [](AttentionChoiceInput& i) { i.window = true; }, "sliding window"},
        {"a host cache", [](AttentionChoiceInput& i) { i.host_cache = true; }, "host memory"},
        {"a decode step", [](AttentionChoiceInput& i) { i.tokens = 1; }, "a part of 1 tokens"},
        {"just under the threshold", [](AttentionChoiceInput& i) { i.tokens = k_cudnn_min_tokens - 1; }, "tokens (cuDNN from"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        AttentionChoiceInput in = long_part();
        c.change(in);
        CHECK(choose_prefill_attention(in) == AttentionImpl::rabbit);
        CHECK_THAT(cudnn_refusal(in), Catch::Contains(c.reason));
    }
    // The threshold is inclusive, sm_80 and head_dim 256 on sm_90 take cuDNN.
    AttentionChoiceInput in = long_part();
    in.tokens = k_cudnn_min_tokens;
    CHECK(choose_prefill_attention(in) == AttentionImpl::cudnn);
    in.sm_major = 8;
    in.head_dim = 80;
    CHECK(choose_prefill_attention(in) == AttentionImpl::cudnn);
    in = long_part();
    in.head_dim = 256;
    CHECK(choose_prefill_attention(in) == AttentionImpl::cudnn);
    // --attention cudnn forces it for short parts and decode steps, never past what cuDNN lacks.
    in = long_part();
    in.mode = PrefillAttention::cudnn;
    in.tokens = 1;
    CHECK(choose_prefill_attention(in) == AttentionImpl::cudnn);
    in.tree = true;
    CHECK(choose_prefill_attention(in) == AttentionImpl::rabbit);
    CHECK(std::string(prefill_attention_name(PrefillAttention::automatic)) == "auto");
    CHECK(std::string(prefill_attention_name(PrefillAttention::cudnn)) == "cudnn");
    CHECK(std::string(prefill_attention_name(PrefillAttention::rabbit)) == "rabbit");
}

TEST_CASE("Q rows are rounded into contiguous 16-bit rows as a plain loop does", "[gpu][cudnn][kernels]") {
    if (!test::gpu_available()) return;
    std::mt19937 rng(18);
    std::uniform_real_distribution<float> u(-3.0f, 3.0f);
    for (Elem e : {Elem::bf16, Elem::f16}) {
        for (auto [rows, cols, stride] : {std::tuple<int64_t, int64_t, int64_t>{7, 24, 40}, {33, 769, 1025}, {1, 8, 8}}) {
            INFO(int(e) << ": " << rows << " x " << cols << " of " << stride);
            std::vector<float> src(size_t(rows * stride));
            for (float& x : src) x = u(rng);
            const test::DevBuf d_src = test::to_device(src);
            test::DevBuf d_dst(size_t(rows * cols) * 2);
            RowsToElemParams p;
            p.src = d_src.get<float>();
            p.src_stride = stride;
            p.dst = d_dst.get();
            p.dst_type = e;
            p.rows = rows;
            p.cols = cols;
            test::launch_checked([&] { return launch_rows_to_elem(p, nullptr); });
            const std::vector<float> got = test::download_as_f32(d_dst, size_t(rows * cols), e);
            std::vector<float> want;
            for (int64_t r = 0; r < rows; ++r)
                for (int64_t c = 0; c < cols; ++c) want.push_back(src[size_t(r * stride + c)]);
            CHECK(got == test::decode(test::encode(want, e), e)); // rounded once, to nearest even
        }
    }
    RowsToElemParams bad;
    bad.rows = 2;
    bad.cols = 8;
    bad.src_stride = 4; // rows overlap
    CHECK(launch_rows_to_elem(bad, nullptr) == cudaErrorInvalidValue);
    cudaGetLastError();
}

// Where cuDNN is built and the GPU is sm_80+ (scripts/gpu_check.sh's [gpu] run), long parts take
// it, with rabbit's kernel's logits; everywhere else (the emulated device, which has no cuDNN)
// every part keeps rabbit's kernel, and forcing cuDNN is a one-line error.
TEST_CASE("long prefill parts take cuDNN's attention only where it runs, with the same logits", "[gpu][cudnn][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_CUDA_EMULATOR
    CHECK_FALSE(CudnnAttention::built());
#endif
    cudaDeviceProp prop{};
    REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
    const bool runs = CudnnAttention::built() && prop.major >= 8;
    test::TempDir dir;
    SplitModel model = SplitModel::open(
        test::generate_and_split({"-p", "tiny-qwen3", "--seed", "5", "--dtype", "bf16", "--head-dim", "64"}, dir));
    // A part long enough for cuDNN, then a shorter one at a later position, then decode steps.
    const std::vector<int32_t> prompt = test::long_prompt(size_t(k_cudnn_min_tokens) * 2 - 30, int32_t(model.config().vocab_size));
    CudaEngineOptions o;
    o.batch = size_t(k_cudnn_min_tokens) + 64;
    o.attention = PrefillAttention::rabbit;
    CudaEngine ours(model, o);
    const std::vector<float> want = test::prompt_and_steps_logits(ours, prompt);
    CHECK_FALSE(ours.stats().cudnn);
    o.attention = PrefillAttention::automatic;
    CudaEngine automatic(model, o);
    const std::vector<float> got = test::prompt_and_steps_logits(automatic, prompt);
    CHECK(automatic.stats().cudnn == runs);
    CHECK((automatic.stats().cudnn_parts > 0) == runs);
    // The same kernel, or cuDNN in bf16 (Q rounded to bf16, P too, sums in another order): within
    // a share of the logits' RMS, as the bf16 engine is held to the CPU's.
    const double atol = runs ? 3e-2 * test::rms(want) : 1e-6, rtol = runs ? 3e-2 : 1e-6;
    CHECK(test::worst_error(got, want, atol, rtol) <= 1.0);
    o.attention = PrefillAttention::cudnn;
    if (!runs) {
        try {
            CudaEngine forced(model, o);
            FAIL("--attention cudnn started where cuDNN cannot run");
        } catch (const Error& e) {
            CHECK(e.code() == ExitCode::unsupported);
            CHECK_THAT(e.what(), Catch::Contains("--attention cudnn: "));
        }
    } else {
        CudaEngine forced(model, o); // every part and decode step it can take
        CHECK(test::worst_error(test::prompt_and_steps_logits(forced, prompt), want, atol, rtol) <= 1.0);
        CHECK(forced.stats().cudnn_parts > automatic.stats().cudnn_parts);
    }
    // On the command line, with tinystories (f32 weights: cuDNN cannot take it on any device):
    // exit 4 (unsupported) naming the reason; auto runs, and -v says why every part keeps
    // rabbit's kernel.
    if (!test::have_shared()) return;
    const std::string ts = test::split_into(test::tinystories_dir(), dir / "ts");
    const test::RunResult forced =
        test::run_rabbit({"run", "-m", ts, "--raw", "-p", "", "-n", "4", "--device", "cuda", "--attention", "cudnn"});
    CHECK(forced.exit_code == int(ExitCode::unsupported));
    CHECK_THAT(forced.err, Catch::Contains("--attention cudnn: "));
    const test::RunResult chosen =
        test::run_rabbit({"-v", "run", "-m", ts, "--raw", "-p", "", "-n", "4", "--device", "cuda", "--attention", "auto"});
    CHECK(chosen.exit_code == 0);
    CHECK_THAT(chosen.err, Catch::Contains("attention: rabbit's kernel for every part ("));
#ifdef RABBIT_CUDA_EMULATOR
    CHECK_THAT(forced.err, Catch::Contains("--attention cudnn: this rabbit was built without cuDNN"));
    CHECK_THAT(chosen.err, Catch::Contains("(this rabbit was built without cuDNN)"));
#endif
}
#endif
