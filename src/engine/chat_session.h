// SPDX-License-Identifier: Apache-2.0
// A multi-turn conversation over one engine, as `rabbit chat` holds it. Each turn the model's
// template renders the whole conversation (tokenizer/chat.h); the KV cache keeps the tokens it
// already holds, so that only what differs from them is prefilled: the new turn, as a rule, or
// more where the template writes the history differently (Qwen3 drops the thinking of earlier
// answers). When the conversation outgrows the context, its oldest turns go whole.
#pragma once

#include "engine/engine.h"
#include "engine/generate.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct ChatTurn {
    GenerateResult result;    // its prompt_tokens: the tokens this turn prefilled
    std::string reply;        // the answer's text, as streamed
    size_t rendered_tokens = 0; // the whole conversation with this turn, as the template wrote it
    size_t cached_tokens = 0;   // of those, already in the KV cache
    size_t dropped_turns = 0;   // old user turns dropped (with their answers) to fit the context
    bool interrupted = false;   // Ctrl-C ended the answer where it was
};

class ChatSession {
public:
    // generate: stops and sampling; its max_tokens bounds each answer, and a quarter of the
    // context at most is kept free for one when turns are dropped.
    ChatSession(Engine& engine, const Tokenizer& tok, ChatTemplate tmpl, ChatOptions options, GenerateOptions generate);

    // The system prompt (none: the template's default, where it has one).
    void set_system(std::optional<std::string> system) { system_ = std::move(system); }
    const std::optional<std::string>& system() const { return system_; }
    // The user and assistant messages so far, without the system prompt.
    const std::vector<ChatMessage>& messages() const { return messages_; }
    void set_messages(std::vector<ChatMessage> m) { messages_ = std::move(m); }
    // Forgets the conversation and empties the KV cache.
    void reset();
    // A new engine (the old one could not go on): its cache starts empty.
    void set_engine(Engine& engine);

    // One user turn: the answer streamed to on_text and added to the conversation. An
    // interruption ends the answer where it is; what was said stays. on_prompt, when given,
    // sees the rendered conversation before the answer starts (whether it opened a thinking
    // section, for the display).
    ChatTurn turn(const std::string& user, const std::function<void(const std::string&)>& on_text,
                  const std::function<void(const std::string&)>& on_prompt = {});
    // The conversation rendered for the next answer (or as it stands, without the generation
    // prompt), as text.
    std::string rendered(bool add_generation_prompt) const;

private:
    size_t drop_oldest_turn();

    Engine* engine_;
    const Tokenizer& tok_;
    ChatTemplate tmpl_;
    ChatOptions options_;
    GenerateOptions generate_;
    std::optional<std::string> system_;
    std::vector<ChatMessage> messages_;
    std::vector<int32_t> cached_; // the tokens in the KV cache, in order
};

} // namespace rabbit
