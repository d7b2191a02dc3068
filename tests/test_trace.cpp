// SPDX-License-Identifier: Apache-2.0
// The timeline trace (common/trace.h, --trace): a valid Chrome trace-event file, and on both
// engines a span for every unit of every pass, inside that pass's span on the tokens track.
#include "backend/cpu/cpu_engine.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/trace.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "gpu.h"
#include "helpers.h"

#include <catch2/catch.hpp>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

using namespace rabbit;

namespace {

struct Event {
    std::string name;
    int64_t tid = 0;
    double ts = 0, dur = 0;
};

// The file's complete events, after checking the trace-event format: an object with a
// traceEvents array whose every event has a name, a phase, pid and tid; the "X" events finite
// ts >= 0 and dur >= 0; and a thread_name for each of the five tracks.
std::vector<Event> read_trace(const std::string& path) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(parser.load(path).get(doc) == simdjson::SUCCESS);
    simdjson::dom::array events;
    REQUIRE(doc["traceEvents"].get(events) == simdjson::SUCCESS);
    std::vector<Event> out;
    std::set<int64_t> named;
    for (simdjson::dom::element e : events) {
        std::string_view name, ph;
        int64_t pid = 0, tid = 0;
        REQUIRE(e["name"].get(name) == simdjson::SUCCESS);
        REQUIRE(e["ph"].get(ph) == simdjson::SUCCESS);
        REQUIRE(e["pid"].get(pid) == simdjson::SUCCESS);
        REQUIRE(e["tid"].get(tid) == simdjson::SUCCESS);
        if (ph == "M") {
            if (name == "thread_name") named.insert(tid);
            continue;
        }
        REQUIRE(ph == "X");
        Event x{std::string(name), tid};
        REQUIRE(e["ts"].get(x.ts) == simdjson::SUCCESS);
        REQUIRE(e["dur"].get(x.dur) == simdjson::SUCCESS);
        REQUIRE(std::isfinite(x.ts));
        REQUIRE(std::isfinite(x.dur));
        REQUIRE(x.ts >= 0);
        REQUIRE(x.dur >= 0);
        out.push_back(x);
    }
    for (trace::Track t : {trace::Track::loader, trace::Track::host_copy, trace::Track::copy_engine,
                           trace::Track::compute, trace::Track::tokens})
        REQUIRE(named.count(int64_t(t)));
    return out;
}

std::vector<Event> on_track(const std::vector<Event>& all, trace::Track t) {
    std::vector<Event> out;
    for (const Event& e : all)
        if (e.tid == int64_t(t)) out.push_back(e);
    return out;
}

// Every pass (a span on the tokens track) holds a compute span of each unit, in the
// manifest's order of use: embed, the layers, norm, the head.
void require_every_unit_of_every_pass(const std::vector<Event>& all, const std::vector<std::string>& units, size_t passes) {
    const std::vector<Event> tokens = on_track(all, trace::Track::tokens), compute = on_track(all, trace::Track::compute);
    REQUIRE(tokens.size() == passes);
    for (const Event& pass : tokens) {
        INFO("pass " << pass.name);
        std::vector<std::string> seen;
        for (const Event& c : compute)
            if (c.ts >= pass.ts - 1 && c.ts + c.dur <= pass.ts + pass.dur + 1) seen.push_back(c.name);
        REQUIRE(seen == units);
    }
}

// A tiny random Llama 3 with a small synthetic byte-level tokenizer from the repository,
// split: what `rabbit run` needs, without ../shared.
std::string tiny_split(const test::TempDir& dir) {
    GenSpec spec = preset_spec("tiny-llama3");
    spec.config.vocab_size = 1024; // the tokenizer's 802 ids fit
    spec.tokenizer_dir = test::source_dir() + "/tests/data/tokenizer/synthetic/llama3-style";
    generate_model(spec, dir / "m");
    return test::split_into(dir / "m", dir / "s");
}

} // namespace

TEST_CASE("a trace is valid trace-event JSON with the spans it was given", "[trace]") {
    test::TempDir dir;
    const std::string path = dir / "t.json";
    trace::start(path);
    REQUIRE(trace::enabled());
    trace::complete(trace::Track::loader, "read \"layer.0\"", 5, 10, "\"bytes\": 4096");
    { trace::Span s(trace::Track::compute, "layer.0"); }
    trace::finish();
    REQUIRE_FALSE(trace::enabled());
    { trace::Span s(trace::Track::compute, "after"); } // off: not recorded, no error
    const std::vector<Event> ev = read_trace(path);
    REQUIRE(ev.size() == 2);
    REQUIRE(ev[0].name == "read \"layer.0\"");
    REQUIRE(ev[0].ts == 5);
    REQUIRE(ev[0].dur == 10);
    REQUIRE(ev[1].name == "layer.0");
    REQUIRE(ev[1].tid == int64_t(trace::Track::compute));
    trace::finish(); // not started: nothing
}

TEST_CASE("rabbit run --trace on the CPU: a span for every unit of every pass", "[trace][cli]") {
    test::TempDir dir;
    const std::string split = tiny_split(dir);
    test::RunResult r = test::run_rabbit({"run", "-m", split, "--raw", "-p", "hello", "-n", "4", "--temp", "0", "--ignore-eos",
                                          "--device", "cpu", "--trace", dir / "t.json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.err, Catch::Contains("wrote the timeline to"));
    const std::vector<Event> ev = read_trace(dir / "t.json");
    std::vector<std::string> units = {"embed"};
    const SplitModel model = SplitModel::open(split);
    for (size_t l = 0; l < model.config().num_layers; ++l) units.push_back("layer." + std::to_string(l));
    units.push_back("norm");
    units.push_back(model.config().tie_word_embeddings ? "lm_head (tied embed)" : "lm_head");
    require_every_unit_of_every_pass(ev, units, 4); // the prompt, then 3 decode steps
    REQUIRE(on_track(ev, trace::Track::loader).size() >= 4 * (units.size() - 1));
}

TEST_CASE("a trace path that cannot be written is refused before the work", "[trace][cli]") {
    test::TempDir dir;
    const std::string split = tiny_split(dir);
    test::RunResult r = test::run_rabbit({"run", "-m", split, "--raw", "-p", "hello", "-n", "2", "--device", "cpu",
                                          "--trace", dir / "no-such-dir/t.json"});
    REQUIRE(r.exit_code != 0);
    REQUIRE_THAT(r.err, Catch::Contains("no-such-dir"));
    REQUIRE(r.out.empty());
}

TEST_CASE("rabbit run --trace on the CUDA engine: copies on the copy engine, every unit of every pass", "[trace][cli][gpu]") {
    if (!test::gpu_available()) return;
    test::TempDir dir;
    const std::string split = tiny_split(dir);
    // A budget at the minimum (which a budget too small names) keeps no weight resident:
    // every layer streams each pass.
    std::vector<std::string> args = {"run", "-m", split, "--raw", "-p", "hello", "-n", "4", "--temp", "0", "--ignore-eos",
                                     "--device", "cuda", "--ctx", "64", "--trace", dir / "t.json", "--vram-budget"};
    args.push_back("1M");
    const test::RunResult small = test::run_rabbit(args);
    std::smatch m;
    REQUIRE(std::regex_search(small.err, m, std::regex("the minimum is ([0-9]+) MiB")));
    args.back() = m[1].str() + "M";
    test::RunResult r = test::run_rabbit(args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::vector<Event> ev = read_trace(dir / "t.json");
    const SplitModel model = SplitModel::open(split);
    std::vector<std::string> units = {"embed"};
    for (size_t l = 0; l < model.config().num_layers; ++l) units.push_back("layer." + std::to_string(l));
    units.push_back("norm");
    units.push_back(model.config().tie_word_embeddings ? "embed" : "lm_head");
    require_every_unit_of_every_pass(ev, units, 4);
    // Each pass copies each streamed layer (whole, or in row blocks) at least once.
    const std::vector<Event> copies = on_track(ev, trace::Track::copy_engine);
    for (size_t l = 0; l < model.config().num_layers; ++l) {
        size_t n = 0;
        for (const Event& c : copies) n += c.name.rfind("layer." + std::to_string(l), 0) == 0;
        INFO("layer." << l);
        REQUIRE(n >= 4);
    }
}

TEST_CASE("a prompt's passes report each layer to the prefill display", "[trace][engine]") {
    test::TempDir dir;
    const std::string split = tiny_split(dir);
    const SplitModel model = SplitModel::open(split);
    EngineOptions eo;
    eo.batch = 4; // a prompt of 10 tokens in 3 passes
    CpuEngine engine(model, eo);
    std::vector<PrefillProgress> seen;
    engine.set_prefill_progress([&](const PrefillProgress& p) { seen.push_back(p); });
    std::vector<float> logits;
    engine.forward(std::vector<int32_t>(10, 5).data(), 10, 1, logits);
    const size_t layers = model.config().num_layers;
    REQUIRE(seen.size() == 3 * layers);
    for (size_t i = 0; i < seen.size(); ++i) {
        const size_t part = i / layers, layer = i % layers + 1;
        REQUIRE(seen[i].tokens == 10);
        REQUIRE(seen[i].layers == layers);
        REQUIRE(seen[i].layer == layer);
        REQUIRE(seen[i].tokens_done == (layer == layers ? std::min<size_t>(10, 4 * (part + 1)) : 4 * part));
    }
    seen.clear();
    engine.forward(std::vector<int32_t>(1, 5).data(), 1, 1, logits); // a decode step: nothing
    REQUIRE(seen.empty());
}
