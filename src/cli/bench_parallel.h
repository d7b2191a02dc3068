// SPDX-License-Identifier: Apache-2.0
// `rabbit bench --parallel 1,8,32`: throughput of batched generation. For each configuration
// and each count N: N sequences, each a prompt of --prompt-len tokens and --gen greedy decode
// steps, all stepped in the same passes (Engine::forward_slots). Reports the tokens per second
// of all of them together and each sequence's latency (a pass's time is each sequence's time
// per token), against the first count's.
#pragma once

#include "cli/bench_report.h"
#include "engine/engine.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rabbit {

class SplitModel;

// A prompt of n random ids below the vocabulary's size, one per seed (each sequence its own):
// the speed of a pass does not depend on which ids they are, and random ids make no special
// case of any. Seed 0 is every plain `bench` configuration's prompt.
std::vector<int32_t> bench_prompt(const ModelConfig& c, size_t n, uint64_t seed = 0);

// cmd_bench.cpp's engine for a configuration, with KV caches planned for `sequences`.
std::unique_ptr<Engine> bench_engine(const SplitModel& model, const BenchConfig& b, const Settings& s, ConfigResult& r,
                                     size_t sequences = 1);

// Measures every configuration at every count; the table on stdout, JSON to `json` when set
// ("-": stdout instead of the table). Returns the exit code of the last failure, or 0.
int run_parallel_bench(const SplitModel& model, const std::vector<BenchConfig>& configs, const Settings& s,
                       const std::vector<size_t>& counts, const std::string& json);

} // namespace rabbit
