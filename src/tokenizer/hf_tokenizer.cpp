// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/hf_tokenizer.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/utf8.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;

namespace {

constexpr uint64_t k_max_tokenizer_json = 1ull << 30;

bool flag(object o, const char* key, bool fallback, const std::string& file) {
    auto e = json_field(o, key);
    if (!e || e->is_null()) return fallback;
    return json_to_bool(*e, file, key);
}

// "<s>" or {"content": "<s>", ...}: how tokenizer_config.json names special tokens.
std::optional<std::string> token_name(object config, const char* key, const std::string& file) {
    auto e = json_field(config, key);
    if (!e || e->is_null()) return std::nullopt;
    if (e->is_string()) return json_to_string(*e, file, key);
    auto c = json_field(json_to_object(*e, file, key), "content");
    if (!c) throw bad_input(file, std::string(key) + " has no content");
    return json_to_string(*c, file, std::string(key) + ".content");
}

} // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::load(const std::string& path, const std::optional<std::string>& config_json,
                                               const std::string& config_path) {
    auto tok = std::unique_ptr<HfTokenizer>(new HfTokenizer());
    tok->path_ = path;
    const std::string text = read_text_file(path, k_max_tokenizer_json);
    JsonDocument doc(text, path);
    object root = doc.root_object();

    // The model first: added tokens and templates refer to its vocabulary.
    tok->load_model(root);
    auto maybe = [&](const char* key) { return json_field(root, key); };
    if (auto n = maybe("normalizer")) tok->normalizer_ = make_normalizer(*n, path);
    if (auto p = maybe("pre_tokenizer")) tok->pre_tokenizer_ = make_pre_tokenizer(*p, path);
    if (auto d = maybe("decoder")) tok->decoder_ = make_decoder(*d, path);
    for (const char* key : {"truncation", "padding"})
        if (auto e = maybe(key); e && !e->is_null())
            spdlog::debug("{}: ignoring its {} settings (rabbit neither truncates nor pads)", path, key);

    if (auto v = maybe("version"); v && !v->is_null() && json_to_string(*v, path, "version") != "1.0")
        throw unsupported(path, "tokenizer.json version '" + json_to_string(*v, path, "version") + "'; rabbit reads 1.0");

    tok->load_added_tokens(root);
    // The post-processor: what add_special adds around the sequence.
    if (auto p = maybe("post_processor")) tok->load_post_processor(*p);
    if (config_json) tok->apply_tokenizer_config(*config_json, config_path);
    return tok;
}

void HfTokenizer::load_model(object root) {
    const std::string& path = path_;
    auto model_el = json_field(root, "model");
    if (!model_el || model_el->is_null()) throw bad_input(path, "has no model");
    object model = json_to_object(*model_el, path, "model");
    std::string type = "BPE";
    if (auto t = json_field(model, "type")) type = json_to_string(*t, path, "model.type");
    else if (!json_field(model, "merges")) throw bad_input(path, "model has no type");
    if (type != "BPE")
        throw unsupported(path, "model type '" + type + "' is not supported (rabbit runs BPE tokenizers; for SentencePiece "
                                                      "models it reads tokenizer.model)");
    model_.load(model, path);
}

// Added tokens get their ids as the reference gives them, whatever "id" says: the model's id
// when the content is in its vocabulary, else the next one after the vocabulary's size, in
// file order. A repeated content keeps its first id (and takes the later flags).
void HfTokenizer::load_added_tokens(object root) {
    const std::string& path = path_;
    int32_t max_id = model_.max_id();
    std::vector<AddedToken> added;                 // one per id
    std::unordered_map<std::string, int32_t> content_ids;
    int32_t next_id = int32_t(model_.vocab_size());
    if (auto a = json_field(root, "added_tokens"); a && !a->is_null()) {
        for (auto el : json_to_array(*a, path, "added_tokens")) {
            object o = json_to_object(el, path, "added token");
            AddedToken t;
            auto id = json_field(o, "id");
            auto content = json_field(o, "content");
            if (!id || !content) throw bad_input(path, "an added token lacks id or content");
            const uint64_t declared = json_to_uint(*id, path, "added token id");
            t.content = json_to_string(*content, path, "added token content");
            t.single_word = flag(o, "single_word", false, path);
            t.lstrip = flag(o, "lstrip", false, path);
            t.rstrip = flag(o, "rstrip", false, path);
            t.normalized = flag(o, "normalized", true, path);
            t.special = flag(o, "special", false, path);
            if (t.content.empty()) continue; // the reference ignores empty tokens
            if (auto known = content_ids.find(t.content); known != content_ids.end()) t.id = known->second;
            else if (auto in_model = model_.token_to_id(t.content)) t.id = *in_model;
            else t.id = next_id++;
            if (uint64_t(t.id) != declared)
                spdlog::debug("{}: added token '{}' declares id {} but gets {}, as in the reference", path, t.content,
                              declared, t.id);
            content_ids.emplace(t.content, t.id);
            max_id = std::max(max_id, t.id);
            auto same = std::find_if(added.begin(), added.end(), [&](const AddedToken& x) { return x.id == t.id; });
            if (same != added.end()) {
                t.special = t.special || same->special; // the reference never forgets a special content
                *same = std::move(t);
            } else {
                added.push_back(std::move(t));
            }
        }
    }
    added_.build(std::move(added), normalizer_.get());
    vocab_size_ = size_t(max_id) + 1;
}

void HfTokenizer::load_post_processor(element e) {
    const std::string& path = path_;
    if (e.is_null()) return;
    object o = json_to_object(e, path, "post_processor");
    auto t = json_field(o, "type");
    if (!t) throw bad_input(path, "post_processor has no type");
    const std::string ptype = json_to_string(*t, path, "post_processor type");
    if (ptype == "ByteLevel") return; // offsets only
    if (ptype == "Sequence") {
        auto ps = json_field(o, "processors");
        if (!ps) throw bad_input(path, "Sequence post_processor lacks 'processors'");
        for (auto p : json_to_array(*ps, path, "processors")) load_post_processor(p);
        return;
    }
    Template tpl;
    if (ptype == "TemplateProcessing") {
        tpl = template_processing(o);
    } else if (ptype == "BertProcessing" || ptype == "RobertaProcessing") {
        auto pair_id = [&](const char* key) {
            auto v = json_field(o, key);
            if (!v) throw bad_input(path, ptype + " lacks '" + key + "'");
            auto arr = json_to_array(*v, path, key);
            if (arr.size() != 2) throw bad_input(path, ptype + " '" + key + "' is not [token, id]");
            return int32_t(json_to_uint(arr.at(1).value(), path, key));
        };
        tpl.before.push_back(pair_id("cls"));
        tpl.after.push_back(pair_id("sep"));
    } else {
        throw unsupported(path, "post_processor type '" + ptype + "' is not supported");
    }
    if (template_) throw unsupported(path, "more than one post-processor adds special tokens");
    template_ = tpl;
}

// TemplateProcessing's "single" template: the special tokens' ids before and after $A.
HfTokenizer::Template HfTokenizer::template_processing(object o) const {
    const std::string& path = path_;
    Template tpl;
    auto single = json_field(o, "single");
    auto specials = json_field(o, "special_tokens");
    if (!single || !specials) throw bad_input(path, "TemplateProcessing lacks 'single' or 'special_tokens'");
    object sp = json_to_object(*specials, path, "special_tokens");
    bool seen_sequence = false;
    for (auto item : json_to_array(*single, path, "single")) {
        object io = json_to_object(item, path, "template item");
        if (auto s = json_field(io, "SpecialToken")) {
            const std::string name =
                json_to_string(*json_field(json_to_object(*s, path, "SpecialToken"), "id"), path, "SpecialToken id");
            auto def = json_field(sp, name);
            if (!def) throw bad_input(path, "template names special token '" + name + "' that special_tokens lacks");
            auto ids = json_field(json_to_object(*def, path, "special token"), "ids");
            if (!ids) throw bad_input(path, "special token '" + name + "' lacks ids");
            for (auto idv : json_to_array(*ids, path, "ids"))
                (seen_sequence ? tpl.after : tpl.before).push_back(int32_t(json_to_uint(idv, path, "special token id")));
        } else if (json_field(io, "Sequence")) {
            seen_sequence = true;
        } else {
            throw bad_input(path, "template item is neither SpecialToken nor Sequence");
        }
    }
    return tpl;
}

int32_t HfTokenizer::special_id(const std::string& name, const std::string& what) const {
    auto id = token_id(name);
    if (!id) throw bad_input(path_, what + " names token '" + name + "', which is not in the vocabulary");
    return *id;
}

// transformers' LlamaTokenizer builds its template from add_bos_token / add_eos_token,
// whatever tokenizer.json says.
void HfTokenizer::apply_tokenizer_config(const std::string& config_json, const std::string& config_path) {
    JsonDocument cdoc(config_json, config_path);
    object c = cdoc.root_object();
    std::string cls;
    if (auto k = json_field(c, "tokenizer_class"); k && k->is_string()) cls = json_to_string(*k, config_path, "tokenizer_class");
    if (cls != "LlamaTokenizer" && cls != "LlamaTokenizerFast" && cls != "CodeLlamaTokenizer" && cls != "CodeLlamaTokenizerFast")
        return;
    Template tpl;
    if (flag(c, "add_bos_token", true, config_path))
        if (auto bos = token_name(c, "bos_token", config_path)) tpl.before.push_back(special_id(*bos, config_path + " bos_token"));
    if (flag(c, "add_eos_token", false, config_path))
        if (auto eos = token_name(c, "eos_token", config_path)) tpl.after.push_back(special_id(*eos, config_path + " eos_token"));
    template_ = tpl;
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special) const {
    std::vector<int32_t> ids;
    if (add_special && template_) ids = template_->before;
    std::vector<Split> splits;
    // The pipeline works on valid UTF-8; invalid bytes become U+FFFD, as a Python str would hold them.
    if (!text.empty()) splits.push_back({utf8_valid(text) ? std::string(text) : utf8_lossy(text), -1, true});
    added_.split(splits, false);
    for (auto& sp : splits) {
        if (sp.token >= 0 || !normalizer_) continue;
        NormalizeState st{sp.at_start, 0};
        normalizer_->normalize(sp.text, st);
        sp.at_start = st.at_start;
    }
    added_.split(splits, true);
    std::vector<Piece> pieces;
    for (auto& sp : splits) {
        if (sp.token >= 0) {
            ids.push_back(sp.token);
            continue;
        }
        if (sp.text.empty()) continue;
        pieces.clear();
        pieces.push_back({std::move(sp.text), sp.at_start});
        if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
        for (const auto& p : pieces) model_.tokenize(p.text, ids);
    }
    if (add_special && template_) ids.insert(ids.end(), template_->after.begin(), template_->after.end());
    return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        const std::string* s = added_.decode_string(id);
        if (!s) s = model_.id_to_token(id);
        if (!s) continue; // an id outside the vocabulary decodes to nothing, as in the reference
        if (skip_special && added_.is_special_content(*s)) continue;
        tokens.push_back(*s);
    }
    if (!decoder_) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
        return out;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
}

std::string HfTokenizer::piece(int32_t id) const {
    if (const std::string* s = added_.decode_string(id)) return *s;
    if (const std::string* s = model_.id_to_token(id)) return *s;
    return {};
}

std::optional<int32_t> HfTokenizer::token_id(std::string_view piece) const {
    if (auto id = added_.by_content(std::string(piece))) return id;
    return model_.token_to_id(piece);
}

bool HfTokenizer::is_special(int32_t id) const {
    const AddedToken* t = added_.by_id(id);
    return t && t->special;
}

} // namespace rabbit
