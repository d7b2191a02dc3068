// SPDX-License-Identifier: Apache-2.0
// Tokenizer pieces on their own: the regex dialect, SentencePiece directories, streaming
// decode, chat formats, and the errors of malformed or missing tokenizers.
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "helpers.h"
#include "tokenizer/chat.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "common/utf8.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <sstream>
#include <thread>

using namespace rabbit;
using Catch::Contains;

namespace {

std::string data_dir() { return test::source_dir() + "/tests/data/tokenizer"; }

std::vector<std::string> corpus() {
    std::vector<std::string> out;
    std::istringstream in(read_text_file(data_dir() + "/corpus.jsonl"));
    for (std::string line; std::getline(in, line);) {
        JsonDocument d(line, "corpus.jsonl");
        out.push_back(json_to_string(d.root(), "corpus.jsonl", "line"));
    }
    return out;
}

std::vector<std::string> pieces(const Regex& re, const std::string& s) {
    std::vector<std::pair<size_t, size_t>> m;
    re.find_all(s, m);
    std::vector<std::string> out;
    for (auto [b, e] : m) out.push_back(s.substr(b, e - b));
    return out;
}

} // namespace

TEST_CASE("regexes mean what they mean in Oniguruma, the reference's engine", "[tokenizer][regex]") {
    // Seen from the reference (tokenizers 0.23.3): \w holds Alphabetic, marks and every
    // number but not the joiners; \s is White_Space, NEL included, U+001C not.
    Regex w("\\w+", "test");
    REQUIRE(pieces(w, "a\u200db") == std::vector<std::string>{"a", "b"});
    REQUIRE(pieces(w, "a\u00b2b") == std::vector<std::string>{"a\u00b2b"});
    REQUIRE(pieces(w, "a\u24b6b") == std::vector<std::string>{"a\u24b6b"});
    REQUIRE(pieces(w, "x\u064by") == std::vector<std::string>{"x\u064by"});
    REQUIRE(pieces(w, "a\u00a9b") == std::vector<std::string>{"a", "b"});
    Regex s("\\s+", "test");
    REQUIRE(pieces(s, "a\u0085b\u00a0c\u2028d") == std::vector<std::string>{"\u0085", "\u00a0", "\u2028"});
    REQUIRE(pieces(s, "a\x1c b").size() == 1);
    Regex cls("[^\\s\\p{L}]+", "test");
    REQUIRE(pieces(cls, "ab\u0085!?cd") == std::vector<std::string>{"!?"});
    // Empty matches advance one character, and none right after a match.
    Regex star("a*", "test");
    std::vector<std::pair<size_t, size_t>> m;
    star.find_all("baa", m);
    REQUIRE(m == std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}});
    REQUIRE(pieces(Regex::literal("a.b\\E(", "test"), "xa.b\\E(y a.b") == std::vector<std::string>{"a.b\\E("});
    REQUIRE_THROWS_WITH(Regex("(unclosed", "tok.json"), Contains("tok.json: regex '(unclosed' does not compile"));
}

TEST_CASE("Ruby-syntax regex features are translated, or refused", "[tokenizer][regex]") {
    // Each expectation was read off the reference (tokenizers 0.23.3, Oniguruma).
    REQUIRE(pieces(Regex("^\\s+", "t"), "a\n  b") == std::vector<std::string>{"  "}); // ^ at every line start
    REQUIRE(pieces(Regex("x$", "t"), "ax\nbx") == std::vector<std::string>{"x", "x"});
    REQUIRE(pieces(Regex("\\Ax", "t"), "xax") == std::vector<std::string>{"x"});
    REQUIRE(pieces(Regex("(?m).+", "t"), "a\nb") == std::vector<std::string>{"a\nb"}); // Ruby's m is dotall
    REQUIRE(pieces(Regex(".+", "t"), "a\nb") == std::vector<std::string>{"a", "b"});
    REQUIRE(pieces(Regex("\\u0041+", "t"), "xAAy") == std::vector<std::string>{"AA"});
    REQUIRE(pieces(Regex("a{,2}", "t"), "aaaa") == std::vector<std::string>{"aa", "aa"});
    // \w takes "²" (No) outside a class, not inside one.
    REQUIRE(pieces(Regex("\\w+", "t"), "a\u00b2b") == std::vector<std::string>{"a\u00b2b"});
    REQUIRE(pieces(Regex("[\\w]+", "t"), "a\u00b2b") == std::vector<std::string>{"a", "b"});
    REQUIRE(pieces(Regex("[\\w]+", "t"), "a\u2160b") == std::vector<std::string>{"a\u2160b"});
    REQUIRE(pieces(Regex("[[:digit:]x]+", "t"), "a12xb") == std::vector<std::string>{"12x"});
    REQUIRE_THROWS_WITH(Regex("[a-z&&[^b]]", "t"), Contains("class intersection (&&) is not supported"));
    REQUIRE_THROWS_WITH(Regex("[a[0-9]]", "t"), Contains("a nested character class is not supported"));
    // A repeated group over a long input outgrows the JIT stack; the interpreter finishes it.
    std::string long_input;
    for (int i = 0; i < 200000; ++i) long_input += " x";
    REQUIRE(pieces(Regex("(?:\\s|x)+|[^\\s]+", "t"), long_input).size() == 1);
}

TEST_CASE("UTF-8 helpers: lossy conversion as Rust does it, incomplete tails", "[tokenizer][utf8]") {
    REQUIRE(utf8_lossy("ok") == "ok");
    REQUIRE(utf8_lossy("a\xff" "b") == "a\xEF\xBF\xBD" "b");
    REQUIRE(utf8_lossy("\xe4\xbd") == "\xEF\xBF\xBD");               // one maximal subpart, one U+FFFD
    REQUIRE(utf8_lossy("\xf0\x9f\x98") == "\xEF\xBF\xBD");           // likewise for a 4-byte prefix
    REQUIRE(utf8_lossy("\xed\xa0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // a surrogate: three
    REQUIRE(utf8_incomplete_tail("ab\xe4\xbd") == 2);
    REQUIRE(utf8_incomplete_tail("ab\xe4\xbd\xa0") == 0);
    REQUIRE(utf8_incomplete_tail("ab\xff") == 0);
    REQUIRE(!utf8_valid("\xc0\x80"));
    REQUIRE(utf8_valid("\xf4\x8f\xbf\xbf"));
    REQUIRE(!utf8_valid("\xf4\x90\x80\x80"));
}

TEST_CASE("a directory with only tokenizer.model is served by SentencePiece", "[tokenizer][sentencepiece]") {
    const std::string dir = data_dir() + "/sentencepiece";
    auto tok = load_tokenizer(dir);
    REQUIRE_THAT(tok->source(), Contains("tokenizer.model"));
    const std::vector<std::string> lines = corpus();
    std::istringstream in(read_text_file(dir + "/ref.jsonl"));
    size_t k = 0;
    for (std::string line; std::getline(in, line); ++k) {
        const std::string& text = lines.at(k * 4);
        JsonDocument d(line, "ref.jsonl");
        auto o = d.root_object();
        std::vector<int32_t> want, want_special;
        for (auto v : json_to_array(*json_field(o, "ids"), "", "")) want.push_back(int32_t(json_to_int(v, "", "")));
        for (auto v : json_to_array(*json_field(o, "special_ids"), "", ""))
            want_special.push_back(int32_t(json_to_int(v, "", "")));
        INFO("corpus line " << k * 4 + 1 << ": " << json_escape(text));
        REQUIRE(tok->encode(text, false) == want);
        REQUIRE(tok->encode(text, true) == want_special); // BOS, as LlamaTokenizer adds it
        REQUIRE(tok->decode(want, true) == json_to_string(*json_field(o, "decoded"), "", ""));
    }
    REQUIRE(k == (lines.size() + 3) / 4);
}

TEST_CASE("streaming decode emits whole characters only, and all of the text", "[tokenizer][stream]") {
    if (!test::have_shared()) return;
    const std::vector<std::string> lines = corpus();
    for (const std::string& dir : {test::shared_dir() + "/tokenizers/qwen3", test::tinystories_dir(),
                                   data_dir() + "/sentencepiece", data_dir() + "/synthetic/metaspace-first"}) {
        INFO(dir);
        auto tok = load_tokenizer(dir);
        for (size_t i = 0; i < lines.size(); i += 3) {
            const std::vector<int32_t> ids = tok->encode(lines[i], true);
            for (bool skip : {true, false}) {
                StreamDecoder stream(*tok, skip);
                std::string all;
                for (int32_t id : ids) {
                    const std::string piece = stream.push(id);
                    INFO("corpus line " << i + 1 << " " << json_escape(lines[i]) << " id " << id);
                    REQUIRE(utf8_valid(piece)); // never half a character
                    all += piece;
                }
                all += stream.finish();
                INFO("corpus line " << i + 1 << " " << json_escape(lines[i]));
                REQUIRE(all == tok->decode(ids, skip));
            }
        }
    }
}

TEST_CASE("streaming decode holds back a character split over two tokens", "[tokenizer][stream]") {
    if (!test::have_shared()) return;
    auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/qwen3");
    // A rare character's four bytes spread over three tokens: U+20000 is [172, 63219, 222].
    const std::vector<int32_t> ids = tok->encode("\xf0\xa0\x80\x80 rabbit", false);
    REQUIRE(ids == std::vector<int32_t>{172, 63219, 222, 38724});
    StreamDecoder stream(*tok, true);
    std::vector<std::string> out;
    for (int32_t id : ids) out.push_back(stream.push(id));
    REQUIRE(out[0].empty()); // parts of the character: nothing yet
    REQUIRE(out[1].empty());
    REQUIRE(out[2] == "\xf0\xa0\x80\x80");
    REQUIRE(out[3] == " rabbit");
    REQUIRE(stream.finish().empty());
}

TEST_CASE("streaming decode survives a byte run that proves invalid after it was emitted", "[tokenizer][stream]") {
    // <0x61> <0xE2> <0x82> ▁T ▁for▁ ▁م: "a" is emitted, then E2 82 never completes and the whole
    // run decodes as U+FFFD per byte, changing text already out. The reference raises an error;
    // rabbit keeps what it emitted and goes on from the token that broke the run.
    auto tok = load_tokenizer(data_dir() + "/synthetic/metaspace-first");
    const std::vector<int32_t> ids{897, 1026, 930, 341, 578, 493};
    StreamDecoder stream(*tok, true);
    std::string all;
    for (int32_t id : ids) {
        const std::string piece = stream.push(id);
        REQUIRE(utf8_valid(piece));
        all += piece;
    }
    all += stream.finish();
    REQUIRE(all == "a\uFFFD\uFFFD T for  \u0645");
    REQUIRE(tok->decode(ids, true) == "\uFFFD\uFFFD\uFFFD T for  \u0645");
}

TEST_CASE("Metaspace's first scheme follows the input's start through normalizers that delete", "[tokenizer]") {
    // Expectations read off the reference (tokenizers 0.23.3) with these normalizers added to
    // the synthetic metaspace-first tokenizer.
    const std::string base = read_text_file(data_dir() + "/synthetic/metaspace-first/tokenizer.json");
    auto with_normalizer = [&](const std::string& normalizer) {
        std::string json = base;
        const std::string key = "\"normalizer\": null";
        REQUIRE(json.find(key) != std::string::npos);
        json.replace(json.find(key), key.size(), "\"normalizer\": " + normalizer);
        test::TempDir* dir = new test::TempDir; // lives for the test's tokenizer loads below
        test::write_file(*dir / "tokenizer.json", json);
        auto tok = load_tokenizer(dir->path());
        delete dir;
        return tok;
    };
    using Ids = std::vector<int32_t>;
    auto strip = with_normalizer(R"({"type": "Replace", "pattern": {"Regex": "^\\s+"}, "content": ""})");
    REQUIRE(strip->encode("  abc", false) == Ids{402, 72}); // the first character now comes from offset 2
    REQUIRE(strip->encode("abc", false) == Ids{218, 402, 72});
    REQUIRE(strip->encode("x<s>  abc", false) == Ids{218, 93, 1, 402, 72});
    auto hash = with_normalizer(R"({"type": "Replace", "pattern": {"String": "#"}, "content": ""})");
    REQUIRE(hash->encode("#abc", false) == Ids{402, 72});
    REQUIRE(hash->encode("  abc", false) == Ids{304, 402, 72});
    // Deleting only what a Prepend inserted keeps the start.
    auto both = with_normalizer(R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"Regex": "^\u2581"}, "content": ""}]})");
    REQUIRE(both->encode("  abc", false) == Ids{304, 402, 72});
    REQUIRE(both->encode("abc", false) == Ids{218, 402, 72});
}

TEST_CASE("an added token squeezed to nothing by its neighbours' stripping is dropped", "[tokenizer]") {
    // gpt2-added with one more token, "\n\n" with lstrip: after "<think>" (rstrip) took the
    // newlines, its match is empty, and the reference drops it.
    std::string json = read_text_file(data_dir() + "/synthetic/gpt2-added/tokenizer.json");
    const size_t list = json.find("\"added_tokens\": [");
    const size_t end = json.find("\n  ],", list); // the list's closing bracket
    REQUIRE(end != std::string::npos);
    json.insert(end, R"(, {"id": 9999, "content": "\n\n", "single_word": false, "lstrip": true,
        "rstrip": false, "normalized": true, "special": false})");
    test::TempDir dir;
    test::write_file(dir / "tokenizer.json", json);
    auto tok = load_tokenizer(dir.path());
    using Ids = std::vector<int32_t>;
    REQUIRE(tok->encode("<think>\n\n", false) == Ids{802});
    REQUIRE(tok->encode("a<think>\n\nb", false) == Ids{206, 802, 223});
    REQUIRE(tok->encode("a \n\nb", false) == Ids{206, 804, 223});
}

TEST_CASE("streaming decode gives real U+FFFD characters whole, and only once complete", "[tokenizer][stream]") {
    if (!test::have_shared()) return;
    // The synthetic byte-fallback tokenizer has no U+FFFD token: each one is three byte tokens,
    // and a run of them decodes as U+FFFD per byte until its last byte arrives.
    for (const std::string& dir : {data_dir() + "/synthetic/metaspace-first", test::shared_dir() + "/tokenizers/qwen3"}) {
        auto tok = load_tokenizer(dir);
        std::string run;
        for (int i = 0; i < 100; ++i) run += "\uFFFD";
        for (const std::string& text : std::vector<std::string>{"x\uFFFD\uFFFDy", run, run + "\u20AC" + run + " end", "\uFFFD"}) {
            const std::vector<int32_t> ids = tok->encode(text, false);
            StreamDecoder stream(*tok, true);
            std::string all;
            for (int32_t id : ids) all += stream.push(id);
            all += stream.finish();
            INFO(dir << ": " << json_escape(text));
            REQUIRE(all == tok->decode(ids, true));
        }
    }
}

TEST_CASE("special tokens are left out of decoded text unless asked", "[tokenizer]") {
    if (!test::have_shared()) return;
    auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/qwen3");
    const std::vector<int32_t> ids = tok->encode("<|im_start|>user\nhi<|im_end|>", false);
    REQUIRE(ids.front() == 151644);
    REQUIRE(tok->is_special(151644));
    REQUIRE(!tok->is_special(ids[1]));
    REQUIRE(tok->decode(ids, true) == "user\nhi");
    REQUIRE(tok->decode(ids, false) == "<|im_start|>user\nhi<|im_end|>");
    REQUIRE(tok->piece(151645) == "<|im_end|>");
    REQUIRE(tok->token_id("<|im_end|>") == 151645);
    REQUIRE(tok->vocab_size() == 151669);
}

TEST_CASE("chat formats are recognised from the template and written out", "[tokenizer][chat]") {
    const std::string qwen25 =
        "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
        "{%- endif %}{% for message in messages %}...{% endfor %}";
    ChatTemplate q = detect_chat_template_text(qwen25, "t");
    REQUIRE(q.format == ChatFormat::chatml);
    REQUIRE(q.default_system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    REQUIRE(apply_chat_template(q, "Hi", std::nullopt) ==
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    REQUIRE(apply_chat_template(q, "Hi", std::string("Be terse.")) ==
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

    ChatTemplate l3 = detect_chat_template_text("{{ bos_token }}<|start_header_id|>{{ message['role'] }}", "t");
    REQUIRE(l3.format == ChatFormat::llama3);
    REQUIRE(apply_chat_template(l3, "Hi", std::nullopt) ==
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
    ChatTemplate l31 = detect_chat_template_text("Cutting Knowledge Date: December 2023 <|start_header_id|>", "t");
    REQUIRE(apply_chat_template(l31, "Hi", std::string("S")) ==
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");

    // Llama 3 trims the messages (Jinja's trim), Llama 2 strips the turn (Python's strip).
    REQUIRE(apply_chat_template(l3, " \tHi \n", std::string(" S\n")) ==
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");

    ChatTemplate l2 = detect_chat_template_text("[INST] <<SYS>>\\n", "t");
    REQUIRE(l2.format == ChatFormat::llama2);
    REQUIRE(apply_chat_template(l2, "Hi", std::string("S")) == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]");
    REQUIRE(apply_chat_template(l2, "Hi", std::nullopt) == "<s>[INST] Hi [/INST]");
    REQUIRE(apply_chat_template(l2, "  Hi\u3000\n", std::nullopt) == "<s>[INST] Hi [/INST]");
    ChatTemplate m = detect_chat_template_text("{{ '[INST] ' + message['content'] + ' [/INST]' }}", "t");
    REQUIRE(m.format == ChatFormat::mistral);
    REQUIRE(apply_chat_template(m, "Hi", std::nullopt) == "<s>[INST] Hi [/INST]");
    REQUIRE(detect_chat_template_text("{{ messages }}", "t").format == ChatFormat::none);
    REQUIRE(detect_chat_template(test::tinystories_dir()).format == ChatFormat::none);
}

TEST_CASE("malformed or missing tokenizers get errors that name the file", "[tokenizer][bad-input]") {
    test::TempDir dir;
    auto write = [&](const std::string& json) { test::write_file(dir / "tokenizer.json", json); };
    auto fails = [&](ExitCode code, const std::string& what) {
        try {
            load_tokenizer(dir.path());
        } catch (const Error& e) {
            INFO(e.what());
            REQUIRE(e.code() == code);
            REQUIRE_THAT(e.what(), Contains(dir / "tokenizer.json") && Contains(what));
            return;
        }
        FAIL("loaded a tokenizer that should have been refused: " << what);
    };
    REQUIRE_THROWS_WITH(load_tokenizer(dir.path()), Contains(dir / "tokenizer.json") && Contains("no tokenizer.model either"));
    write("{\"model\": ");
    fails(ExitCode::bad_input, "is not valid JSON");
    write("{\"normalizer\": null}");
    fails(ExitCode::bad_input, "has no model");
    write(R"({"model": {"type": "WordPiece", "vocab": {}}})");
    fails(ExitCode::unsupported, "model type 'WordPiece' is not supported");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})");
    fails(ExitCode::bad_input, "merge 1 ('a', 'c') names a token not in the vocabulary ('c')");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
    fails(ExitCode::bad_input, "names a token not in the vocabulary ('ab')");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a a a"]}})");
    fails(ExitCode::bad_input, "is not two tokens separated by one space");
    write(R"({"version": "2.0", "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
    fails(ExitCode::unsupported, "tokenizer.json version '2.0'; rabbit reads 1.0");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Lowercase"}})");
    fails(ExitCode::unsupported, "normalizer type 'Lowercase' is not supported");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}})");
    fails(ExitCode::unsupported, "pre_tokenizer type 'Whitespace' is not supported");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated", "invert": false}})");
    fails(ExitCode::bad_input, "does not compile");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}})");
    fails(ExitCode::unsupported, "dropout");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "decoder": {"type": "WordPiece"}})");
    fails(ExitCode::unsupported, "decoder type 'WordPiece' is not supported");
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}], "special_tokens": {}}})");
    fails(ExitCode::bad_input, "template names special token '<s>' that special_tokens lacks");
    // A minimal valid one works.
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}})");
    auto tok = load_tokenizer(dir.path());
    REQUIRE(tok->encode("abab", false) == std::vector<int32_t>{2, 2});
    REQUIRE(tok->encode("abc", false) == std::vector<int32_t>{2}); // no unk token: unknown characters vanish, as in the reference
    // An unk_token missing from the vocabulary matters only when a character needs it.
    write(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]], "unk_token": "<unk>"}})");
    auto tok2 = load_tokenizer(dir.path());
    REQUIRE(tok2->encode("abab", false) == std::vector<int32_t>{2, 2});
    REQUIRE_THROWS_WITH(tok2->encode("abc", false), Contains("unk_token '<unk>' is not in the vocabulary, and the text needs it"));
}

TEST_CASE("added tokens get the ids the reference gives them, not the ones the file declares", "[tokenizer]") {
    test::TempDir dir;
    // Declared ids are ignored: "is" is in the vocabulary (3), "<x>" takes the next id after
    // the vocabulary's size (4 entries), "<y>" the one after; "<x>" again keeps its id.
    test::write_file(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"i": 0, "s": 1, "x": 2, "is": 3},
        "merges": [["i", "s"]]},
      "added_tokens": [
        {"id": 950, "content": "is", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
        {"id": 900, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        {"id": 7, "content": "<y>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false},
        {"id": 901, "content": "<x>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}]})");
    auto tok = load_tokenizer(dir.path());
    REQUIRE(tok->encode("is<x>x<y>", false) == std::vector<int32_t>{3, 4, 2, 5});
    REQUIRE(tok->is_special(4)); // once special, always: the reference keeps contents in a special set
    REQUIRE(tok->decode({4, 5}, true) == "<y>");
    REQUIRE(tok->vocab_size() == 6);
}

TEST_CASE("tokenizer_config.json's add_bos_token and add_eos_token rule a Llama tokenizer's template",
          "[tokenizer]") {
    if (!test::have_shared()) return;
    test::TempDir dir;
    test::write_file(dir / "tokenizer.json", read_text_file(test::tinystories_dir() + "/tokenizer.json"));
    auto config = [&](const std::string& flags) {
        test::write_file(dir / "tokenizer_config.json",
                         "{\"tokenizer_class\": \"LlamaTokenizer\", \"bos_token\": \"<|start_story|>\", "
                         "\"eos_token\": {\"content\": \"<|end_story|>\"}" + flags + "}");
        return load_tokenizer(dir.path())->encode("Once", true);
    };
    const std::vector<int32_t> once = load_tokenizer(test::tinystories_dir())->encode("Once", false);
    auto with = [&](std::vector<int32_t> before, std::vector<int32_t> after) {
        before.insert(before.end(), once.begin(), once.end());
        before.insert(before.end(), after.begin(), after.end());
        return before;
    };
    REQUIRE(config("") == with({1}, {}));                                        // LlamaTokenizer adds BOS by default
    REQUIRE(config(", \"add_bos_token\": false") == with({}, {}));
    REQUIRE(config(", \"add_eos_token\": true") == with({1}, {2}));
    REQUIRE(config(", \"add_bos_token\": false, \"add_eos_token\": true") == with({}, {2}));
}

TEST_CASE("one tokenizer encodes from several threads at once", "[tokenizer]") {
    if (!test::have_shared()) return;
    auto tok = load_tokenizer(test::shared_dir() + "/tokenizers/qwen3");
    std::vector<std::string> texts = corpus();
    texts.resize(400);
    texts.push_back(std::string(20000, ' ') + "x" + std::string(20000, '\n')); // long runs: deep regex matches
    std::vector<std::vector<int32_t>> want;
    for (const auto& t : texts) want.push_back(tok->encode(t, false));
    std::vector<std::thread> threads;
    std::atomic<int> mismatches{0};
    for (int k = 0; k < 4; ++k)
        threads.emplace_back([&, k] {
            for (int round = 0; round < 3; ++round)
                for (size_t i = size_t(k); i < texts.size(); i += 2)
                    if (tok->encode(texts[i], false) != want[i]) ++mismatches;
        });
    for (auto& t : threads) t.join();
    REQUIRE(mismatches == 0);
}
