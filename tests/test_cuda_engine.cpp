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
#include "backend/cuda/link.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "engine/cpu_engine.h"
#include "engine/generate.h"
#include "format/split_model.h"
#include "tokenizer/tokenizer.h"

#include <cmath>
#endif

using namespace rabbit;

#ifdef RABBIT_HAVE_CUDA
namespace {

std::string make_split(const std::vector<std::string>& genmodel_args, const test::TempDir& dir) {
    std::vector<std::string> args = genmodel_args;
    args.insert(args.end(), {"-o", dir / "hf"});
    REQUIRE(test::run_program(RABBIT_GENMODEL_BIN, args).exit_code == 0);
    return test::split_into(dir / "hf", dir / "split");
}

const std::vector<int32_t> k_prompt = {1, 50, 7, 300, 21, 9, 64, 3, 17};

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

TEST_CASE("streaming changes no logit: resident or not, 1-3 ring slots, row blocks, KV on the host", "[gpu][cuda-engine][ring]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    for (const char* dtype : {"f32", "bf16"}) {
        INFO(dtype);
        test::TempDir dir;
        SplitModel model = SplitModel::open(make_split({"-p", "tiny-qwen3", "--seed", "3", "--dtype", dtype}, dir));
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
        cases.push_back({"KV cache on the host, everything resident", kv, false});
        cases.push_back({"KV cache on the host, nothing resident", kv, true});
        CudaEngineOptions tiered;
        tiered.max_slot = 8192;
        tiered.ram_budget = 1ull << 30;
        tiered.batch = 4; // the prompt in three parts
        cases.push_back({"RAM tier, row blocks, prompt in parts", tiered, true});
        for (const Case& cs : cases) {
            INFO(cs.what);
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
    const std::string split = make_split({"-p", "qwen2.5-14b", "--layers", "6", "--dtype", "bf16"}, dir);
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

TEST_CASE("the CUDA engine counts and times its streaming stages; the link is measured", "[gpu][cuda-engine][bench]") {
    if (!test::gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    test::TempDir dir;
    SplitModel model = SplitModel::open(make_split({"-p", "tiny-qwen3", "--seed", "5", "--dtype", "bf16"}, dir));
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
