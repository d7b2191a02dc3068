// SPDX-License-Identifier: Apache-2.0
// Stop strings in generated text: what can be printed now, and what must wait because it
// could still turn into a stop string. Shared by the one-sequence and the batched loops.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace rabbit {

// Holds back text that could still turn into a stop string.
class StopFilter {
public:
    explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {}
    // Appends text; returns what can be printed now. `stopped` is set when a stop string appeared.
    std::string push(const std::string& text, bool* stopped) {
        pending_ += text;
        // The earliest stop string in the text, whichever was given first.
        size_t first = std::string::npos;
        for (const auto& s : stops_)
            if (!s.empty()) first = std::min(first, pending_.find(s));
        if (first != std::string::npos) {
            *stopped = true;
            std::string out = pending_.substr(0, first);
            pending_.clear();
            return out;
        }
        // Keep the longest tail that is a prefix of some stop string.
        size_t keep = 0;
        for (const auto& s : stops_)
            for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > keep; --k)
                if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
                    keep = k;
                    break;
                }
        std::string out = pending_.substr(0, pending_.size() - keep);
        pending_.erase(0, pending_.size() - keep);
        return out;
    }
    std::string flush() {
        std::string out;
        out.swap(pending_);
        return out;
    }

private:
    const std::vector<std::string>& stops_;
    std::string pending_;
};

} // namespace rabbit
