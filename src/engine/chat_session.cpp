// SPDX-License-Identifier: Apache-2.0
#include "engine/chat_session.h"

#include "common/error.h"
#include "common/interrupt.h"

#include <algorithm>

namespace rabbit {

ChatSession::ChatSession(Engine& engine, const Tokenizer& tok, ChatTemplate tmpl, ChatOptions options,
                         GenerateOptions generate)
    : engine_(&engine), tok_(tok), tmpl_(std::move(tmpl)), options_(std::move(options)), generate_(std::move(generate)) {}

void ChatSession::reset() {
    messages_.clear();
    cached_.clear();
    engine_->reset();
}

void ChatSession::set_engine(Engine& engine) {
    engine_ = &engine;
    cached_.clear();
    engine_->reset();
}

std::string ChatSession::rendered(bool add_generation_prompt) const {
    std::vector<ChatMessage> all;
    if (system_) all.push_back({"system", *system_});
    all.insert(all.end(), messages_.begin(), messages_.end());
    ChatOptions o = options_;
    o.add_generation_prompt = add_generation_prompt;
    return render_chat(tmpl_, all, o);
}

// The first user turn and the answers after it, up to the next user turn; 0 when the only user
// turn left is the newest.
size_t ChatSession::drop_oldest_turn() {
    size_t users = 0;
    for (const ChatMessage& m : messages_) users += m.role == "user";
    if (users < 2 || messages_.front().role != "user") return 0;
    size_t end = 1;
    while (end < messages_.size() && messages_[end].role != "user") ++end;
    messages_.erase(messages_.begin(), messages_.begin() + long(end));
    return 1;
}

ChatTurn ChatSession::turn(const std::string& user, const std::function<void(const std::string&)>& on_text,
                           const std::function<void(const std::string&)>& on_prompt) {
    ChatTurn t;
    const std::vector<ChatMessage> before = messages_; // what a refused turn leaves
    messages_.push_back({"user", user});
    std::string text;
    std::vector<int32_t> ids;
    auto render = [&] {
        text = rendered(true);
        ids = tok_.encode(text, false);
    };
    try {
        render();
        // Room for the answer: generate's limit, but no more than a quarter of the context.
        const size_t ctx = engine_->context();
        const size_t room = std::min<size_t>(std::max<size_t>(generate_.max_tokens, 1), std::max<size_t>(ctx / 4, 1));
        while (ids.size() + room > ctx && drop_oldest_turn()) {
            ++t.dropped_turns;
            render();
        }
        if (ids.size() >= ctx)
            throw Error(ExitCode::usage, "this turn is " + std::to_string(ids.size()) +
                                             " tokens with the system prompt, as long as the context (" +
                                             std::to_string(ctx) + "); shorten it or raise --ctx");
    } catch (...) {
        messages_ = before;
        throw;
    }
    // What the cache holds of it: the longest common prefix, less one token if that is all of
    // it (a pass needs a token to give the next one's logits).
    size_t keep = 0;
    while (keep < cached_.size() && keep < ids.size() && cached_[keep] == ids[keep]) ++keep;
    if (keep == ids.size()) --keep;
    engine_->truncate(keep);
    cached_.resize(keep);
    if (on_prompt) on_prompt(text);
    t.rendered_tokens = ids.size();
    t.cached_tokens = keep;
    const std::vector<int32_t> fresh(ids.begin() + long(keep), ids.end());
    GenerateOptions options = generate_;
    options.preceding = cached_; // the repetition penalty's context: the whole conversation
    try {
        t.result = generate(*engine_, tok_, fresh, options, [&](const std::string& s) {
            t.reply += s;
            on_text(s);
        });
    } catch (const Error& e) {
        if (e.code() != ExitCode::interrupted) {
            messages_.pop_back();
            engine_->truncate(keep);
            throw;
        }
        clear_interrupt();
        t.interrupted = true;
        // Where the engine stopped is not known to the token: keep the prompt's part that it
        // surely holds, and let the next turn prefill the rest.
        const size_t held = std::min(engine_->position(), ids.size());
        engine_->truncate(held);
        cached_.assign(ids.begin(), ids.begin() + long(held));
        messages_.push_back({"assistant", t.reply});
        return t;
    }
    // The cache now holds the prompt and every generated token but the last, which was never
    // fed back.
    cached_ = ids;
    if (!t.result.tokens.empty()) cached_.insert(cached_.end(), t.result.tokens.begin(), t.result.tokens.end() - 1);
    RABBIT_CHECK(cached_.size() == engine_->position(), "the chat's cache record is out of step with the engine");
    messages_.push_back({"assistant", t.reply});
    return t;
}

} // namespace rabbit
