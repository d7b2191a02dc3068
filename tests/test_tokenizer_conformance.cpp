// SPDX-License-Identifier: Apache-2.0
// Conformance against the reference implementation: every line of the corpus
// (tests/data/tokenizer/corpus.jsonl, 2,200 texts) must give exactly the ids Hugging Face
// `tokenizers` gives (tests/data/tokenizer/*.ref.jsonl, written by
// scripts/tokenizer_reference.py), and decode to the same text.
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "helpers.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <sstream>

using namespace rabbit;

namespace {

std::string tokenizer_data() { return test::source_dir() + "/tests/data/tokenizer"; }

std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> lines;
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::vector<int32_t> ids_of(simdjson::dom::element e, const std::string& file) {
    std::vector<int32_t> ids;
    for (auto v : json_to_array(e, file, "ids")) ids.push_back(int32_t(json_to_int(v, file, "id")));
    return ids;
}

std::string show(const std::vector<int32_t>& ids) { return json_int_list(ids); }

void check_against_reference(const std::string& name, const std::string& tokenizer_dir) {
    const std::vector<std::string> corpus = read_lines(tokenizer_data() + "/corpus.jsonl");
    const std::string ref_path = tokenizer_data() + "/" + name + ".ref.jsonl";
    const std::vector<std::string> refs = read_lines(ref_path);
    REQUIRE(corpus.size() >= 2000);
    REQUIRE(refs.size() == corpus.size());
    auto tok = load_tokenizer(tokenizer_dir);
    size_t lossless = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
        JsonDocument c(corpus[i], "corpus.jsonl");
        const std::string text = json_to_string(c.root(), "corpus.jsonl", "line");
        JsonDocument r(refs[i], ref_path);
        auto o = r.root_object();
        const std::vector<int32_t> want = ids_of(*json_field(o, "ids"), ref_path);
        const std::vector<int32_t> want_special = ids_of(*json_field(o, "special_ids"), ref_path);
        const std::string decoded = json_to_string(*json_field(o, "decoded"), ref_path, "decoded");
        const std::string decoded_all = json_to_string(*json_field(o, "decoded_all"), ref_path, "decoded_all");

        const std::vector<int32_t> got = tok->encode(text, false);
        if (got != want)
            FAIL(name << ": corpus line " << i + 1 << " " << json_escape(text) << "\n  reference: " << show(want)
                      << "\n  rabbit:    " << show(got));
        const std::vector<int32_t> got_special = tok->encode(text, true);
        if (got_special != want_special)
            FAIL(name << ": corpus line " << i + 1 << " with special tokens " << json_escape(text)
                      << "\n  reference: " << show(want_special) << "\n  rabbit:    " << show(got_special));
        const std::string back = tok->decode(got, true);
        if (back != decoded)
            FAIL(name << ": corpus line " << i + 1 << " decodes to " << json_escape(back) << ", the reference to "
                      << json_escape(decoded));
        const std::string back_all = tok->decode(got, false);
        if (back_all != decoded_all)
            FAIL(name << ": corpus line " << i + 1 << " decodes (special tokens kept) to " << json_escape(back_all)
                      << ", the reference to " << json_escape(decoded_all));
        // Wherever the tokenizer is lossless, decode(encode(text)) gives the text back.
        if (decoded == text) {
            REQUIRE(back == text);
            ++lossless;
        }
    }
    INFO(name << ": " << lossless << " of " << corpus.size() << " lines round-trip exactly");
    CHECK(lossless > 0);
}

} // namespace

TEST_CASE("Qwen's tokenizer gives the reference ids on every corpus line", "[tokenizer][conformance]") {
    if (!test::have_shared()) return;
    check_against_reference("qwen3", test::shared_dir() + "/tokenizers/qwen3");
}

TEST_CASE("tinystories-656k's tokenizer gives the reference ids on every corpus line", "[tokenizer][conformance]") {
    if (!test::have_shared()) return;
    check_against_reference("tinystories", test::tinystories_dir());
}

TEST_CASE("Qwen's chat format equals its own template rendered by jinja2", "[tokenizer][chat]") {
    if (!test::have_shared()) return;
    const std::string dir = test::shared_dir() + "/tokenizers/qwen3";
    ChatTemplate t = detect_chat_template(dir);
    REQUIRE(t.format == ChatFormat::chatml);
    REQUIRE(t.default_system.empty()); // Qwen3 has none; Qwen2.5 says "You are Qwen, ..."
    auto tok = load_tokenizer(dir);
    const std::string path = tokenizer_data() + "/qwen3.chat.jsonl";
    const std::vector<std::string> lines = read_lines(path);
    REQUIRE(lines.size() >= 5);
    for (const auto& line : lines) {
        JsonDocument d(line, path);
        auto o = d.root_object();
        const std::string user = json_to_string(*json_field(o, "user"), path, "user");
        std::optional<std::string> system;
        if (!json_field(o, "system")->is_null()) system = json_to_string(*json_field(o, "system"), path, "system");
        const std::string rendered = json_to_string(*json_field(o, "rendered"), path, "rendered");
        INFO(user);
        REQUIRE(apply_chat_template(t, user, system) == rendered);
        std::vector<ChatMessage> messages;
        if (system) messages.push_back({"system", *system});
        messages.push_back({"user", user});
        REQUIRE(render_chat(t, messages, {}) == rendered); // the template itself, by the interpreter
        REQUIRE(tok->encode(rendered, false) == ids_of(*json_field(o, "ids"), path));
    }
}

TEST_CASE("tokenizers of every pipeline kind give the reference ids", "[tokenizer][conformance]") {
    // Small tokenizers trained by scripts/tokenizer_reference.py, each exercising what the real
    // ones do not: Metaspace (first/always, split or not), byte fallback, fused and unfused
    // unk, ignore_merges, Llama 3's split, GPT-2's ByteLevel regex and prefix space, legacy
    // merges, added tokens with lstrip/rstrip/single_word/normalized, every split behavior,
    // inverted patterns, Digits, NFKC/Replace/Prepend normalizers, Strip and Metaspace decoders.
    const std::vector<std::string> corpus = read_lines(tokenizer_data() + "/corpus.jsonl");
    for (const char* name : {"metaspace-first", "metaspace-always", "llama3-style", "gpt2-added", "splits-digits",
                             "digits-contiguous"}) {
        const std::string dir = tokenizer_data() + "/synthetic/" + name;
        const std::string ref_path = dir + "/ref.jsonl";
        const std::vector<std::string> refs = read_lines(ref_path);
        REQUIRE(refs.size() == (corpus.size() + 3) / 4);
        auto tok = load_tokenizer(dir);
        for (size_t k = 0; k < refs.size(); ++k) {
            const size_t i = k * 4;
            JsonDocument c(corpus[i], "corpus.jsonl");
            const std::string text = json_to_string(c.root(), "corpus.jsonl", "line");
            JsonDocument r(refs[k], ref_path);
            auto o = r.root_object();
            const std::vector<int32_t> want = ids_of(*json_field(o, "ids"), ref_path);
            const std::vector<int32_t> got = tok->encode(text, false);
            if (got != want)
                FAIL(name << ": corpus line " << i + 1 << " " << json_escape(text) << "\n  reference: " << show(want)
                          << "\n  rabbit:    " << show(got));
            const std::vector<int32_t> want_special = ids_of(*json_field(o, "special_ids"), ref_path);
            if (tok->encode(text, true) != want_special)
                FAIL(name << ": corpus line " << i + 1 << " with special tokens: reference " << show(want_special) << ", rabbit "
                          << show(tok->encode(text, true)));
            const std::string decoded = json_to_string(*json_field(o, "decoded"), ref_path, "decoded");
            const std::string decoded_all = json_to_string(*json_field(o, "decoded_all"), ref_path, "decoded_all");
            if (tok->decode(got, true) != decoded || tok->decode(got, false) != decoded_all)
                FAIL(name << ": corpus line " << i + 1 << " decodes to " << json_escape(tok->decode(got, true)) << " / "
                          << json_escape(tok->decode(got, false)) << ", the reference to " << json_escape(decoded) << " / "
                          << json_escape(decoded_all));
        }
    }
}
