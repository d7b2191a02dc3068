// SPDX-License-Identifier: Apache-2.0
#include "engine/engine.h"

namespace rabbit {

int32_t Engine::step(const int32_t* tokens, size_t n, Sampler& sampler, const std::vector<int32_t>& history,
                     std::vector<float>* all_logits) {
    std::vector<float> logits;
    forward(tokens, n, all_logits ? n : 1, logits);
    if (all_logits) {
        all_logits->insert(all_logits->end(), logits.begin(), logits.end());
        logits.erase(logits.begin(), logits.end() - long(logits.size() / n)); // the last token's
    }
    return sampler.sample(logits, history);
}

} // namespace rabbit
