// SPDX-License-Identifier: Apache-2.0
#include "engine/slot_passes.h"

#include "common/error.h"

#include <algorithm>

namespace rabbit {

size_t total_tokens(const std::vector<SlotTokens>& seqs) {
    size_t n = 0;
    for (const SlotTokens& s : seqs) n += s.n;
    return n;
}

std::vector<SlotPass> slot_passes(const ModelConfig& c, const std::vector<SlotTokens>& seqs,
                                  const std::vector<size_t>& positions, size_t batch, uint64_t ctx) {
    RABBIT_CHECK(!seqs.empty() && batch > 0, "a forward of no sequences");
    std::vector<bool> seen(positions.size(), false);
    for (const SlotTokens& s : seqs) {
        RABBIT_CHECK(s.slot < positions.size() && !seen[s.slot], "a forward naming a missing or repeated sequence slot");
        RABBIT_CHECK(s.n > 0 && s.n_logits <= s.n, "a sequence with no tokens or more logits than tokens");
        seen[s.slot] = true;
        check_room(c, positions[s.slot], s.n, ctx);
    }
    std::vector<SlotPass> passes(1);
    size_t done = 0;
    for (const SlotTokens& s : seqs) {
        for (size_t i = 0; i < s.n;) {
            if (passes.back().tokens.size() == batch) {
                passes.emplace_back();
                passes.back().first = done;
            }
            SlotPass& p = passes.back();
            const size_t take = std::min(s.n - i, batch - p.tokens.size()), row = p.tokens.size();
            p.runs.push_back({s.slot, row, take, positions[s.slot] + i});
            p.tokens.insert(p.tokens.end(), s.tokens + i, s.tokens + i + take);
            // The last n_logits tokens of the sequence: those of this run at or past n - n_logits.
            for (size_t k = std::max(i, s.n - s.n_logits); k < i + take; ++k) p.logit_rows.push_back(row + (k - i));
            i += take;
            done += take;
        }
    }
    return passes;
}

} // namespace rabbit
