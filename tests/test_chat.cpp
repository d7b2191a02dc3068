// SPDX-License-Identifier: Apache-2.0
// rabbit chat: the conversation over one engine (engine/chat_session.h) keeps its KV cache
// across turns and gives what one pass over the whole conversation gives; the terminal side's
// thinking filter; and the command, scripted through stdin.
#include "backend/cpu/cpu_engine.h"
#include "cli/chat_io.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/interrupt.h"
#include "engine/chat_session.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <csignal>
#include <regex>
#include <string>
#include <vector>

using namespace rabbit;

namespace {

// ChatML, as Qwen2.5's template writes it without a default system prompt.
constexpr const char* k_chatml =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A tiny random Llama 3 with the repository's synthetic byte-level tokenizer and a ChatML
// template, split.
std::string tiny_chat_model(const test::TempDir& dir) {
    GenSpec spec = preset_spec("tiny-llama3");
    spec.config.vocab_size = 1024;
    spec.tokenizer_dir = test::source_dir() + "/tests/data/tokenizer/synthetic/llama3-style";
    generate_model(spec, dir / "m");
    std::string quoted;
    for (char c : std::string(k_chatml)) quoted += c == '"' ? std::string("\\\"") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    test::write_file(dir / "m/tokenizer_config.json", "{\"chat_template\": \"" + quoted + "\"}");
    return test::split_into(dir / "m", dir / "s");
}

GenerateOptions greedy_options(size_t n) {
    GenerateOptions g;
    g.max_tokens = n;
    return g;
}

} // namespace

TEST_CASE("a chat's second turn prefills only its own tokens and says what one whole pass says", "[chat][engine]") {
    test::TempDir dir;
    const std::string split = tiny_chat_model(dir);
    const SplitModel model = SplitModel::open(split);
    const auto tok = load_tokenizer(split);
    const ChatTemplate tmpl = detect_chat_template(split);
    REQUIRE_FALSE(tmpl.jinja.empty());
    CpuEngine engine(model, {});
    GenerateOptions g = greedy_options(24);
    g.sampling.repetition_penalty = 4.0f; // its context is the whole conversation, cached part included
    ChatSession chat(engine, *tok, tmpl, {}, g);
    const ChatTurn a = chat.turn("hello there", [](const std::string&) {});
    REQUIRE(a.cached_tokens == 0);
    REQUIRE(a.result.prompt_tokens == a.rendered_tokens);
    const ChatTurn b = chat.turn("and again", [](const std::string&) {});
    // The first turn's prompt and answer (less its last token, never fed) came from the cache.
    INFO("turn 1: " << a.rendered_tokens << " + " << a.result.tokens.size() << "; turn 2: " << b.rendered_tokens
                    << ", " << b.cached_tokens << " cached");
    REQUIRE(b.cached_tokens > a.rendered_tokens);
    REQUIRE(b.cached_tokens <= a.rendered_tokens + a.result.tokens.size() - 1);
    REQUIRE(b.result.prompt_tokens == b.rendered_tokens - b.cached_tokens);
    REQUIRE(chat.messages().size() == 4);
    REQUIRE(chat.messages()[1].content == a.reply);
    // The same conversation in one pass from an empty cache: the same answer.
    CpuEngine fresh(model, {});
    std::vector<ChatMessage> upto = chat.messages();
    upto.pop_back();
    ChatSession again(fresh, *tok, tmpl, {}, g);
    again.set_messages({upto.begin(), upto.end() - 1});
    const ChatTurn c = again.turn(upto.back().content, [](const std::string&) {});
    REQUIRE(c.cached_tokens == 0);
    REQUIRE(c.result.tokens == b.result.tokens);
}

TEST_CASE("a chat that outgrows the context drops its oldest turns whole", "[chat][engine]") {
    test::TempDir dir;
    const std::string split = tiny_chat_model(dir);
    const SplitModel model = SplitModel::open(split);
    const auto tok = load_tokenizer(split);
    EngineOptions eo;
    eo.ctx = 96;
    CpuEngine engine(model, eo);
    ChatSession chat(engine, *tok, detect_chat_template(split), {}, greedy_options(8));
    size_t dropped = 0;
    for (int i = 0; i < 8; ++i) {
        const ChatTurn t = chat.turn("turn number " + std::to_string(i) + " says hello", [](const std::string&) {});
        dropped += t.dropped_turns;
        REQUIRE(t.rendered_tokens + 8 <= 96 + 8); // it fit, with the room kept for the answer
        REQUIRE(chat.messages().front().role == "user");
    }
    REQUIRE(dropped > 0);
    REQUIRE(chat.messages().front().content != "turn number 0 says hello");
    REQUIRE(chat.messages()[chat.messages().size() - 2].content == "turn number 7 says hello");
    // A single turn longer than the context is refused, and leaves the conversation as it was.
    const size_t before = chat.messages().size();
    REQUIRE_THROWS_AS(chat.turn(std::string(400, 'x'), [](const std::string&) {}), Error);
    REQUIRE(chat.messages().size() == before);
}

TEST_CASE("Ctrl-C ends the answer, not the conversation", "[chat][engine]") {
    test::TempDir dir;
    const std::string split = tiny_chat_model(dir);
    const SplitModel model = SplitModel::open(split);
    const auto tok = load_tokenizer(split);
    CpuEngine engine(model, {});
    GenerateOptions g = greedy_options(40);
    g.stop_ids.clear(); // the answer would go on: only the interruption ends it
    ChatSession chat(engine, *tok, detect_chat_template(split), {}, g);
    install_interrupt_handlers();
    size_t pieces = 0;
    const ChatTurn a = chat.turn("hello", [&](const std::string&) {
        if (++pieces == 3) std::raise(SIGINT); // as a Ctrl-C on the terminal would
    });
    REQUIRE(a.interrupted);
    REQUIRE_FALSE(interrupted()); // cleared for the next turn
    REQUIRE(a.result.tokens.empty()); // generate was cut short: no result, the text so far kept
    REQUIRE(chat.messages().size() == 2);
    REQUIRE(chat.messages()[1].content == a.reply);
    REQUIRE_FALSE(a.reply.empty());
    // The next turn runs, and says what a conversation with that partial answer says afresh.
    const ChatTurn b = chat.turn("go on", [](const std::string&) {});
    REQUIRE_FALSE(b.interrupted);
    CpuEngine fresh(model, {});
    ChatSession again(fresh, *tok, detect_chat_template(split), {}, g);
    again.set_messages({chat.messages()[0], chat.messages()[1]});
    REQUIRE(again.turn("go on", [](const std::string&) {}).result.tokens == b.result.tokens);
}

TEST_CASE("the thinking filter shows, dims or hides the section, tags split across pieces", "[chat]") {
    auto run = [](ThinkFilter::Mode mode, bool inside, const std::vector<std::string>& pieces) {
        ThinkFilter f(mode, inside);
        std::string out;
        for (const auto& p : pieces) out += f.push(p);
        return out + f.finish();
    };
    const std::vector<std::string> pieces = {"<th", "ink>hm", "m</thi", "nk>\n\nAns", "wer <t"};
    REQUIRE(run(ThinkFilter::Mode::show, false, pieces) == "<think>hmm</think>\n\nAnswer <t");
    REQUIRE(run(ThinkFilter::Mode::hide, false, pieces) == "Answer <t");
    // Dimmed: the section between dim and undim codes (adjacent pieces' codes joined here).
    std::string dim = run(ThinkFilter::Mode::dim, false, pieces);
    for (size_t at; (at = dim.find("\x1b[22m\x1b[2m")) != std::string::npos;) dim.erase(at, 9);
    REQUIRE(dim == "\x1b[2m<think>hmm</think>\x1b[22m\n\nAnswer <t");
    // The prompt opened the section (QwQ, R1): the answer begins inside it.
    REQUIRE(run(ThinkFilter::Mode::hide, true, {"step 1</think>", "\n", "42"}) == "42");
    REQUIRE(opens_thinking("<|im_start|>assistant\n<think>\n"));
    REQUIRE_FALSE(opens_thinking("<think>\n\n</think>\n\n"));
    REQUIRE_FALSE(opens_thinking("no tags"));
}

TEST_CASE("rabbit chat scripted on stdin: turns, /system, /save and /load, /stats", "[chat][cli]") {
    test::TempDir dir;
    const std::string split = tiny_chat_model(dir);
    const std::string saved = dir / "c.json";
    test::RunResult r = test::run_rabbit({"chat", "-m", split, "--temp", "0", "-n", "6", "--device", "cpu"}, {},
                                         "hello\n/system be brief\nagain\n/save " + saved + "\n/stats\n/bye\nnot read\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(std::count(r.out.begin(), r.out.end(), '\n') == 2); // two answers, a line each
    REQUIRE_THAT(r.err, Catch::Contains("turn 1:") && Catch::Contains("turn 2:"));
    const std::string text = read_text_file(saved);
    REQUIRE_THAT(text, Catch::Contains("\"system\": \"be brief\"") && Catch::Contains("\"content\": \"again\""));
    // /load brings it back: the next turn renders after those four messages.
    test::RunResult l = test::run_rabbit({"chat", "-m", split, "--temp", "0", "-n", "6", "--device", "cpu"}, {},
                                         "/load " + saved + "\nonce more\n/stats\n");
    INFO(l.err);
    REQUIRE(l.exit_code == 0);
    REQUIRE_THAT(l.err, Catch::Contains("loaded 4 messages"));
    // A /load of a file that is not a conversation is a one-line error, and the session goes on.
    test::write_file(dir / "bad.json", "[1, 2]");
    test::RunResult b = test::run_rabbit({"chat", "-m", split, "-n", "2", "--device", "cpu"}, {},
                                         "/load " + dir / "bad.json" + "\nhi\n");
    REQUIRE(b.exit_code == 0);
    REQUIRE_THAT(b.err, Catch::Contains("error: ") && Catch::Contains("bad.json"));
    REQUIRE(std::count(b.out.begin(), b.out.end(), '\n') == 1);
}

TEST_CASE("rabbit chat on SmolLM2: two scripted turns, the second prefilled from the cache", "[chat][cli][smollm]") {
    if (!test::have_smollm2()) return;
    test::RunResult r = test::run_rabbit({"chat", "-m", test::smollm2_gguf(), "--temp", "0", "--device", "cpu"}, {},
                                         "What is the capital of France?\nAnd of Germany?\n/stats\n");
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE_THAT(r.out, Catch::Contains("Paris") && Catch::Contains("Berlin"));
    std::smatch m;
    REQUIRE(std::regex_search(r.err, m, std::regex("turn 2: ([0-9]+) prompt tokens prefilled \\(([0-9]+) from the cache\\)")));
    REQUIRE(std::stoul(m[1]) < 20);  // the new turn alone
    REQUIRE(std::stoul(m[2]) >= 37); // the first turn's prompt (its default system prompt included) and answer
}
