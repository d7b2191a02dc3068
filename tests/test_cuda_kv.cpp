// SPDX-License-Identifier: Apache-2.0
// The CUDA engine's KV cache: in another type than the compute type (--kv-dtype), and in host
// memory attended on the CPU where it lives (only q crosses, and the output back), which must
// give the logits of the cache on the device. [gpu]: the emulated device in CI.
#include "common/error.h"
#include "engine_helpers.h"
#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cpu/cpu_engine.h"
#include "backend/cuda/cuda_engine.h"
#include "format/split_model.h"
#endif
#ifdef RABBIT_CUDA_EMULATOR
#include "cuda_emu.h"
#endif

using namespace rabbit;


TEST_CASE("a host KV cache attended on the CPU gives the logits of the cache on the device", "[gpu][cuda-engine][kv]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    for (const char* preset : {"tiny-qwen3", "tiny-mistral"}) // q/k norm; a sliding window of 256
    for (const char* dtype : {"f32", "bf16"}) {
        INFO(preset << " " << dtype);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::generate_and_split({"-p", preset, "--seed", "9", "--dtype", dtype}, dir));
        const std::vector<int32_t> prompt = test::long_prompt(300, int32_t(model.config().vocab_size));
        CudaEngineOptions on_device;
        on_device.batch = 128;
        CudaEngine reference(model, on_device);
        REQUIRE_FALSE(reference.plan().kv_on_host);
        const std::vector<float> want = test::prompt_and_steps_logits(reference, prompt);
        for (bool streamed : {false, true}) {
            INFO((streamed ? "nothing resident" : "everything resident"));
            CudaEngineOptions o = on_device; // the prompt in parts: chunked prefill into the host cache
            o.kv = KvPlace::host;
            o.kv_attend = KvAttend::cpu;
            if (streamed) o.max_resident = 0;
#ifdef RABBIT_CUDA_EMULATOR
            const cuda_emu::Counters c0 = cuda_emu::counters();
#endif
            CudaEngine e(model, o);
            REQUIRE(e.plan().kv_on_host);
            REQUIRE(e.stats().kv_attend == KvAttend::cpu);
#ifdef RABBIT_CUDA_EMULATOR
            // The CPU reads this cache: not write-combined.
            REQUIRE(cuda_emu::counters().write_combined_allocations == c0.write_combined_allocations);
#endif
            const std::vector<float> got = test::prompt_and_steps_logits(e, prompt);
            // f32: both sum in f32 in another order. bf16: the same bf16 cache, but the attention
            // output is rounded to bf16 on both sides after f32 sums in another order, which
            // moves some elements by one bf16 step (2^-8), compounded through the layers:
            // measured up to 1.0e-2 of the RMS, two thirds of the CUDA-CPU tolerance.
            const bool f32 = std::string(dtype) == "f32";
            const double w = test::worst_error(got, want, f32 ? 1e-5 : 2e-2 * test::rms(want), f32 ? 1e-4 : 2e-2);
            WARN(preset << " " << dtype << (streamed ? " streamed" : " resident") << ": host-attention error " << w
                        << " of the tolerance");
            CHECK(w <= 1.0);
        }
    }
#endif
}

TEST_CASE("the CUDA engine's --kv-dtype: a bf16 or f16 cache under f32 weights matches the CPU engine's", "[gpu][cuda-engine][kv]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "4", "--dtype", "f32"}, dir));
    const std::vector<int32_t> prompt = test::long_prompt(40, int32_t(model.config().vocab_size));
    for (DType t : {DType::bf16, DType::f16, DType::f32}) {
        INFO(dtype_name(t));
        EngineOptions co;
        co.kv_dtype = t;
        CpuEngine cpu(model, co);
        for (KvPlace place : {KvPlace::gpu, KvPlace::host}) {
            CudaEngineOptions o;
            o.kv_dtype = t;
            o.kv = place;
            o.kv_attend = KvAttend::cpu;
            CudaEngine gpu(model, o);
            // The cache's type sizes it: half of f32's in bf16 and f16.
            REQUIRE(gpu.plan().kv_cache_bytes == kv_cache_bytes(model.config(), gpu.context(), t));
            const std::vector<float> want = test::prompt_and_steps_logits(cpu, prompt);
            const std::vector<float> got = test::prompt_and_steps_logits(gpu, prompt);
            // The same rounding of the same keys and values, but f32 sums in another order can
            // round a value to the neighbouring 16-bit number.
            const double share = t == DType::f32 ? 1e-4 : t == DType::f16 ? 2e-3 : 1e-2;
            CHECK(test::worst_error(got, want, share * test::rms(want), share) <= 1.0);
        }
    }
    CudaEngineOptions q8;
    q8.kv_dtype = DType::q8_0;
    REQUIRE_THROWS_WITH(CudaEngine(model, q8), Catch::Contains("q8_0") && Catch::Contains("--device cpu"));
#endif
}

TEST_CASE("rabbit run -v says where a host KV cache is attended, and --kv-attend chooses it", "[gpu][cuda-engine][kv][cli]") {
    if (!test::have_shared()) return;
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    const std::string split = test::split_into(test::tinystories_dir(), dir / "ts");
    const test::RunResult cpu = test::run_rabbit({"-q", "run", "-m", split, "--raw", "-p", "", "-n", "12", "--device", "cpu",
                                                  "--ignore-eos"});
    REQUIRE(cpu.exit_code == 0);
    for (const char* attend : {"auto", "cpu", "gpu"}) {
        INFO(attend);
        const test::RunResult r = test::run_rabbit({"-v", "run", "-m", split, "--raw", "-p", "", "-n", "12", "--device",
                                                    "cuda", "--kv-cache", "host", "--kv-attend", attend, "--ignore-eos"});
        REQUIRE(r.exit_code == 0);
        REQUIRE_THAT(r.err, Catch::Contains("decode attention on the"));
        if (std::string(attend) != "auto") REQUIRE_THAT(r.err, Catch::Contains(std::string("on the ") + attend + " (--kv-attend)"));
        else REQUIRE_THAT(r.err, Catch::Contains("measured: link"));
        REQUIRE(r.out == cpu.out);
    }
#endif
}
