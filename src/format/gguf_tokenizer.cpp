// SPDX-License-Identifier: Apache-2.0
// GGUF vocab -> tokenizer.json. A GGUF keeps the vocabulary, the merges and the special ids
// but not the pipeline around them: llama.cpp implies it from tokenizer.ggml.model and .pre.
// We write the pipeline the model's original Hugging Face tokenizer.json has, so that rabbit's
// own tokenizer runs it unchanged.
#include "format/gguf_tokenizer.h"

#include "common/error.h"
#include "common/json_writer.h"
#include "format/gguf_tokenizer_internal.h"

#include <spdlog/spdlog.h>

#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace rabbit {

using gguf_tok::Merge;

namespace {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte_token = 6 };

struct Special {
    std::string content;
    bool special;
    bool normalized;
};

// What the three files are made of, worked out once from the GGUF's vocab.
struct Plan {
    bool byte_level = false;
    std::vector<std::string> vocab;  // [n] the model's tokens as tokenizer.json spells them
    std::vector<Merge> merges;       // best first
    std::vector<std::pair<int64_t, Special>> added;
    gguf_tok::Gpt2Pipeline pipeline; // byte-level only
    bool add_bos = false, add_eos = false, space_prefix = false;
    bool normalized_specials = false; // added tokens matched in the normalized text
    std::optional<int64_t> unk;       // unknown_token_id, else the first token typed unknown
};

int32_t type_of(const GgufVocab& v, size_t i) { return v.token_type.empty() ? int32_t(normal) : v.token_type[i]; }

void check(const GgufVocab& v, const std::string& file) {
    if (v.model != "gpt2" && v.model != "llama")
        throw unsupported(file, "tokenizer.ggml.model '" + v.model + "' is not supported (rabbit converts gpt2 and llama)");
    const size_t n = v.tokens.size();
    if (n == 0) throw bad_input(file, "tokenizer.ggml.tokens is missing or empty");
    if (!v.scores.empty() && v.scores.size() != n)
        throw bad_input(file, "tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
                                  std::to_string(n) + " tokens");
    if (!v.token_type.empty() && v.token_type.size() != n)
        throw bad_input(file, "tokenizer.ggml.token_type has " + std::to_string(v.token_type.size()) + " entries for " +
                                  std::to_string(n) + " tokens");
    const std::pair<const char*, const std::optional<int64_t>*> ids[] = {
        {"bos_token_id", &v.bos}, {"eos_token_id", &v.eos}, {"unknown_token_id", &v.unk},
        {"padding_token_id", &v.pad}, {"eot_token_id", &v.eot}};
    for (auto [name, id] : ids)
        if (*id && (**id < 0 || uint64_t(**id) >= n))
            throw bad_input(file, std::string("tokenizer.ggml.") + name + " " + std::to_string(**id) +
                                      " is outside the vocabulary of " + std::to_string(n) + " tokens");
    if (v.model == "gpt2" && v.merges.empty())
        throw bad_input(file, "tokenizer.ggml.merges is missing: a gpt2 (byte-level BPE) vocab needs its merges");
}

std::vector<Merge> parse_merges(const GgufVocab& v, const std::vector<std::string>& vocab, const std::string& file) {
    std::unordered_set<std::string> known(vocab.begin(), vocab.end());
    std::vector<Merge> out;
    out.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
        const std::string& m = v.merges[i];
        const size_t sp = m.find(' ', 1); // a merge's first token may itself be a space
        if (sp == std::string::npos || sp + 1 >= m.size())
            throw bad_input(file, "tokenizer.ggml.merges entry " + std::to_string(i) + " ('" + m + "') is not two tokens");
        Merge merge{m.substr(0, sp), m.substr(sp + 1)};
        const std::string joined = merge.first + merge.second;
        for (const std::string* t : {&std::as_const(merge.first), &std::as_const(merge.second), &joined})
            if (!known.count(*t))
                throw bad_input(file, "tokenizer.ggml.merges entry " + std::to_string(i) + " ('" + m + "') names '" + *t +
                                          "', which is not in tokenizer.ggml.tokens");
        out.push_back(std::move(merge));
    }
    return out;
}

// Scores that rank the tokens: not all the same (the llama_hf converter writes -1000 for all).
bool scores_rank(const std::vector<float>& s) {
    for (float x : s)
        if (x != s.front()) return true;
    return false;
}

std::vector<Merge> llama_merges(const GgufVocab& v, const std::string& file) {
    if (!v.merges.empty()) return parse_merges(v, v.tokens, file);
    if (scores_rank(v.scores)) return gguf_tok::merges_by_score(v.tokens, v.scores);
    std::vector<bool> mergeable(v.tokens.size());
    for (size_t i = 0; i < v.tokens.size(); ++i) mergeable[i] = type_of(v, i) == normal;
    spdlog::debug("{}: no merges and no ranking scores; rebuilding the merges from the token order", file);
    return gguf_tok::merges_by_id(v.tokens, mergeable);
}

Plan make_plan(const GgufVocab& v, const std::string& file) {
    Plan p;
    p.byte_level = v.model == "gpt2";
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        std::vector<size_t> starts;
        if (!p.byte_level && !gguf_tok::utf8_boundaries(v.tokens[i], starts))
            throw bad_input(file, "tokenizer.ggml.tokens entry " + std::to_string(i) + " is not valid UTF-8");
        p.vocab.push_back(p.byte_level ? gguf_tok::byte_level_spelling(v.tokens[i]) : v.tokens[i]);
    }
    if (p.byte_level) {
        p.pipeline = gguf_tok::gpt2_pipeline(v.pre, file);
        p.merges = parse_merges(v, p.vocab, file);
    } else {
        p.merges = llama_merges(v, file);
        p.unk = v.unk;
        for (size_t i = 0; !p.unk && i < v.token_type.size(); ++i)
            if (v.token_type[i] == unknown) p.unk = int64_t(i);
        p.space_prefix = v.add_space_prefix.value_or(true);
        // Scores that rank nothing mean the llama_hf converter, i.e. a tokenizer.json BPE trained
        // by `tokenizers`, whose special tokens are matched after normalization (tinystories);
        // SentencePiece conversions (Llama 2, Mistral) match them in the raw text.
        p.normalized_specials = v.merges.empty() && !scores_rank(v.scores);
    }
    // As llama.cpp: a SentencePiece vocab adds BOS unless it says not to, a byte-level one only when told.
    p.add_bos = v.add_bos.value_or(!p.byte_level) && v.bos;
    p.add_eos = v.add_eos.value_or(false) && v.eos;
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        const int32_t t = type_of(v, i);
        if (t != control && t != unknown && t != user_defined) continue;
        // In a byte-level vocab a token outside the byte alphabet is a converter's mislabel: as
        // transformers does, it stays a plain (unreachable) vocab entry, not an added token.
        if (p.byte_level && !gguf_tok::in_byte_alphabet(v.tokens[i])) continue;
        p.added.push_back({int64_t(i), {v.tokens[i], t != user_defined, p.normalized_specials && t != user_defined}});
    }
    return p;
}

void write_added_tokens(JsonWriter& w, const Plan& p) {
    w.key("added_tokens").begin_array();
    for (const auto& [id, s] : p.added) {
        w.begin_object().member("id", id).member("content", s.content).member("single_word", false);
        w.member("lstrip", false).member("rstrip", false).member("normalized", s.normalized).member("special", s.special);
        w.end_object();
    }
    w.end_array();
}

void write_template_item(JsonWriter& w, const char* kind, const std::string& id, int type_id) {
    w.begin_object().key(kind).begin_object().member("id", id).member("type_id", type_id).end_object().end_object();
}

// TemplateProcessing: BOS before, EOS after, as add_bos / add_eos say.
void write_post_processor(JsonWriter& w, const GgufVocab& v, const Plan& p) {
    w.key("post_processor");
    if (!p.add_bos && !p.add_eos) {
        w.null();
        return;
    }
    const std::string bos = p.add_bos ? v.tokens[size_t(*v.bos)] : "", eos = p.add_eos ? v.tokens[size_t(*v.eos)] : "";
    w.begin_object().member("type", "TemplateProcessing");
    for (const char* which : {"single", "pair"}) {
        w.key(which).begin_array();
        for (int seq = 0; seq < (which[0] == 'p' ? 2 : 1); ++seq) {
            if (p.add_bos) write_template_item(w, "SpecialToken", bos, seq);
            write_template_item(w, "Sequence", seq ? "B" : "A", seq);
            if (p.add_eos) write_template_item(w, "SpecialToken", eos, seq);
        }
        w.end_array();
    }
    w.key("special_tokens").begin_object();
    std::unordered_set<std::string> written;
    for (auto [on, id] : {std::pair<bool, std::optional<int64_t>>{p.add_bos, v.bos}, {p.add_eos, v.eos}}) {
        if (!on || !written.insert(v.tokens[size_t(*id)]).second) continue;
        const std::string& name = v.tokens[size_t(*id)];
        w.key(name).begin_object().member("id", name).key("ids").begin_array(true).value(*id).end_array();
        w.key("tokens").begin_array(true).value(name).end_array().end_object();
    }
    w.end_object().end_object();
}

void write_sentencepiece_pipeline(JsonWriter& w, const Plan& p) {
    w.key("normalizer").begin_object().member("type", "Sequence").key("normalizers").begin_array();
    if (p.space_prefix) w.begin_object().member("type", "Prepend").member("prepend", "\u2581").end_object();
    w.begin_object().member("type", "Replace").key("pattern").begin_object().member("String", " ").end_object();
    w.member("content", "\u2581").end_object();
    w.end_array().end_object();
    w.key("pre_tokenizer").null();
}

void write_decoder(JsonWriter& w, const Plan& p) {
    w.key("decoder");
    if (p.byte_level) {
        w.begin_object().member("type", "ByteLevel").member("add_prefix_space", false).member("trim_offsets", false);
        w.member("use_regex", false).end_object();
        return;
    }
    w.begin_object().member("type", "Sequence").key("decoders").begin_array();
    w.begin_object().member("type", "Replace").key("pattern").begin_object().member("String", "\u2581").end_object();
    w.member("content", " ").end_object();
    w.begin_object().member("type", "ByteFallback").end_object();
    w.begin_object().member("type", "Fuse").end_object();
    if (p.space_prefix)
        w.begin_object().member("type", "Strip").member("content", " ").member("start", 1).member("stop", 0).end_object();
    w.end_array().end_object();
}

void write_model(JsonWriter& w, const GgufVocab& v, const Plan& p) {
    w.key("model").begin_object().member("type", "BPE").key("dropout").null();
    w.key("unk_token");
    if (!p.byte_level && p.unk) w.value(v.tokens[size_t(*p.unk)]);
    else w.null();
    w.member("continuing_subword_prefix", "").member("end_of_word_suffix", "");
    w.member("fuse_unk", !p.byte_level).member("byte_fallback", !p.byte_level);
    w.member("ignore_merges", p.pipeline.ignore_merges);
    // A token spelled twice keeps its last id, as a Python dict built from the list would.
    std::unordered_map<std::string, size_t> last;
    for (size_t i = 0; i < p.vocab.size(); ++i) last[p.vocab[i]] = i;
    w.key("vocab").begin_object();
    for (size_t i = 0; i < p.vocab.size(); ++i)
        if (last[p.vocab[i]] == i) w.member(p.vocab[i], int64_t(i));
    w.end_object();
    w.key("merges").begin_array();
    for (const auto& m : p.merges) w.begin_array(true).value(m.first).value(m.second).end_array();
    w.end_array().end_object();
}

std::string tokenizer_json(const GgufVocab& v, const Plan& p) {
    JsonWriter w;
    w.begin_object().member("version", "1.0").key("truncation").null().key("padding").null();
    write_added_tokens(w, p);
    if (p.byte_level) {
        w.key("normalizer").raw(p.pipeline.normalizer);
        w.key("pre_tokenizer").raw(p.pipeline.pre_tokenizer);
    } else {
        write_sentencepiece_pipeline(w, p);
    }
    write_post_processor(w, v, p);
    write_decoder(w, p);
    write_model(w, v, p);
    w.end_object();
    return w.str() + "\n";
}

std::string tokenizer_config_json(const GgufVocab& v, const Plan& p) {
    JsonWriter w;
    w.begin_object();
    // LlamaTokenizer makes rabbit (and transformers) build BOS/EOS from the two flags below.
    if (!p.byte_level) w.member("tokenizer_class", "LlamaTokenizerFast");
    w.member("add_bos_token", p.add_bos).member("add_eos_token", p.add_eos);
    const std::pair<const char*, const std::optional<int64_t>*> names[] = {
        {"bos_token", &v.bos}, {"eos_token", &v.eos}, {"unk_token", &v.unk}, {"pad_token", &v.pad}};
    for (auto [key, id] : names)
        if (*id) w.member(key, v.tokens[size_t(**id)]);
    w.member("clean_up_tokenization_spaces", false);
    if (v.chat_template) w.member("chat_template", *v.chat_template);
    w.end_object();
    return w.str() + "\n";
}

std::string generation_config_json(const GgufVocab& v) {
    JsonWriter w;
    w.begin_object();
    if (v.bos) w.member("bos_token_id", *v.bos);
    if (v.eos && v.eot && *v.eot != *v.eos) {
        w.key("eos_token_id").begin_array(true).value(*v.eos).value(*v.eot).end_array();
    } else if (v.eos || v.eot) {
        w.member("eos_token_id", v.eos ? *v.eos : *v.eot);
    }
    if (v.pad) w.member("pad_token_id", *v.pad);
    w.end_object();
    return w.str() + "\n";
}

} // namespace

TokenizerFiles tokenizer_files_from_gguf(const GgufVocab& v, const std::string& file) {
    check(v, file);
    const Plan p = make_plan(v, file);
    return {tokenizer_json(v, p), tokenizer_config_json(v, p), generation_config_json(v)};
}

} // namespace rabbit
