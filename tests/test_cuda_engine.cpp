// SPDX-License-Identifier: Apache-2.0
// The CUDA engine against the CPU engine (its reference) and Hugging Face's goldens, with
// every way of placing memory: everything resident, nothing resident, ring slots 1, 2 and 3,
// units in row blocks, the KV cache in host memory, a RAM tier. And a Qwen2.5-14B-shaped
// model within a 4 GiB budget. [gpu]: skipped, visibly, without a usable GPU.
#include "common/error.h"
#include "engine_helpers.h"
#include "gpu.h"
#include "helpers.h"
#include "split/splitter.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "backend/cuda/cuda_engine.h"
#include "backend/cuda/events.h"
#include "backend/cuda/link.h"
#include "backend/cuda/memory.h"
#include "backend/cuda/spans.h"
#include "convert.cuh"
#include "engine/memory_plan.h"
#include "engine/sampler.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "backend/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "format/split_model.h"
#include "tokenizer/tokenizer.h"

#include <cuda_runtime.h>

#include <cmath>
#endif
#ifdef RABBIT_CUDA_EMULATOR
#include "cuda_emu.h"
#endif

using namespace rabbit;

#ifdef RABBIT_HAVE_CUDA
namespace {

const std::vector<int32_t> k_prompt = {1, 50, 7, 300, 21, 9, 64, 3, 17};

#ifdef RABBIT_CUDA_EMULATOR
// Delays before every kernel and every copy on the emulated device, while it lives.
struct EmuDelays {
    cuda_emu::Settings saved = cuda_emu::settings();
    EmuDelays(unsigned kernel_us, unsigned copy_us) {
        cuda_emu::Settings s = saved;
        s.kernel_delay_us = kernel_us;
        s.copy_delay_us = copy_us;
        cuda_emu::set_settings(s);
    }
    ~EmuDelays() { cuda_emu::set_settings(saved); }
};
#endif

} // namespace
#endif

TEST_CASE("CUDA logits match the CPU engine and Hugging Face for every architecture", "[gpu][cuda-engine]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    for (const std::string& name : test::hf_golden_names()) {
        INFO(name);
        const test::HfGolden g = test::read_hf_golden(name);
        for (const char* dtype : {"f32", "bf16"}) {
            INFO(dtype);
            test::TempDir dir;
            SplitModel model = SplitModel::open(test::make_golden_model(g, dtype, dir.path()));
            CpuEngine cpu(model, {});
            CudaEngine gpu(model, {});
            const std::vector<float> want = test::prompt_and_steps_logits(cpu, g.prompt),
                                     got = test::prompt_and_steps_logits(gpu, g.prompt);
            // f32 weights: f32 everywhere, products in another order (and cuBLAS's blocking).
            // bf16 weights: the KV cache and the attention output in bf16, as a bf16 model keeps
            // them, where the CPU keeps them in f32; the difference grows with the logits' scale,
            // so the absolute term is a share of their RMS (both engines are as far from the f32
            // transformers golden: about 0.15 on logits of RMS 8 for qwen2-tied-bias).
            const bool f32 = std::string(dtype) == "f32";
            const double w = test::worst_error(got, want, f32 ? 1e-4 : 3e-2 * test::rms(want), f32 ? 1e-4 : 3e-2);
            WARN(name << " " << dtype << ": largest CUDA-CPU logit difference " << w << " of the tolerance");
            CHECK(w <= 1.0);
            if (!f32) continue;
            // And against transformers directly, with the CPU engine's tolerance.
            const std::vector<float> prompt_rows(got.begin(), got.begin() + long(g.prompt_logits.size()));
            CHECK(test::worst_error(prompt_rows, g.prompt_logits, 1e-4, 1e-4) <= 1.0);
            const std::vector<int32_t> seq = test::greedy(gpu, g.prompt, g.prompt.size() + g.greedy.size());
            CHECK(std::vector<int32_t>(seq.begin() + long(g.prompt.size()), seq.end()) == g.greedy);
        }
    }
#endif
}

TEST_CASE("CUDA greedy output equals the CPU's for tinystories-656k", "[gpu][cuda-engine][golden]") {
    if (!test::have_shared()) return;
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    test::split_into(test::tinystories_dir(), dir / "ts");
    SplitModel model = SplitModel::open(dir / "ts");
    CpuEngine cpu(model, {});
    CudaEngine gpu(model, {});
    REQUIRE(test::greedy(gpu, {1}, 81) == test::greedy(cpu, {1}, 81));
    REQUIRE(test::greedy(gpu, {1, 80, 147, 201, 282, 215, 286, 401, 236, 192}, 71) ==
            test::greedy(cpu, {1, 80, 147, 201, 282, 215, 286, 401, 236, 192}, 71));
    // Choosing on the GPU (argmax, penalty, temperature, top-k candidates) picks what the CPU
    // sampler picks from the CPU's logits: f32 weights, so the logits differ by ~1e-5 and no
    // draw lands that close to a boundary in these 40 steps.
    auto tok = load_tokenizer(dir / "ts");
    for (SamplingParams sp : {SamplingParams{0.0f, 0, 1.0f, 0.0f, 1.3f, 0}, SamplingParams{0.8f, 40, 0.9f, 0.05f, 1.1f, 7},
                              SamplingParams{1.0f, 0, 0.95f, 0.0f, 1.0f, 3}}) {
        INFO("temperature " << sp.temperature << ", top-k " << sp.top_k);
        GenerateOptions g;
        g.max_tokens = 40;
        g.sampling = sp;
        cpu.reset();
        gpu.reset();
        const auto on_text = [](const std::string&) {};
        REQUIRE(generate(gpu, *tok, {1}, g, on_text).tokens == generate(cpu, *tok, {1}, g, on_text).tokens);
    }
    // On the command line too, with the GPU choosing the tokens.
    test::RunResult a = test::run_rabbit({"-q", "run", "-m", dir / "ts", "--raw", "-p", "", "-n", "80", "--device", "cpu"});
    test::RunResult b = test::run_rabbit({"run", "-m", dir / "ts", "--raw", "-p", "", "-n", "80", "--device", "cuda",
                                          "--vram-budget", "1G"});
    REQUIRE(a.exit_code == 0);
    REQUIRE(b.exit_code == 0);
    REQUIRE(a.out == b.out);
    // The stats line gives the peak GPU memory against the budget.
    REQUIRE_THAT(b.err, Catch::Contains("GPU memory: peak") && Catch::Contains("of the 1.00 GiB budget"));
#endif
}

TEST_CASE("streaming changes no logit: resident or not, 1-3 ring slots, row blocks, KV on the host", "[gpu][cuda-engine][ring][streams]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    for (const char* dtype : {"f32", "bf16"}) {
        INFO(dtype);
        test::TempDir dir;
        SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "3", "--dtype", dtype}, dir));
        CudaEngineOptions all;
        CudaEngine reference(model, all);
        REQUIRE(reference.plan().streamed_per_token == 0);
        const std::vector<float> want = test::prompt_and_steps_logits(reference, k_prompt);
        struct Case {
            std::string what;
            CudaEngineOptions o;
            bool minimum; // at the smallest budget the options allow: nothing resident
        };
        std::vector<Case> cases;
        for (uint32_t slots : {1u, 2u, 3u}) {
            CudaEngineOptions o;
            o.ring_slots = slots;
            cases.push_back({std::to_string(slots) + " slots, nothing resident", o, true});
            o.max_slot = 4096 * 3 + 256; // row blocks that divide no matrix evenly
            cases.push_back({std::to_string(slots) + " slots, row blocks", o, true});
        }
        CudaEngineOptions kv;
        kv.kv = KvPlace::host;
        kv.kv_attend = KvAttend::gpu; // read over the bus (test_cuda_kv.cpp: attended on the CPU)
        cases.push_back({"KV cache on the host, everything resident", kv, false});
        cases.push_back({"KV cache on the host, nothing resident", kv, true});
        CudaEngineOptions tiered;
        tiered.max_slot = 8192;
        tiered.ram_budget = 1ull << 30;
        tiered.batch = 4; // the prompt in three parts
        cases.push_back({"RAM tier, row blocks, prompt in parts", tiered, true});
#ifdef RABBIT_CUDA_EMULATOR
        // On the emulated device, once as it comes, once with every kernel delayed (the compute
        // lags the copies: a slot copied over before the compute is done with it shows), and
        // once with every copy delayed (the compute must wait for the pieces).
        const std::vector<std::pair<unsigned, unsigned>> delays = {{0, 0}, {400, 0}, {0, 400}};
#else
        const std::vector<std::pair<unsigned, unsigned>> delays = {{0, 0}};
#endif
        for (const auto& [kernel_delay, copy_delay] : delays)
        for (const Case& cs : cases) {
            INFO(cs.what << "; kernel delay " << kernel_delay << " us, copy delay " << copy_delay << " us");
#ifdef RABBIT_CUDA_EMULATOR
            const EmuDelays delayed(kernel_delay, copy_delay);
#endif
            CudaEngineOptions o = cs.o;
            if (cs.minimum) {
                o.max_resident = 0; // the smallest budget could keep a small unit resident with smaller slots
                CudaEngineOptions plan_only = o;
                plan_only.vram_budget = 1ull << 40; // the tiny model is resident at once: read the minimum
                o.vram_budget = CudaEngine(model, plan_only).plan().minimum_budget;
            }
            CudaEngine e(model, o);
            if (cs.minimum) {
                REQUIRE(e.plan().resident_bytes == 0);
                REQUIRE(e.plan().streamed_per_token > 0);
            }
            REQUIRE(e.plan().kv_on_host == (o.kv == KvPlace::host));
            const std::vector<float> got = test::prompt_and_steps_logits(e, k_prompt);
            // Another row split can make cuBLAS choose another kernel: f32 sums in another order,
            // which bf16 rounding of the next activations can magnify.
            const bool f32 = std::string(dtype) == "f32";
            CHECK(test::worst_error(got, want, f32 ? 1e-5 : 1e-2, f32 ? 1e-4 : 1e-2) <= 1.0);
            const CudaEngineStats st = e.stats();
            if (cs.minimum) {
                REQUIRE(st.ring.pieces > 0);
                REQUIRE(st.peak_device_bytes <= o.vram_budget);
            }
        }
    }
#endif
}

TEST_CASE("a budget below the minimum is refused with the minimum; a 14B-shaped model runs in 4 GiB", "[gpu][cuda-engine][budget]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    // Qwen2.5-14B shapes with 6 layers: a 1.45 GiB embedding and lm_head, 525 MiB layers; 4.6
    // GiB read per token, more than the budget.
    const std::string split = test::generate_and_split({"-p", "qwen2.5-14b", "--layers", "6", "--dtype", "bf16"}, dir);
    SplitModel model = SplitModel::open(split);
    CudaEngineOptions tiny;
    tiny.vram_budget = 100ull << 20;
    tiny.ctx = 4096;
    try {
        CudaEngine e(model, tiny);
        FAIL("100 MiB was accepted");
    } catch (const Error& e) {
        REQUIRE(e.code() == ExitCode::resources);
        REQUIRE_THAT(e.what(), Catch::Contains("the minimum is"));
    }
    CudaEngineOptions four;
    four.vram_budget = 4ull << 30;
    four.ctx = 4096;
#ifdef RABBIT_CUDA_EMULATOR
    cuda_emu::reset_device_peak(0);
    const uint64_t before = cuda_emu::device_used(0);
#endif
    CudaEngine e(model, four);
    REQUIRE(e.plan().streamed_per_token > 0);
    std::vector<float> logits;
    e.forward(k_prompt.data(), k_prompt.size(), 1, logits);
    for (int i = 0; i < 4; ++i) {
        const int32_t t = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        e.forward(&t, 1, 1, logits);
    }
    const CudaEngineStats st = e.stats();
    WARN("14B-shaped, 4 layers, 4 GiB budget: peak " << st.peak_device_bytes << " bytes held, device use grew by "
                                                     << st.device_used_growth);
    REQUIRE(st.peak_device_bytes <= four.vram_budget);
    REQUIRE(st.device_used_growth <= four.vram_budget);
#ifdef RABBIT_CUDA_EMULATOR
    // The device's own peak: every allocation in whole pages, cuBLAS, the kernels' code.
    const uint64_t peak = cuda_emu::device_peak(0) - before;
    WARN("the emulated device's peak: " << peak << " of " << four.vram_budget);
    REQUIRE(peak <= four.vram_budget);
#endif
#endif
}

TEST_CASE("asking for CUDA without a usable GPU is a clear error", "[cuda-engine][cli]") {
#ifdef RABBIT_HAVE_CUDA
    if (test::gpu_available()) return; // the other side of this is the [gpu] tests
#endif
    test::TempDir dir;
    test::split_into(test::tinystories_dir(), dir / "ts");
    test::RunResult r = test::run_rabbit({"run", "-m", dir / "ts", "-p", "x", "--device", "cuda"});
    REQUIRE(r.exit_code == int(ExitCode::usage));
    REQUIRE_THAT(r.err, Catch::Contains("--device cuda"));
    // The default falls back to the CPU, saying so.
    test::RunResult d = test::run_rabbit({"run", "-m", dir / "ts", "--raw", "-p", "", "-n", "3"});
    REQUIRE(d.exit_code == 0);
    REQUIRE_THAT(d.err, Catch::Contains("running on the CPU"));
}

TEST_CASE("the CUDA engine counts and times its streaming stages; the link is measured", "[gpu][cuda-engine][bench][streams]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "5", "--dtype", "bf16"}, dir));
    uint64_t per_token = 0;
    {
        CudaEngineOptions all;
        CudaEngine e(model, all);
        per_token = e.plan().resident_bytes;
        std::vector<float> logits;
        e.forward(k_prompt.data(), k_prompt.size(), 1, logits);
        const StreamStats s = e.stream_stats(); // nothing streams
        REQUIRE((s.link_bytes == 0 && s.file_bytes == 0 && s.h2d_s == 0 && s.wait_s == 0));
    }
    for (uint64_t ram : {uint64_t(0), uint64_t(1) << 30}) {
        INFO("RAM budget " << ram);
        CudaEngineOptions o;
        o.max_resident = 0; // bench's "none"
        o.ram_budget = ram;
        CudaEngine e(model, o);
        REQUIRE(e.plan().resident_bytes == 0);
        REQUIRE(e.plan().streamed_per_token == per_token);
        std::vector<float> logits;
        e.forward(k_prompt.data(), k_prompt.size(), 1, logits);
        const StreamStats a = e.stream_stats();
        for (int32_t t : {5, 99, 400}) e.forward(&t, 1, 1, logits);
        const StreamStats d = e.stream_stats() - a;
        // Three tokens' weights crossed the link (the loader may be some pieces ahead).
        REQUIRE(d.link_bytes >= 2 * per_token);
        REQUIRE(d.link_bytes <= 4 * per_token);
        REQUIRE(d.h2d_s > 0);
        if (ram == 0) {
            REQUIRE(d.file_bytes == d.link_bytes); // from the files, through staging
            REQUIRE(d.host_copy_s > 0);
        } else {
            REQUIRE(d.file_bytes == 0); // from the pinned RAM tier, straight to the device
            REQUIRE(d.host_copy_s == 0);
        }
    }
    const LinkBandwidth l = measure_link(0, 64ull << 20, 3);
    REQUIRE(l.pinned_bps > 1e8);
    REQUIRE(l.pageable_bps > 1e8);
    // bench's GPU rows, beside a CPU row, as JSON.
    const std::string json = dir / "bench.json";
    test::RunResult r = test::run_rabbit({"bench", "-m", dir / "split", "--backend", "cuda,cpu", "--vram", "none,all",
                                          "--ring-slots", "2,3", "--prompt-len", "16", "--gen", "4", "--repeat", "2",
                                          "--read-bytes", "8M", "--json", json});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.out, Catch::Contains("host to device: pinned"));
    JsonDocument doc(test::read_file(json), json);
    auto configs = (*json_field(doc.root_object(), "configs")).get_array().value();
    REQUIRE(configs.size() == 5); // 2 slots x 2 VRAM settings, and the CPU
    for (auto c : configs) {
        auto o = c.get_object().value();
        REQUIRE(bool((*json_field(o, "ok")).get_bool()));
        REQUIRE(double((*json_field(o, "decode_tok_s")).get_double()) > 0);
        const bool cuda = std::string_view((*json_field(o, "backend")).get_string().value()) == "cuda";
        if (cuda) REQUIRE(uint64_t((*json_field(o, "peak_gpu_bytes")).get_uint64()) > 0);
        if (cuda && std::string_view((*json_field(o, "vram")).get_string().value()) == "none")
            REQUIRE(double((*json_field(o, "link_bytes_per_token")).get_double()) > 0);
    }
#endif
}

TEST_CASE("the device's memory stays within --vram-budget, measured on the device, from the minimum up", "[gpu][cuda-engine][budget-peak]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    // The device's own count of what the engine took: on the emulated device its peak (every
    // allocation in whole pages, cuBLAS's handle and kernels, rabbit's kernels' code); on a GPU
    // the growth of its used memory, sampled after load and after every pass.
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "7", "--dtype", "bf16"}, dir));
    REQUIRE(cudaFree(nullptr) == cudaSuccess); // the context exists before the engines: it is not theirs
    for (uint32_t slots : {1u, 2u, 3u}) {
        CudaEngineOptions probe;
        probe.ring_slots = slots;
        probe.vram_budget = 8ull << 30;
        const MemoryPlan all = CudaEngine(model, probe).plan();
        REQUIRE(all.streamed_per_token == 0);
        for (uint64_t budget = all.minimum_budget; budget <= all.device_bytes + (6u << 20); budget += 3u << 20) {
            INFO(slots << " slots, budget " << budget << " (minimum " << all.minimum_budget << ")");
            CudaEngineOptions o;
            o.ring_slots = slots;
            o.vram_budget = budget;
#ifdef RABBIT_CUDA_EMULATOR
            cuda_emu::reset_device_peak(0);
            const uint64_t before = cuda_emu::device_used(0), allocated_before = cuda_emu::allocation_peak(0);
#endif
            uint64_t growth = 0, planned_allocations = 0;
            {
                CudaEngine e(model, o);
                REQUIRE(e.plan().device_bytes <= budget);
                planned_allocations = e.plan().device_bytes - e.plan().overhead_bytes;
                test::prompt_and_steps_logits(e, k_prompt);
                growth = e.stats().device_used_growth;
            }
            REQUIRE(growth <= budget);
#ifdef RABBIT_CUDA_EMULATOR
            const uint64_t peak = cuda_emu::device_peak(0) - before;
            INFO("the emulated device's peak: " << peak << ", of its allocations "
                                                 << cuda_emu::allocation_peak(0) - allocated_before << " (planned "
                                                 << planned_allocations << ")");
            REQUIRE(peak <= budget);
            // The allocations alone, in the device's own pages, against the plan's count of
            // them (the reserves beside them would hide a plan that forgot the rounding).
            REQUIRE(cuda_emu::allocation_peak(0) - allocated_before <= planned_allocations);
            REQUIRE(cuda_emu::device_used(0) == before); // and everything is given back
#endif
        }
    }
#endif
}

TEST_CASE("a --vram-budget as large as the free memory, or larger, loads and runs", "[gpu][cuda-engine][budget-peak]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen2", "--seed", "2", "--dtype", "bf16"}, dir));
#ifdef RABBIT_CUDA_EMULATOR
    // A small device, so that the free memory is what the plan runs into.
    cuda_emu::Settings s = cuda_emu::settings();
    const cuda_emu::Settings saved = s;
    s.memory = cuda_emu::device_used(0) + (200ull << 20);
    cuda_emu::set_settings(s);
#endif
    size_t free_b = 0, total = 0;
    REQUIRE(cudaMemGetInfo(&free_b, &total) == cudaSuccess);
    for (uint64_t budget : {uint64_t(free_b), uint64_t(free_b) + (uint64_t(1) << 30)}) {
        INFO("budget " << budget << ", free " << free_b);
        CudaEngineOptions o;
        o.vram_budget = budget;
        o.ctx = 256;
        CudaEngine e(model, o);
        REQUIRE(e.stats().budget <= free_b);
        REQUIRE(test::greedy(e, k_prompt, k_prompt.size() + 8).size() == k_prompt.size() + 8);
    }
#ifdef RABBIT_CUDA_EMULATOR
    cuda_emu::set_settings(saved);
#endif
#endif
}

TEST_CASE("the GPU spans leave no error behind for the next launch when an event is not ready", "[gpu][cuda-engine][streams]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
#ifdef RABBIT_CUDA_EMULATOR
    const EmuDelays slow(50000, 0); // the kernel is still queued when the span is read
#endif
    cudaStream_t stream = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    {
        DeviceBuffer buf(4096);
        GpuSpans spans;
        spans.begin(stream);
        REQUIRE(launch_bf16_to_f16(buf.get(), 2048, stream) == cudaSuccess);
        spans.end(stream);
        (void)spans.seconds(); // cudaEventQuery: not ready
        REQUIRE(cudaGetLastError() == cudaSuccess);
        REQUIRE(launch_bf16_to_f16(buf.get(), 2048, stream) == cudaSuccess);
        REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
        REQUIRE(spans.seconds() > 0);
    }
    REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
#endif
}

TEST_CASE("a CudaEvent moves its event and destroys it once", "[gpu][cuda-engine][streams]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    cudaStream_t stream = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    {
        CudaEvent a(cudaEventDisableTiming | cudaEventBlockingSync);
        REQUIRE(a);
        const cudaEvent_t raw = a.get();
        CudaEvent b(std::move(a));
        REQUIRE(!a);
        REQUIRE(b.get() == raw);
        CudaEvent c;
        REQUIRE(!c);
        c = std::move(b); // c had none: nothing destroyed
        REQUIRE(!b);
        REQUIRE(c.get() == raw);
        REQUIRE(cudaEventRecord(c.get(), stream) == cudaSuccess);
        REQUIRE(cudaEventSynchronize(c.get()) == cudaSuccess);
        c = CudaEvent(cudaEventDefault); // the old one destroyed, a new one held
        REQUIRE(c.get() != nullptr);
        REQUIRE(cudaEventRecord(c.get(), stream) == cudaSuccess);
        REQUIRE(cudaEventSynchronize(c.get()) == cudaSuccess);
    }
    REQUIRE(cudaGetLastError() == cudaSuccess);
    REQUIRE(cudaStreamDestroy(stream) == cudaSuccess);
#endif
}

#ifdef RABBIT_CUDA_EMULATOR
TEST_CASE("emulated: passes copy nothing from pageable memory, spin no waits, set no attributes; a host KV cache is write-combined", "[gpu][cuda-engine][emu][streams]") {
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--seed", "4", "--dtype", "bf16"}, dir));
    if (!test::gpu_available()) return;
    for (bool streaming : {false, true}) {
        INFO((streaming ? "nothing resident, KV cache on the host" : "everything resident"));
        CudaEngineOptions o;
        if (streaming) {
            o.max_resident = 0;
            o.kv = KvPlace::host;
            o.kv_attend = KvAttend::gpu; // the kernels read it over the bus (test_cuda_kv.cpp: the CPU)
        }
        const cuda_emu::Counters c0 = cuda_emu::counters();
        CudaEngine e(model, o);
        const cuda_emu::Counters c1 = cuda_emu::counters();
        REQUIRE(c1.write_combined_allocations - c0.write_combined_allocations == (streaming ? 1u : 0u));
        // Logits of a prompt (several groups of rows), decode steps, and GPU sampling.
        test::prompt_and_steps_logits(e, k_prompt);
        auto tok = std::vector<int32_t>(k_prompt);
        for (SamplingParams sp : {SamplingParams{0.0f, 0, 1.0f, 0.0f, 1.3f, 0}, SamplingParams{0.8f, 40, 0.9f, 0.05f, 1.1f, 7},
                                  SamplingParams{1.0f, 0, 0.95f, 0.0f, 1.0f, 3}}) {
            Sampler sampler(sp);
            tok.push_back(e.step(&tok.back(), 1, sampler, tok, nullptr));
        }
        const cuda_emu::Counters c2 = cuda_emu::counters();
        REQUIRE(c2.pageable_async_copies == c1.pageable_async_copies);
        REQUIRE(c2.spinning_waits == c0.spinning_waits);
        REQUIRE(c2.function_attribute_sets == c1.function_attribute_sets);
    }
}

TEST_CASE("emulated: resident units share one pair of staging buffers, however many there are", "[gpu][cuda-engine][emu]") {
    if (!test::gpu_available()) return;
    uint64_t allocations[2] = {};
    for (int k = 0; k < 2; ++k) {
        test::TempDir dir;
        const std::string layers = k == 0 ? "2" : "9";
        SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen3", "--layers", layers, "--dtype", "bf16"}, dir));
        const uint64_t before = cuda_emu::counters().host_allocations;
        CudaEngine e(model, {});
        REQUIRE(e.plan().streamed_per_token == 0);
        allocations[k] = cuda_emu::counters().host_allocations - before;
    }
    REQUIRE(allocations[0] == allocations[1]);
}

TEST_CASE("emulated: only the device asked for is probed, once", "[cuda-engine][emu]") {
    // Two emulated GPUs; an engine on the second makes no context on the first, and a second
    // engine probes nothing again. (No gpu_available() here: it would probe device 0.)
    cuda_emu::Settings s = cuda_emu::settings();
    s.devices = 2;
    cuda_emu::set_settings(s);
    const bool fresh = !cuda_emu::has_context(0);
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-llama3", "--dtype", "bf16"}, dir));
    const uint64_t probes = cuda_emu::launches_named("probe_kernel");
    CudaEngineOptions o;
    o.device = 1;
    for (int k = 0; k < 2; ++k) {
        CudaEngine e(model, o);
        REQUIRE(test::greedy(e, k_prompt, k_prompt.size() + 3).size() == k_prompt.size() + 3);
    }
    REQUIRE(cuda_emu::launches_named("probe_kernel") == probes + 1);
    REQUIRE(cuda_emu::has_context(1));
    if (fresh) REQUIRE(!cuda_emu::has_context(0));
}

TEST_CASE("emulated sm_75: bf16 weights in f16 with MLP activations beyond 65504 give the CPU's logits", "[gpu][cuda-engine][emu]") {
    if (!test::gpu_available()) return;
    // Gate and up projections 300 times larger: SwiGLU's outputs reach about 10^6, as Qwen2.x's
    // exceed f16's range. sm_75 has no bf16 arithmetic, so the engine computes in f16.
    test::TempDir dir;
    SplitModel model = SplitModel::open(test::generate_and_split({"-p", "tiny-qwen2", "--seed", "9", "--dtype", "bf16", "--mlp-scale", "300"}, dir));
    cuda_emu::Settings s = cuda_emu::settings();
    const cuda_emu::Settings saved = s;
    s.arch = 75;
    cuda_emu::set_settings(s);
    std::vector<float> got;
    {
        CudaEngine gpu(model, {});
        got = test::prompt_and_steps_logits(gpu, k_prompt);
    }
    cuda_emu::set_settings(saved);
    CpuEngine cpu(model, {});
    const std::vector<float> want = test::prompt_and_steps_logits(cpu, k_prompt);
    const double w = test::worst_error(got, want, 3e-2 * test::rms(want), 3e-2);
    WARN("f16 compute, MLP activations beyond f16: largest CUDA-CPU difference " << w << " of the tolerance");
    REQUIRE(w <= 1.0);
}
#endif

TEST_CASE("rabbit run --device cuda gives the CPU's greedy text for tinystories-656k, also with everything streamed", "[gpu][cuda-engine][golden][cli]") {
    if (!test::have_shared()) return;
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    test::split_into(test::tinystories_dir(), dir / "ts");
    const std::vector<std::string> gen = {"run", "-m", dir / "ts", "--raw", "-p", "Once upon a time, there was a dog named",
                                          "-n", "60", "--temp", "0", "--ctx", "512"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = gen;
        args.insert(args.end(), extra.begin(), extra.end());
        return test::run_rabbit(args);
    };
    const test::RunResult cpu = with({"--device", "cpu"});
    REQUIRE(cpu.exit_code == 0);
    REQUIRE(!cpu.out.empty());
    const test::RunResult gpu = with({"--device", "cuda"});
    INFO(gpu.err);
    REQUIRE(gpu.exit_code == 0);
    REQUIRE(gpu.out == cpu.out);
    // The smallest budget inspect reports, with one ring slot: nothing can stay resident.
    const test::RunResult plan = test::run_rabbit({"inspect", dir / "ts", "--vram-budget", "1M", "--ring-slots", "1", "--ctx", "512", "--json"});
    REQUIRE(plan.exit_code == 0);
    JsonDocument doc(plan.out, "inspect output");
    const uint64_t minimum = json_to_uint(*json_field(json_to_object(*json_field(doc.root_object(), "vram_plan"), "", ""),
                                                      "minimum_budget"), "", "");
    const test::RunResult streamed = with({"--device", "cuda", "--ring-slots", "1", "--vram-budget", std::to_string(minimum), "-v"});
    INFO(streamed.err);
    REQUIRE(streamed.exit_code == 0);
    REQUIRE(streamed.out == cpu.out);
    REQUIRE_THAT(streamed.err, Catch::Contains("resident:0 of 2 layers"));
    REQUIRE_THAT(streamed.err, Catch::Matches("(.|\n)*ring: [1-9][0-9]* pieces(.|\n)*"));
    // A byte less is refused, with the minimum.
    const test::RunResult less = with({"--device", "cuda", "--ring-slots", "1", "--vram-budget", std::to_string(minimum - 1)});
    REQUIRE(less.exit_code == int(ExitCode::resources));
    REQUIRE_THAT(less.err, Catch::Contains("the minimum is"));
#endif
}
