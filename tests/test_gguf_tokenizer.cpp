// SPDX-License-Identifier: Apache-2.0
// A GGUF's vocab written as Hugging Face tokenizer files (format/gguf_tokenizer.h) must tokenize
// as the model's original tokenizer.json does. The real ones: Qwen3's tokenizer as the gpt2/qwen2
// vocab llama.cpp's converter writes, tinystories' as the "llama" vocab its llama_hf path writes
// (scores all -1000, no merges), each compared on the whole corpus with the original loaded by
// rabbit (itself held equal to Hugging Face by test_tokenizer_conformance.cpp). Small synthetic
// vocabs hold each rule, and the errors.
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "format/gguf_tokenizer.h"
#include "format/gguf_tokenizer_internal.h"
#include "helpers.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <map>
#include <sstream>

using namespace rabbit;

namespace {

constexpr int32_t k_normal = 1, k_unknown = 2, k_control = 3, k_user = 4, k_unused = 5, k_byte = 6;

std::unique_ptr<Tokenizer> load_files(const TokenizerFiles& f, const test::TempDir& dir) {
    test::write_file(dir / "tokenizer.json", f.tokenizer_json);
    test::write_file(dir / "tokenizer_config.json", f.tokenizer_config_json);
    test::write_file(dir / "generation_config.json", f.generation_config_json);
    return load_tokenizer(dir.path());
}

// A tokenizer.json's tokens by id, their types and merges, as a converter puts them in a GGUF.
GgufVocab vocab_of(const std::string& tokenizer_json, bool byte_level, size_t pad_to = 0) {
    const std::string text = read_text_file(tokenizer_json, 1ull << 30);
    JsonDocument doc(text, tokenizer_json);
    auto root = doc.root_object();
    auto model = json_to_object(*json_field(root, "model"), tokenizer_json, "model");
    std::map<int64_t, std::pair<std::string, int32_t>> by_id;
    for (auto kv : json_to_object(*json_field(model, "vocab"), tokenizer_json, "vocab")) {
        const std::string t(kv.key);
        const bool is_byte = !byte_level && t.size() == 6 && t.compare(0, 3, "<0x") == 0;
        by_id[json_to_int(kv.value, tokenizer_json, "id")] = {t, is_byte ? k_byte : k_normal};
    }
    for (auto a : json_to_array(*json_field(root, "added_tokens"), tokenizer_json, "added_tokens")) {
        auto o = json_to_object(a, tokenizer_json, "added");
        by_id[json_to_int(*json_field(o, "id"), tokenizer_json, "id")] = {
            json_to_string(*json_field(o, "content"), tokenizer_json, "content"),
            json_to_bool(*json_field(o, "special"), tokenizer_json, "special") ? k_control : k_user};
    }
    GgufVocab v;
    v.model = byte_level ? "gpt2" : "llama";
    const size_t n = std::max(size_t(by_id.rbegin()->first) + 1, pad_to);
    for (size_t i = 0; i < n; ++i) {
        auto it = by_id.find(int64_t(i));
        v.tokens.push_back(it != by_id.end() ? it->second.first : "[PAD" + std::to_string(i) + "]");
        v.token_type.push_back(it != by_id.end() ? it->second.second : k_unused);
    }
    for (auto m : json_to_array(*json_field(model, "merges"), tokenizer_json, "merges")) {
        if (m.is_string()) {
            v.merges.push_back(json_to_string(m, tokenizer_json, "merge"));
        } else {
            auto pair = json_to_array(m, tokenizer_json, "merge");
            v.merges.push_back(json_to_string(pair.at(0).value(), tokenizer_json, "merge") + " " +
                               json_to_string(pair.at(1).value(), tokenizer_json, "merge"));
        }
    }
    return v;
}

std::vector<std::string> corpus() {
    std::vector<std::string> texts;
    const std::string path = test::source_dir() + "/tests/data/tokenizer/corpus.jsonl";
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) {
        JsonDocument d(line, path);
        texts.push_back(json_to_string(d.root(), path, "line"));
    }
    return texts;
}

// Every corpus line: the same ids with and without special tokens, and the same decoded text.
void require_same_tokenization(const Tokenizer& got, const Tokenizer& want) {
    const std::vector<std::string> texts = corpus();
    REQUIRE(texts.size() >= 2000);
    for (size_t i = 0; i < texts.size(); ++i) {
        for (bool special : {false, true}) {
            const std::vector<int32_t> g = got.encode(texts[i], special), w = want.encode(texts[i], special);
            if (g != w)
                FAIL("corpus line " << i + 1 << (special ? " (special)" : "") << " " << json_escape(texts[i])
                                    << "\n  original: " << json_int_list(w) << "\n  from GGUF: " << json_int_list(g));
        }
        const std::vector<int32_t> ids = want.encode(texts[i], false);
        if (got.decode(ids, true) != want.decode(ids, true))
            FAIL("corpus line " << i + 1 << " decodes to " << json_escape(got.decode(ids, true)) << ", not "
                                << json_escape(want.decode(ids, true)));
    }
    REQUIRE(got.vocab_size() >= want.vocab_size());
}

} // namespace

TEST_CASE("Qwen3's tokenizer as a gpt2/qwen2 GGUF vocab tokenizes as the original", "[gguf][tokenizer]") {
    if (!test::have_shared()) return;
    const std::string dir = test::shared_dir() + "/tokenizers/qwen3";
    GgufVocab v = vocab_of(dir + "/tokenizer.json", true, 151936); // the converter pads to the model's rows
    v.pre = "qwen2";
    v.eos = 151645;
    v.pad = v.bos = 151643;
    v.add_bos = false;
    v.chat_template = "{{ messages }}";
    test::TempDir tmp;
    const TokenizerFiles files = tokenizer_files_from_gguf(v, "qwen3.gguf");
    auto got = load_files(files, tmp);
    auto want = load_tokenizer(dir);
    require_same_tokenization(*got, *want);
    CHECK(got->is_special(151645));
    CHECK_FALSE(got->is_special(151667)); // <think>: user-defined, whole but not special
    CHECK(got->encode("<think>x</think>", false).front() == 151667);
    CHECK(files.tokenizer_config_json.find("\"chat_template\": \"{{ messages }}\"") != std::string::npos);
    CHECK(files.generation_config_json.find("\"eos_token_id\": 151645") != std::string::npos);
}

TEST_CASE("tinystories' tokenizer as a llama GGUF vocab (scores all -1000) tokenizes as the original",
          "[gguf][tokenizer]") {
    if (!test::have_shared()) return;
    // What LlamaHfVocab writes: every score -1000, CONTROL for the special tokens, no merges.
    GgufVocab v = vocab_of(test::tinystories_dir() + "/tokenizer.json", false);
    v.merges.clear();
    v.scores.assign(v.tokens.size(), -1000.0f);
    v.pre = "default";
    v.unk = v.pad = 0;
    v.bos = 1;
    v.eos = 2;
    v.add_bos = true;
    v.add_eos = false;
    test::TempDir tmp;
    auto got = load_files(tokenizer_files_from_gguf(v, "tinystories.gguf"), tmp);
    auto want = load_tokenizer(test::tinystories_dir());
    require_same_tokenization(*got, *want);
    // GOLDEN.md's prompt.
    CHECK(got->encode("Once upon a time, there was a dog named", true) ==
          std::vector<int32_t>{1, 80, 147, 201, 282, 215, 286, 401, 236, 192});
}

// ---- synthetic vocabs: always run ------------------------------------------------------------

namespace {

// A byte-level vocab: the 256 byte characters, then `extra` (merged tokens in merge order, and
// specials), with the merges given.
GgufVocab byte_vocab(const std::string& pre, const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
    GgufVocab v;
    v.model = "gpt2";
    v.pre = pre;
    for (int b = 0; b < 256; ++b) v.tokens.push_back(gguf_tok::byte_level_spelling(std::string(1, char(b))));
    for (const auto& t : extra) v.tokens.push_back(t);
    v.token_type.assign(v.tokens.size(), k_normal);
    v.merges = merges;
    return v;
}

int32_t id_of(const GgufVocab& v, const std::string& token) {
    for (size_t i = 0; i < v.tokens.size(); ++i)
        if (v.tokens[i] == token) return int32_t(i);
    FAIL("no token " << token);
    return -1;
}

std::unique_ptr<Tokenizer> convert(const GgufVocab& v, const test::TempDir& dir) {
    return load_files(tokenizer_files_from_gguf(v, "synthetic.gguf"), dir);
}

// A SentencePiece-style vocab: <unk> <s> </s>, the 256 byte tokens, then pieces with scores.
GgufVocab sentencepiece_vocab(const std::vector<std::pair<std::string, float>>& pieces) {
    GgufVocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>"};
    v.token_type = {k_unknown, k_control, k_control};
    v.scores = {0, 0, 0};
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        v.tokens.push_back(name);
        v.token_type.push_back(k_byte);
        v.scores.push_back(0);
    }
    for (const auto& [p, s] : pieces) {
        v.tokens.push_back(p);
        v.token_type.push_back(k_normal);
        v.scores.push_back(s);
    }
    v.unk = 0;
    v.bos = 1;
    v.eos = 2;
    return v;
}

} // namespace

TEST_CASE("a byte-level GGUF vocab: merges, added tokens and the pre type's digit rule", "[gguf][tokenizer]") {
    const std::vector<std::string> extra = {"he", "ll", "hell", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld", "12", "123",
                                            "<|end|>", "<think>"};
    const std::vector<std::string> merges = {"h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d",
                                             "Ġwor ld", "1 2", "12 3"};
    GgufVocab v = byte_vocab("qwen2", extra, merges);
    v.token_type[size_t(id_of(v, "<|end|>"))] = k_control;
    v.token_type[size_t(id_of(v, "<think>"))] = k_user;
    v.eos = id_of(v, "<|end|>");
    test::TempDir d1;
    auto tok = convert(v, d1);
    CHECK(tok->encode("hello world", false) == std::vector<int32_t>{id_of(v, "hello"), id_of(v, "Ġworld")});
    CHECK(tok->encode("hello world", true) == tok->encode("hello world", false)); // gpt2: no BOS unless told
    CHECK(tok->decode(tok->encode("hello world<|end|>", false), true) == "hello world");
    CHECK(tok->encode("<think>hello<|end|>", false) ==
          std::vector<int32_t>{id_of(v, "<think>"), id_of(v, "hello"), id_of(v, "<|end|>")});
    CHECK(tok->is_special(id_of(v, "<|end|>")));
    CHECK_FALSE(tok->is_special(id_of(v, "<think>")));
    const int32_t one = int32_t('1'), two = int32_t('2'), three = int32_t('3'); // byte tokens are ids 0..255
    // qwen2 and smollm cut numbers into single digits, llama-bpe into runs of up to three, gpt-2 not at all.
    CHECK(tok->encode("123", false) == std::vector<int32_t>{one, two, three});
    for (const char* pre : {"llama-bpe", "gpt-2", "default"}) {
        v.pre = pre;
        test::TempDir d;
        CHECK(convert(v, d)->encode("123", false) == std::vector<int32_t>{id_of(v, "123")});
    }
    v.pre = "smollm";
    test::TempDir d2;
    CHECK(convert(v, d2)->encode("123", false) == std::vector<int32_t>{one, two, three});
}

TEST_CASE("a byte-level GGUF vocab: BOS when add_bos says so, tokens respelled, eot as a second eos",
          "[gguf][tokenizer]") {
    GgufVocab v = byte_vocab("llama-bpe", {"<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", "a b", "ab"}, {"a b"});
    const int32_t bos = id_of(v, "<|begin_of_text|>"), eot = id_of(v, "<|eot_id|>"), eos = id_of(v, "<|end_of_text|>");
    for (int32_t id : {bos, eot, eos}) v.token_type[size_t(id)] = k_control;
    v.bos = bos;
    v.eos = eos;
    v.eot = eot;
    v.add_bos = true;
    test::TempDir d;
    const TokenizerFiles f = tokenizer_files_from_gguf(v, "llama3.gguf");
    auto tok = load_files(f, d);
    CHECK(tok->encode("x", true) == std::vector<int32_t>{bos, int32_t('x')});
    // A token outside the byte alphabet (a real space) is spelled byte by byte, as transformers does.
    CHECK(tok->token_id("aĠb") == id_of(v, "a b"));
    CHECK(f.generation_config_json.find("\"eos_token_id\": [" + std::to_string(eos) + ", " + std::to_string(eot) + "]") !=
          std::string::npos);
    CHECK(f.tokenizer_config_json.find("\"bos_token\": \"<|begin_of_text|>\"") != std::string::npos);
    CHECK(f.tokenizer_config_json.find("\"add_bos_token\": true") != std::string::npos);
}

TEST_CASE("a SentencePiece-style GGUF vocab: merges by score, byte fallback, BOS, the space prefix",
          "[gguf][tokenizer]") {
    GgufVocab v = sentencepiece_vocab({{"\u2581", -1}, {"a", -2}, {"b", -3}, {"\u2581a", -4}, {"ab", -5}, {"\u2581ab", -6}});
    const int32_t ab = id_of(v, "\u2581ab"), sp = id_of(v, "\u2581");
    test::TempDir d1;
    auto tok = convert(v, d1);
    CHECK(tok->encode("ab", true) == std::vector<int32_t>{1, ab}); // llama: BOS unless add_bos is false
    CHECK(tok->encode("ab ab", false) == std::vector<int32_t>{ab, ab});
    // é is not in the vocab: its two UTF-8 bytes, and back.
    CHECK(tok->encode("é", false) == std::vector<int32_t>{sp, 3 + 0xC3, 3 + 0xA9});
    CHECK(tok->decode(tok->encode("ab é", true), true) == "ab é");
    v.add_space_prefix = false;
    v.add_bos = false;
    test::TempDir d2;
    CHECK(convert(v, d2)->encode("ab", true) == std::vector<int32_t>{id_of(v, "ab")});
}

TEST_CASE("merges rebuilt from a vocab: by score as Hugging Face's converter, by order as the trainer made them",
          "[gguf][tokenizer]") {
    using gguf_tok::Merge;
    // By score: every split into two tokens, the best-scored token first; ties: longer left part first.
    const std::vector<std::string> tokens = {"a", "b", "c", "ab", "bc", "abc"};
    CHECK(gguf_tok::merges_by_score(tokens, {0, 0, 0, -1, -2, -1}) ==
          std::vector<Merge>{{"ab", "c"}, {"a", "bc"}, {"a", "b"}, {"b", "c"}});
    // By order: "abc" is what "ab" + "c" makes once "ab" exists, not "a" + "bc".
    const std::vector<std::string> ordered = {"a", "b", "c", "ab", "bc", "abc", "cab"};
    CHECK(gguf_tok::merges_by_id(ordered, {true, true, true, true, true, true, true}) ==
          std::vector<Merge>{{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"c", "ab"}});
    CHECK(gguf_tok::merges_by_id(ordered, {true, true, true, true, false, true, true}) ==
          std::vector<Merge>{{"a", "b"}, {"ab", "c"}, {"c", "ab"}});
}

TEST_CASE("a GGUF vocab rabbit cannot convert is refused with one line naming the file", "[gguf][tokenizer]") {
    auto code_of = [](const GgufVocab& v) {
        try {
            tokenizer_files_from_gguf(v, "m.gguf");
        } catch (const Error& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find("m.gguf") != std::string::npos);
            CHECK(std::string(e.what()).find('\n') == std::string::npos);
            return std::make_pair(e.code(), std::string(e.what()));
        }
        FAIL("no error");
        return std::make_pair(ExitCode::ok, std::string());
    };
    GgufVocab ok = byte_vocab("qwen2", {"ab"}, {"a b"});
    REQUIRE_NOTHROW(tokenizer_files_from_gguf(ok, "m.gguf"));

    GgufVocab v = ok;
    v.model = "bert";
    CHECK(code_of(v).first == ExitCode::unsupported);
    v = ok;
    v.pre = "tekken";
    auto [code, msg] = code_of(v);
    CHECK(code == ExitCode::unsupported);
    CHECK(msg.find("'tekken'") != std::string::npos);
    v = ok;
    v.tokens.clear();
    v.token_type.clear();
    CHECK(code_of(v).first == ExitCode::bad_input);
    v = ok;
    v.scores = {1.0f};
    CHECK(code_of(v).first == ExitCode::bad_input);
    v = ok;
    v.eos = int64_t(v.tokens.size());
    CHECK(code_of(v).first == ExitCode::bad_input);
    v = ok;
    v.merges.clear();
    CHECK(code_of(v).first == ExitCode::bad_input);
    v = ok;
    v.merges = {"a zz"};
    CHECK(code_of(v).second.find("'zz'") != std::string::npos);
    v.merges = {"b a"}; // "ba" is no token
    CHECK(code_of(v).second.find("'ba'") != std::string::npos);
    v = ok;
    v.merges = {"ab"};
    CHECK(code_of(v).first == ExitCode::bad_input);
    GgufVocab sp = sentencepiece_vocab({{"\xff", -1}});
    CHECK(code_of(sp).first == ExitCode::bad_input); // not UTF-8
}

TEST_CASE("a GGUF's ChatML template whose default system prompt holds a real newline is recognised",
          "[gguf][tokenizer][chat]") {
    // SmolLM2's, as its GGUF stores it: the Jinja literal holds the newline itself, not "\\n".
    const std::string smollm = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                               "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
                               "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
                               "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
    const ChatTemplate t = detect_chat_template_text(smollm, "smollm.gguf");
    CHECK(t.format == ChatFormat::chatml);
    CHECK(t.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    CHECK(apply_chat_template(t, "Hi", std::nullopt) ==
          "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
          "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}
