// SPDX-License-Identifier: Apache-2.0
#include "engine_helpers.h"

#include "split/splitter.h"

#include <algorithm>

namespace rabbit::test {

std::string split_into(const std::string& src, const std::string& out, DTypeChoice dtype) {
    SplitOptions opt;
    opt.model_dir = src;
    opt.out_dir = out;
    opt.dtype = dtype;
    SplitProgress quiet;
    run_split(opt, quiet);
    return out;
}

std::vector<int32_t> greedy(Engine& engine, const std::vector<int32_t>& prompt, size_t total) {
    std::vector<int32_t> seq = prompt;
    std::vector<float> logits;
    engine.reset();
    engine.forward(seq.data(), seq.size(), 1, logits);
    while (seq.size() < total) {
        const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        seq.push_back(next);
        if (seq.size() == total) break;
        engine.forward(&next, 1, 1, logits);
    }
    return seq;
}

std::vector<float> prompt_and_steps_logits(Engine& engine, const std::vector<int32_t>& prompt) {
    std::vector<float> all, logits;
    engine.reset();
    engine.forward(prompt.data(), prompt.size(), prompt.size(), logits);
    all = logits;
    for (int32_t t : {5, 99, 400}) {
        engine.forward(&t, 1, 1, logits);
        all.insert(all.end(), logits.begin(), logits.end());
    }
    return all;
}

} // namespace rabbit::test
