// SPDX-License-Identifier: Apache-2.0
#include "engine/engine.h"

#include "common/error.h"

#include <algorithm>

namespace rabbit {

StreamStats operator-(const StreamStats& a, const StreamStats& b) {
    StreamStats d;
    d.disk_s = a.disk_s - b.disk_s;
    d.host_copy_s = a.host_copy_s - b.host_copy_s;
    d.h2d_s = a.h2d_s - b.h2d_s;
    d.wait_s = a.wait_s - b.wait_s;
    d.file_bytes = a.file_bytes - b.file_bytes;
    d.link_bytes = a.link_bytes - b.link_bytes;
    d.experts_run = a.experts_run - b.experts_run;
    d.expert_hits = a.expert_hits - b.expert_hits;
    return d;
}

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

void Engine::set_slots(size_t n) {
    if (n != 1) throw Error(ExitCode::usage, "this engine runs one sequence at a time; --parallel 1");
}

size_t Engine::slot_position(size_t slot) const {
    RABBIT_CHECK(slot == 0, "no such sequence slot");
    return position();
}

void Engine::reset_slot(size_t slot) {
    RABBIT_CHECK(slot == 0, "no such sequence slot");
    reset();
}

void Engine::forward_slots(const std::vector<SlotTokens>& seqs, std::vector<float>& logits) {
    RABBIT_CHECK(seqs.size() == 1 && seqs[0].slot == 0, "no such sequence slot");
    forward(seqs[0].tokens, seqs[0].n, seqs[0].n_logits, logits);
}

void Engine::forward_tree(const int32_t* tokens, const int64_t* parents, size_t n, std::vector<float>& logits) {
    for (size_t i = 0; i < n; ++i)
        if (parents[i] != (i == 0 ? -1 : int64_t(position() + i - 1)))
            throw Error(ExitCode::internal, "this engine runs draft chains only, not trees");
    forward(tokens, n, n, logits);
}

void Engine::keep_rows(size_t base, const std::vector<size_t>& rows) {
    for (size_t i = 0; i < rows.size(); ++i)
        if (rows[i] != i) throw Error(ExitCode::internal, "this engine cannot move rows of its KV cache");
    truncate(base + rows.size());
}

void Engine::fill_cache(size_t, uint64_t) {
    throw Error(ExitCode::usage, "--fill-ctx: this engine cannot fill its KV cache with synthetic positions; use --backend cpu");
}

uint64_t checked_context(const ModelConfig& c, uint64_t requested) {
    if (requested > c.max_context())
        throw Error(ExitCode::usage, "--ctx " + std::to_string(requested) + " is more than the model's " +
                                         std::to_string(c.max_context()) + " positions");
    return requested ? requested : c.max_context();
}

void check_room(const ModelConfig& c, size_t pos, size_t n, uint64_t ctx) {
    if (pos + n > ctx)
        throw Error(ExitCode::usage, "the context is full: " + std::to_string(pos + n) + " positions needed, " +
                                         std::to_string(ctx) + " available (--ctx, at most the model's " +
                                         std::to_string(c.max_context()) + ")");
}

void check_token_ids(const int32_t* tokens, size_t n, uint64_t rows, const std::string& dir) {
    for (size_t t = 0; t < n; ++t)
        if (tokens[t] < 0 || uint64_t(tokens[t]) >= rows)
            throw bad_input(dir, "token id " + std::to_string(tokens[t]) + " is outside the embedding (" +
                                     std::to_string(rows) + " rows): tokenizer and model disagree");
}

void for_each_part(size_t n, size_t n_logits, size_t batch, const std::function<void(size_t, size_t, size_t)>& fn) {
    const size_t first_wanted = n - n_logits;
    for (size_t done = 0; done < n;) {
        const size_t m = std::min(batch, n - done), end = done + m;
        fn(done, m, end > first_wanted ? end - std::max(done, first_wanted) : 0);
        done = end;
    }
}

} // namespace rabbit
